"""β controllers: feedback laws that set β from the measured rate or distortion.

Where a schedule (`keras_vae.schedules`) is a pure function of the step, a
controller holds state: after each batch, `update(measured)` takes the
model's last batch rate or distortion (nats per image, the attribute named
by `READS`) and returns the new β. Its state is public attributes of the
constructor's names (`STATE`), so `get_config` saves it and `from_config`
resumes it.

The classes are the registry: each declares its `NAME` (the
`[beta.<NAME>]` table of a config), the `PARAMETERS` a user sets (the
arguments without a default are required: the set point) and its `STATE`;
`CONTROLLERS` maps names to classes, and `pipelines.beta` derives the
config's keys from them. NumPy-free and TensorFlow-free: the Keras callbacks
that run them during `fit` are `keras_vae.callbacks.KLTargetController` and
`keras_vae.callbacks.GECO`, these classes plus the writing of `model.beta`.
"""

import math


class Controller:
    """Base class: `update(measured) -> β`, with its state in the open."""

    #: The name a config calls it by.
    NAME = None
    #: The model attribute whose value `update` takes ("batch_rate", ...).
    READS = None
    #: The constructor's arguments a user sets.
    PARAMETERS = ()
    #: Every constructor argument, kept as attributes of the same names.
    STATE = ()

    def update(self, measured):
        """One step from the measured value (nats per image); returns β."""
        raise NotImplementedError

    def get_config(self):
        return {name: getattr(self, name) for name in self.STATE}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class KLTarget(Controller):
    """ControlVAE's PI controller (Shao et al. 2020): drive the rate to a set point.

    After each batch, with error e = target_rate − rate (nats):
        β = kp / (1 + exp(e)) − ki·Σe + beta_min, clipped to [beta_min, beta_max].
    A rate above target (e < 0) raises β; below target lowers it. The integral
    only accumulates while β is inside its range (anti-windup).

    State, in the open: `integral` (nats·steps), `beta`, `last_error`.

    Example:

    >>> controller = KLTarget(target_rate=5.0, kp=0.01, ki=0.001)
    >>> controller.update(rate=9.0) > controller.beta_min  # Rate too high: β rises.
    True
    """

    NAME = "kl_target"
    READS = "batch_rate"
    PARAMETERS = ("target_rate", "kp", "ki", "beta_min", "beta_max")
    STATE = (*PARAMETERS, "integral", "beta", "last_error")

    def __init__(self, target_rate, kp=0.01, ki=0.0001, beta_min=0.0, beta_max=1.0,
                 integral=0.0, beta=None, last_error=0.0):
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


class GECO(Controller):
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

    NAME = "geco"
    READS = "batch_distortion"
    PARAMETERS = ("tolerance", "alpha", "step_size", "beta_min", "beta_max")
    STATE = (*PARAMETERS, "lagrange_multiplier", "moving_average")

    def __init__(self, tolerance, alpha=0.99, step_size=1e-3, beta_min=1e-4, beta_max=1.0,
                 lagrange_multiplier=1.0, moving_average=None):
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


#: {name: class} of every controller, by the name each declares.
CONTROLLERS = {cls.NAME: cls for cls in (KLTarget, GECO)}
