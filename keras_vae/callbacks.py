"""Callbacks for `fit`: β's scheduler and feedback controllers, and the NaN stop.

The β callbacks only *write* `model.beta` (or `model.capacity`); the model
reads it in its train step. The scheduler evaluates a pure schedule at the
optimizer's step; the controllers react to the measured rate or distortion and
keep their state in public attributes, serialized by `get_config`.
`TerminateOnNonFinite`, which `VAE.fit` adds by itself, ends training at the
first NaN or infinite loss with a one-line error.
"""

import math

import keras

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


class _Controller(_BetaWriter):
    """Feedback on β: after each batch, `update(<the model variable READS>)`
    gives the new β. The constructor's arguments, `STATE`, are public
    attributes, so `get_config` saves the state and `from_config` resumes it."""

    READS = None
    STATE = ()

    def __init__(self):
        super().__init__("beta")

    def on_train_begin(self, logs=None):
        self._write(self.beta)

    def on_train_batch_end(self, batch, logs=None):
        self._write(self.update(getattr(self.model, self.READS).numpy()))

    def get_config(self):
        return {name: getattr(self, name) for name in self.STATE}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class KLTargetController(_Controller):
    """ControlVAE's PI controller (Shao et al. 2020): drive the rate to a set point.

    After each batch, with error e = target_rate − rate (nats):
        β = kp / (1 + exp(e)) − ki·Σe + beta_min, clipped to [beta_min, beta_max].
    A rate above target (e < 0) raises β; below target lowers it. The integral
    only accumulates while β is inside its range (anti-windup).

    State, in the open: `integral` (nats·steps), `beta`, `last_error`.

    Example:

    >>> controller = KLTargetController(target_rate=5.0, kp=0.01, ki=0.001)
    >>> controller.update(rate=9.0) > controller.beta_min  # Rate too high: β rises.
    True
    """

    READS = "batch_rate"
    STATE = ("target_rate", "kp", "ki", "beta_min", "beta_max", "integral", "beta",
             "last_error")

    def __init__(self, target_rate, kp=0.01, ki=0.0001, beta_min=0.0, beta_max=1.0,
                 integral=0.0, beta=None, last_error=0.0):
        super().__init__()
        if beta_min > beta_max:
            raise ValueError(f"beta_min {beta_min} > beta_max {beta_max}.")
        self.target_rate, self.kp, self.ki = float(target_rate), float(kp), float(ki)
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)
        self.integral = float(integral)
        self.beta = beta_min if beta is None else float(beta)
        self.last_error = float(last_error)

    def update(self, rate):
        """One controller step from the measured rate (nats); returns the new β."""
        error = self.target_rate - float(rate)
        # exp overflows for errors above ~700 nats; the P term is 0 there.
        p_term = self.kp / (1.0 + math.exp(min(error, 700.0)))
        beta = p_term - self.ki * (self.integral + error) + self.beta_min
        if self.beta_min <= beta <= self.beta_max:
            self.integral += error
        self.beta = min(max(beta, self.beta_min), self.beta_max)
        self.last_error = error
        return self.beta


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GECO(_Controller):
    """GECO (Rezende & Viola 2018): minimise the rate subject to distortion ≤ tolerance.

    The Lagrangian rate + λ·(distortion − tolerance), divided by λ, is our loss
    with β = 1/λ. After each batch the constraint C = distortion − tolerance
    (nats) enters a moving average C̄ ← α·C̄ + (1 − α)·C and
    λ ← λ·exp(step_size·C̄): λ grows (β falls) while reconstructions are worse
    than the tolerance. β = 1/λ is clipped to [beta_min, beta_max].

    State, in the open: `lagrange_multiplier` (λ), `moving_average` (C̄, nats).

    Example:

    >>> geco = GECO(tolerance=30.0, step_size=0.1)
    >>> geco.update(distortion=40.0) < 1.0  # Reconstructions too poor: β falls.
    True
    """

    READS = "batch_distortion"
    STATE = ("tolerance", "alpha", "step_size", "beta_min", "beta_max", "lagrange_multiplier",
             "moving_average")

    def __init__(self, tolerance, alpha=0.99, step_size=1e-3, beta_min=1e-4, beta_max=1.0,
                 lagrange_multiplier=1.0, moving_average=None):
        super().__init__()
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {alpha}.")
        self.tolerance, self.alpha, self.step_size = float(tolerance), float(alpha), float(step_size)
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)
        self.lagrange_multiplier = float(lagrange_multiplier)
        self.moving_average = None if moving_average is None else float(moving_average)

    @property
    def beta(self):
        return min(max(1.0 / self.lagrange_multiplier, self.beta_min), self.beta_max)

    def update(self, distortion):
        """One multiplier step from the measured distortion (nats); returns β."""
        constraint = float(distortion) - self.tolerance
        if self.moving_average is None:
            self.moving_average = constraint
        else:
            self.moving_average = self.alpha * self.moving_average + (1 - self.alpha) * constraint
        step = max(min(self.step_size * self.moving_average, 50.0), -50.0)
        # Keep λ inside the range that β's clip allows, so it cannot wind up.
        self.lagrange_multiplier = min(
            max(self.lagrange_multiplier * math.exp(step), 1.0 / self.beta_max),
            1.0 / self.beta_min,
        )
        return self.beta
