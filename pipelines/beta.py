"""β's registry, as a config sees it: each schedule and controller by name,
with its parameters, derived from the classes.

The classes declare themselves (`NAME`, `PARAMETERS`; a controller's
arguments without a default are its required set point), as Keras's
`deserialize(module_objects=...)` finds classes by name:
`keras_vae.schedules.SCHEDULES` and `keras_vae.controllers.CONTROLLERS`,
both free of TensorFlow. This module adds only what a config needs besides:
a schedule also takes `update_freq` (its `BetaScheduler`'s), and the
messages.

The `[beta]` table of a config is tagged: the name of one schedule or
controller as a sub-table holding only its parameters,

    [beta.linear]
    warmup_steps = 2000

and `resolve` turns it into the flat dict the pipelines pass around,
`{"schedule": "linear", "start": 0.0, ...}`, rejecting unknown names, keys
the entry does not take and missing required ones. The key `schedule` (and
the flag `--beta-schedule`) names a schedule *or* a controller: config files
and flags keep that spelling; code and messages say which it is (`Entry.kind`).
`callback` builds the Keras callback that writes β during `fit`, importing
Keras only then, so a config is checked without it.

Example:

    >>> resolve({"schedule": "constant", "value": 0.5}, {"update_freq": "batch"})
    {'schedule': 'constant', 'value': 0.5, 'update_freq': 'batch'}
    >>> REGISTRY["geco"].kind, REGISTRY["geco"].required
    ('controller', ('tolerance',))
"""

import dataclasses
import inspect

from keras_vae import controllers
from keras_vae import schedules

_SCHEDULE_FREQ = ("update_freq",)  # BetaScheduler's own argument, not the schedule's.


@dataclasses.dataclass(frozen=True)
class Entry:
    """One source of β, a `BetaSchedule` or a `Controller` class, with what
    a config may set of it."""

    cls: type

    @property
    def controller(self):
        return issubclass(self.cls, controllers.Controller)

    @property
    def kind(self):
        return "controller" if self.controller else "schedule"

    @property
    def parameters(self):
        """The keys of its `[beta.<name>]` table."""
        return self.cls.PARAMETERS if self.controller else (*self.cls.PARAMETERS,
                                                            *_SCHEDULE_FREQ)

    @property
    def required(self):
        """The parameters without a default (a controller's set point)."""
        signature = inspect.signature(self.cls).parameters
        return tuple(name for name in self.cls.PARAMETERS
                     if signature[name].default is inspect.Parameter.empty)


#: Every name the [beta] table accepts: the schedules, then the controllers.
REGISTRY = {name: Entry(cls) for name, cls in
            {**schedules.SCHEDULES, **controllers.CONTROLLERS}.items()}


def entry(name):
    """The `Entry` called `name`, or a one-line ValueError listing the names."""
    if name not in REGISTRY:
        raise ValueError(f"Unknown beta schedule or controller {name!r}: use one of "
                         f"{', '.join(REGISTRY)}")
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
    from keras_vae import callbacks  # Keras, here only.

    found = entry(beta["schedule"])
    kwargs = {k: v for k, v in beta.items() if k in found.cls.PARAMETERS and v is not None}
    if found.controller:
        cls = callbacks.CONTROLLERS[beta["schedule"]]
        controller = cls.from_config(state) if state else cls(**kwargs)
        return controller, controller.beta
    schedule = found.cls(**kwargs)
    return callbacks.BetaScheduler(schedule, update_freq=beta["update_freq"]), schedule(0)
