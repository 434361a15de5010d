"""Callbacks for `fit`: β's scheduler and feedback controllers, and the NaN stop.

The β callbacks only *write* `model.beta` (or `model.capacity`); the model
reads it in its train step. The scheduler evaluates a pure schedule
(`keras_vae.schedules`) at the optimizer's step; the controllers run a
feedback law (`keras_vae.controllers`) on the measured rate or distortion and
keep its state in public attributes, serialized by `get_config`.
`TerminateOnNonFinite`, which `VAE.fit` adds by itself, ends training at the
first NaN or infinite loss with a one-line error.
"""

import math

import keras

from keras_vae import controllers as controllers_lib
from keras_vae import schedules as schedules_lib

_PACKAGE = "keras_vae"


class NonFiniteLossError(FloatingPointError):
    """Training met a NaN or infinite loss; the one-line message says where."""


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TerminateOnNonFinite(keras.callbacks.Callback):
    """Stops `fit` at the first step whose loss or gradients are not finite,
    and at a non-finite validation loss.

    Unlike Keras's `TerminateOnNaN`, which lets the epoch end (so later
    callbacks would checkpoint broken weights), it raises at once, with the
    step. `VAE.train_step` skips the update of a non-finite step (outside
    tf.distribute) and records it in `model.non_finite_step`, which this
    callback reads once per batch, so the model keeps the weights from
    before it.
    Subclasses may override `error`.

    Example:

    >>> str(TerminateOnNonFinite().error("loss", "NaN", 12)).split(";")[0]
    'training stopped at epoch 1, step 12: loss became NaN'
    """

    #: Keras may run `on_train_batch_end` in a worker thread, so the step
    #: loop never waits for it: a bad step is seen one step late at most, by
    #: which time the model has skipped every step since (`non_finite_step`).
    async_safe = True

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_begin(self, logs=None):
        if self._guarded():
            self.model.non_finite_step.assign(0)

    def on_train_batch_end(self, batch, logs=None):
        if not self._guarded():
            return self._check(logs, "loss")
        # One read per batch: the step the model found non-finite, if any.
        step = int(self.model.non_finite_step.numpy())
        if step:
            loss = float((logs or {}).get("loss", math.nan))
            if math.isfinite(loss):
                raise self.error("the gradient", "non-finite", step)
            raise self.error("loss", "NaN" if math.isnan(loss) else f"{loss}", step)

    def _guarded(self):
        return getattr(self.model, "skips_non_finite_steps", False)

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, "val_loss")

    def _check(self, logs, key):
        value = (logs or {}).get(key)
        if value is not None and not math.isfinite(float(value)):
            # The optimizer counts applied steps; the bad one was not applied.
            shown = "NaN" if math.isnan(float(value)) else f"{float(value)}"
            raise self.error(key, shown, int(self.model.optimizer.iterations.numpy()) + 1)

    def error(self, key, value, step):
        """The exception to raise: `key` ("loss", "val_loss" or "the gradient")
        became `value` ("NaN", "inf", "-inf" or "non-finite") at optimizer
        step `step` (1-based)."""
        kept = (
            "the model keeps its weights from before that step"
            if self._guarded()
            else "the weights after that step may be non-finite"
        )
        return NonFiniteLossError(
            f"training stopped at epoch {getattr(self, 'epoch', 0) + 1}, step {step}: "
            f"{key} became {value}; {kept}; lower the learning rate or β, or check the "
            "data for NaN or inf"
        )

    def get_config(self):
        return {}


class _BetaWriter(keras.callbacks.Callback):
    """Shared plumbing: which model variable to write, and writing it."""

    def __init__(self, target="beta"):
        super().__init__()
        if target not in ("beta", "capacity"):
            raise ValueError(f"target must be 'beta' or 'capacity', got {target!r}.")
        self.target = target

    def _write(self, value):
        getattr(self.model, self.target).assign(float(value))

    def _step(self):
        # The optimizer's step counter is the one true step: `batch` restarts
        # every epoch and jumps by steps_per_execution.
        return int(self.model.optimizer.iterations.numpy())

    def get_config(self):
        return {"target": self.target}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BetaScheduler(_BetaWriter):
    """Writes `schedule(step)` into `model.beta` before each batch (or epoch).

    Args:
        schedule: a `keras_vae.schedules.BetaSchedule`, a number, or a config.
        update_freq: "batch" (schedule of the optimizer step) or "epoch"
            (schedule of the epoch index), as Keras's `TensorBoard` says it.
        target: "beta", or "capacity" to schedule C of the capacity objective.

    With `steps_per_execution = k > 1` Keras runs k steps per callback, so β
    is written at steps 0, k, 2k, ... and held for k steps; the step read
    from the optimizer never drifts.

    Example:

    >>> warmup = BetaScheduler(schedules_lib.LinearWarmup(warmup_steps=200))
    >>> warmup.schedule(100), warmup.update_freq
    (0.5, 'batch')
    """

    def __init__(self, schedule, update_freq="batch", target="beta"):
        super().__init__(target)
        if update_freq not in ("batch", "epoch"):
            raise ValueError(f"update_freq must be 'batch' or 'epoch', got {update_freq!r}.")
        self.schedule = schedules_lib.get(schedule)
        self.update_freq = update_freq

    def on_train_begin(self, logs=None):
        self._write(self.schedule(self._step() if self.update_freq == "batch" else 0))

    def on_train_batch_begin(self, batch, logs=None):
        if self.update_freq == "batch":
            self._write(self.schedule(self._step()))

    def on_epoch_begin(self, epoch, logs=None):
        if self.update_freq == "epoch":
            self._write(self.schedule(epoch))

    def get_config(self):
        return {
            "schedule": schedules_lib.serialize(self.schedule),
            "update_freq": self.update_freq,
            "target": self.target,
        }


class _Controlling(_BetaWriter):
    """Runs a `keras_vae.controllers.Controller` (the class mixed in before
    this one) during `fit`: after each batch, `update(<the model variable
    READS>)` gives the new β. The controller's state is its config."""

    def __init__(self):
        _BetaWriter.__init__(self, "beta")

    def on_train_begin(self, logs=None):
        self._write(self.beta)

    def on_train_batch_end(self, batch, logs=None):
        self._write(self.update(getattr(self.model, self.READS).numpy()))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class KLTargetController(controllers_lib.KLTarget, _Controlling):
    """`keras_vae.controllers.KLTarget` (ControlVAE's PI controller, Shao et
    al. 2020: β drives the rate to `target_rate` nats) as a callback.

    Example:

    >>> controller = KLTargetController(target_rate=5.0, kp=0.01, ki=0.001)
    >>> controller.update(rate=9.0) > controller.beta_min  # Rate too high: β rises.
    True
    """

    def __init__(self, *args, **kwargs):
        _Controlling.__init__(self)
        controllers_lib.KLTarget.__init__(self, *args, **kwargs)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GECO(controllers_lib.GECO, _Controlling):
    """`keras_vae.controllers.GECO` (Rezende & Viola 2018: the least rate with
    distortion ≤ `tolerance` nats) as a callback.

    Example:

    >>> geco = GECO(tolerance=30.0, step_size=0.1)
    >>> geco.update(distortion=40.0) < 1.0  # Reconstructions too poor: β falls.
    True
    """

    def __init__(self, *args, **kwargs):
        _Controlling.__init__(self)
        controllers_lib.GECO.__init__(self, *args, **kwargs)


#: {name: callback class} of every controller, by the name its controller declares.
CONTROLLERS = {cls.NAME: cls for cls in (KLTargetController, GECO)}

# The schedules are plain Python (no Keras there); `BetaScheduler` serializes
# them, so they are registered here, under the names they always had.
for _schedule in schedules_lib.SCHEDULES.values():
    keras.saving.register_keras_serializable(package=_PACKAGE)(_schedule)
