"""β's one registry: each schedule and controller by name, with its parameters.

The `[beta]` table of a config is tagged: the name of one entry of `REGISTRY`
as a sub-table holding only that entry's parameters,

    [beta.linear]
    warmup_steps = 2000

and `resolve` turns it into the flat dict the pipelines pass around,
`{"schedule": "linear", "start": 0.0, ...}`, rejecting unknown names, keys
the entry does not take and missing required ones. `callback` builds the
Keras callback that writes β during `fit`. This module declares; it imports
Keras only when `callback` builds, so a config can be checked without it.

Example:

    >>> resolve({"schedule": "constant", "value": 0.5}, {"update_freq": "batch"})
    {'schedule': 'constant', 'value': 0.5, 'update_freq': 'batch'}
"""

import dataclasses
import importlib


@dataclasses.dataclass(frozen=True)
class Entry:
    """One β source: `cls` ("module:Class"), its parameters, and which of
    them must be set (a controller's set point)."""

    cls: str
    parameters: tuple
    required: tuple = ()
    controller: bool = False

    @property
    def kind(self):
        return "controller" if self.controller else "schedule"


_SCHEDULE_FREQ = ("update_freq",)  # BetaScheduler's own argument, not the schedule's.

#: Every name the [beta] table accepts.
REGISTRY = {
    "constant": Entry("keras_vae.schedules:Constant", ("value", *_SCHEDULE_FREQ)),
    "linear": Entry("keras_vae.schedules:LinearWarmup",
                    ("start", "stop", "warmup_steps", "delay_steps", *_SCHEDULE_FREQ)),
    "cyclical": Entry("keras_vae.schedules:Cyclical",
                      ("period", "ratio", "start", "stop", *_SCHEDULE_FREQ)),
    "sigmoid": Entry("keras_vae.schedules:Sigmoid",
                     ("start", "stop", "midpoint_steps", "width_steps", *_SCHEDULE_FREQ)),
    # ControlVAE (Shao et al. 2020) and GECO (Rezende & Viola 2018).
    "kl_target": Entry("keras_vae.callbacks:KLTargetController",
                       ("target_rate", "kp", "ki", "beta_min", "beta_max"),
                       required=("target_rate",), controller=True),
    "geco": Entry("keras_vae.callbacks:GECO",
                  ("tolerance", "alpha", "step_size", "beta_min", "beta_max"),
                  required=("tolerance",), controller=True),
}


def entry(name):
    """The `Entry` called `name`, or a one-line ValueError listing the names."""
    if name not in REGISTRY:
        raise ValueError(f"Unknown beta schedule {name!r}: use one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def resolve(beta, defaults=None, names=None):
    """The flat β dict `{"schedule": name, **every parameter of name}`.

    Args:
        beta: {"schedule": name, parameter: value, ...}; parameters left out
            take `defaults` (`None` values count as left out).
        defaults: {parameter: default}, e.g. `config.BETA_DEFAULTS`.
        names: {dotted key: command-line flag}, for the messages.

    Raises:
        ValueError, one line: an unknown name, a key the entry does not
        take, or a required one unset.
    """
    names = names or {}

    def shown(key):
        return f"{names[f'beta.{key}']} (beta.{key})" if f"beta.{key}" in names else f"beta.{key}"

    name = beta["schedule"]
    found = entry(name)
    unused = [k for k, v in beta.items() if k != "schedule" and v is not None
              and k not in found.parameters]
    if unused:
        # Name the schedules that do take them: `--beta 0.5` alone means "constant".
        takers = [other for other, e in REGISTRY.items() if set(unused) <= set(e.parameters)]
        hint = (f"; {' or '.join(takers)} take{'s' if len(takers) == 1 else ''} "
                f"{'it' if len(unused) == 1 else 'them'}: "
                f"{names.get('beta.schedule', 'beta.schedule =')} {takers[0]} "
                f"([beta.{takers[0]}] in a file)" if takers else "")
        verb = "is not a parameter" if len(unused) == 1 else "are not parameters"
        raise ValueError(
            f"{', '.join(map(shown, unused))} {verb} of the {name} {found.kind}, "
            f"whose [beta.{name}] keys are {', '.join(found.parameters)}{hint}"
        )
    resolved = {"schedule": name}
    for key in found.parameters:
        value = beta.get(key)
        resolved[key] = (defaults or {}).get(key) if value is None else value
    for key in found.required:
        if resolved[key] is None:
            flag = names.get(f"beta.{key}", "--" + key.replace("_", "-"))
            raise ValueError(f"The {name} {found.kind} needs beta.{key} ({flag}), nats per image")
    return resolved


def callback(beta, state=None):
    """(the callback that writes β during `fit`, β at step 0) for a resolved
    β dict; `state`: a controller's saved `get_config()`, to resume it."""
    found = entry(beta["schedule"])
    module, _, name = found.cls.partition(":")
    cls = getattr(importlib.import_module(module), name)
    kwargs = {k: v for k, v in beta.items() if k not in ("schedule", *_SCHEDULE_FREQ)
              and v is not None}
    if found.controller:
        controller = cls.from_config(state) if state else cls(**kwargs)
        return controller, controller.beta
    from keras_vae import callbacks

    schedule = cls(**kwargs)
    return callbacks.BetaScheduler(schedule, update_freq=beta["update_freq"]), schedule(0)
