"""β schedules: pure, serializable functions of the training step.

A schedule maps the optimizer step (counted from 0) to a value of β, like
Keras's learning-rate schedules map a step to a learning rate. It holds no
state; `keras_vae.callbacks.BetaScheduler` writes its value into `model.beta`.
The same schedules drive the capacity C(step) of the capacity objective.

Schedules accept an int or a numpy array of steps, so a whole curve can be
plotted with `schedule(np.arange(n))`.

The classes are the registry: each declares its `NAME` (the `[beta.<NAME>]`
table of a config) and its `PARAMETERS`; `SCHEDULES` maps names to classes
and `pipelines.beta` derives the config's keys from them. This module imports
no TensorFlow (NumPy only), so a config is checked without it; the classes
are registered with Keras by `keras_vae.callbacks`, which serializes them.
"""

import numpy as np

_PACKAGE = "keras_vae"


class BetaSchedule:
    """Base class: `schedule(step) -> β` with `get_config`/`from_config`.

    Example:

    >>> class Halving(BetaSchedule):
    ...     def evaluate(self, step):
    ...         return 0.5 ** (step // 100)
    ...     def get_config(self):
    ...         return {}
    >>> Halving()(250)
    0.25
    """

    def __call__(self, step):
        step = np.asarray(step, dtype="float64")
        if np.any(step < 0):
            raise ValueError(f"Schedule step must be >= 0, got {step.min():g}.")
        value = self.evaluate(step)
        return float(value) if value.ndim == 0 else value

    def evaluate(self, step):
        """β at `step`, a float64 array; implemented by subclasses."""
        raise NotImplementedError

    #: The name a config (and `get`) calls it by.
    NAME = None
    #: The constructor's arguments, kept as attributes of the same names.
    PARAMETERS = ()

    def get_config(self):
        return {name: getattr(self, name) for name in self.PARAMETERS}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()


def _require(ok, message, value):
    """Raises ValueError("<message>, got <value>.") unless `ok`."""
    if not ok:
        raise ValueError(f"{message}, got {value}.")


def _ramp(start, stop, fraction):
    """Linear interpolation from start to stop, fraction clipped to [0, 1]."""
    return start + (stop - start) * np.clip(fraction, 0.0, 1.0)


class Constant(BetaSchedule):
    """β = value at every step.

    Example:

    >>> Constant(0.3)([0, 10_000]).tolist()
    [0.3, 0.3]
    """

    NAME = "constant"
    PARAMETERS = ("value",)

    def __init__(self, value=1.0):
        self.value = float(value)

    def evaluate(self, step):
        return np.full_like(step, self.value)


class LinearWarmup(BetaSchedule):
    """β = start for `delay_steps`, then a linear ramp to `stop` over `warmup_steps`.

    KL annealing (Bowman et al. 2016): with β small early on the decoder learns
    to use z before the KL term pulls the posterior onto the prior.

    Example:

    >>> LinearWarmup(warmup_steps=100, delay_steps=50)([0, 50, 100, 150, 500]).tolist()
    [0.0, 0.0, 0.5, 1.0, 1.0]
    """

    NAME = "linear"
    PARAMETERS = ("start", "stop", "warmup_steps", "delay_steps")

    def __init__(self, start=0.0, stop=1.0, warmup_steps=1000, delay_steps=0):
        _require(warmup_steps > 0, "warmup_steps must be > 0", warmup_steps)
        _require(delay_steps >= 0, "delay_steps must be >= 0", delay_steps)
        self.start, self.stop = float(start), float(stop)
        self.warmup_steps, self.delay_steps = int(warmup_steps), int(delay_steps)

    def evaluate(self, step):
        return _ramp(self.start, self.stop, (step - self.delay_steps) / self.warmup_steps)


class Cyclical(BetaSchedule):
    """Cyclical annealing (Fu et al. 2019): repeat a ramp-then-hold every `period`.

    Within each period of `period` steps, β rises linearly from `start` to
    `stop` over the first `ratio` of the period, then stays at `stop`.

    Example:

    >>> Cyclical(period=100, ratio=0.5)([0, 25, 50, 99, 100]).tolist()
    [0.0, 0.5, 1.0, 1.0, 0.0]
    """

    NAME = "cyclical"
    PARAMETERS = ("period", "ratio", "start", "stop")

    def __init__(self, period=1000, ratio=0.5, start=0.0, stop=1.0):
        self.start, self.stop = float(start), float(stop)
        _require(period > 0, "period must be > 0", period)
        _require(0.0 < ratio <= 1.0, "ratio must be in (0, 1]", ratio)
        self.period, self.ratio = int(period), float(ratio)

    def evaluate(self, step):
        tau = np.mod(step, self.period) / self.period
        return _ramp(self.start, self.stop, tau / self.ratio)


class Sigmoid(BetaSchedule):
    """Logistic warm-up (Bowman et al. 2016): β = start + (stop − start)·σ((step − midpoint)/width).

    `midpoint_steps` is where β is half-way; `width_steps` sets how fast it
    rises (from 12 % to 88 % of the way in 4·width steps).

    Example:

    >>> Sigmoid(midpoint_steps=1000, width_steps=100)(1000)
    0.5
    """

    NAME = "sigmoid"
    PARAMETERS = ("start", "stop", "midpoint_steps", "width_steps")

    def __init__(self, start=0.0, stop=1.0, midpoint_steps=1000, width_steps=100):
        _require(width_steps > 0, "width_steps must be > 0", width_steps)
        self.start, self.stop = float(start), float(stop)
        self.midpoint_steps, self.width_steps = int(midpoint_steps), float(width_steps)

    def evaluate(self, step):
        t = (step - self.midpoint_steps) / self.width_steps
        return self.start + (self.stop - self.start) / (1.0 + np.exp(-t))


#: {name: class} of every schedule, by the name each declares.
SCHEDULES = {cls.NAME: cls for cls in (Constant, LinearWarmup, Cyclical, Sigmoid)}
#: Other spellings `get` accepts.
_ALIASES = {"linear_warmup": LinearWarmup}


def serialize(schedule):
    """Keras's config of `schedule` (`keras.saving.serialize_keras_object`)."""
    import keras  # Only here: the schedules themselves need no Keras.

    return keras.saving.serialize_keras_object(schedule)


def deserialize(config):
    """The schedule of a `serialize` config; this module's classes are
    found by name, as Keras's `deserialize(module_objects=...)` does."""
    import keras

    custom = {f"{_PACKAGE}>{cls.__name__}": cls for cls in SCHEDULES.values()}
    custom.update({cls.__name__: cls for cls in SCHEDULES.values()})  # Serialized unregistered.
    return keras.saving.deserialize_keras_object(config, custom_objects=custom)


def get(identifier, **kwargs):
    """A schedule from an instance, a number (constant), a config or a name.

    `get("linear", warmup_steps=500)` builds `LinearWarmup(warmup_steps=500)`.
    """
    if isinstance(identifier, BetaSchedule):
        return identifier
    if isinstance(identifier, int | float):
        return Constant(identifier)
    if isinstance(identifier, dict):
        return deserialize(identifier)
    names = {**SCHEDULES, **_ALIASES}
    if isinstance(identifier, str) and identifier.lower() in names:
        cls = names[identifier.lower()]
        try:
            return cls(**kwargs)
        except TypeError as err:
            raise ValueError(f"Bad parameters for the {identifier!r} schedule: {err}.") from None
    raise ValueError(
        f"Unknown beta schedule {identifier!r}: use one of {sorted(names)}."
    )
