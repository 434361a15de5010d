"""Run configuration: defaults < TOML file < overrides, and a small TOML writer.

A config is a dict of four tables, `data`, `model`, `beta` and `train`
(see `DEFAULTS` for every key and its meaning). `None` means "not set": TOML
has no null, so such keys are simply left out of the files written here.
"""

import copy
import math
import pathlib
import tomllib

from keras_vae import files
from keras_vae import precision as precision_lib

DEFAULTS = {
    "data": {
        "source": "paintings",  # A folder of images or an embedded set name.
        "image_size": 64,  # Side of the square training images, px.
        "channels": 3,  # 1 (grayscale) or 3 (RGB).
        "validation_split": 0.1,  # Fraction of the pictures held out.
        "seed": 0,  # Fixes the split, the shuffling and the random crops.
        "random_crops": None,  # None: automatic (paintings, small folders).
        "crops_per_image": None,  # Random crops per picture per epoch.
    },
    "model": {
        "latent_dim": 16,
        "filters": [32, 64, 128],  # One stride-2 convolution per entry.
        "kernel_size": 4,
        "likelihood": "gaussian_learned",  # See keras_vae.likelihoods.get.
        "kl": "auto",  # "analytic", "mc" or "auto".
        "free_bits": 0.0,  # KL floor per latent dimension, nats.
    },
    "beta": {
        # constant | linear | cyclical | sigmoid (schedules of the step), or
        # the feedback controllers kl_target (ControlVAE) | geco (GECO).
        "schedule": "linear",
        "value": 1.0,  # constant
        "start": 0.0,  # linear, cyclical, sigmoid
        "stop": 1.0,  # linear, cyclical, sigmoid
        "warmup_steps": 1000,  # linear
        "delay_steps": 0,  # linear
        "period": 1000,  # cyclical
        "ratio": 0.5,  # cyclical
        "midpoint_steps": 1000,  # sigmoid
        "width_steps": 100,  # sigmoid
        "update": "batch",  # Schedules: per "batch" (step) or per "epoch".
        "target_rate": None,  # kl_target: the rate set point, nats per image.
        "kp": 0.01,  # kl_target
        "ki": 0.0001,  # kl_target
        "tolerance": None,  # geco: the distortion bound, nats per image.
        "alpha": 0.99,  # geco
        "step_size": 0.001,  # geco
        "beta_min": None,  # kl_target, geco (None: the controller's default)
        "beta_max": None,  # kl_target, geco
    },
    "train": {
        "epochs": 10,
        "batch_size": 32,  # Global: split across replicas and workers.
        "learning_rate": 0.001,  # Adam.
        "seed": 0,  # Weight initialisation and the sampling of z.
        "steps_per_epoch": None,  # None: one pass over the training data.
        "run_name": None,  # None: derived from the config (see run_name).
        "output_dir": "saved_models",
        "strategy": "default",  # default | mirrored | multiworker
        # auto | float32 | mixed_bfloat16 | mixed_float16 (keras_vae.precision):
        # what the networks compute in; the loss terms are float32 whatever it is.
        "precision": "auto",
        "image_every": 1,  # Epochs between TensorBoard images; 0 for none.
        "update_freq": 50,  # Steps between per-step TensorBoard summaries; 0: none.
    },
}

def _at_least(low):
    return (lambda v: v >= low), f">= {low:g}"


def _above(low):
    return (lambda v: v > low), f"> {low:g}"


#: The allowed values of every numeric key: (test, what the message says).
#: None (not set) always passes; floats must also be finite.
RANGES = {
    "data.image_size": _at_least(1),
    "data.channels": ((lambda v: v in (1, 3)), "1 or 3"),
    "data.validation_split": ((lambda v: 0 <= v < 1), "in [0, 1)"),
    "data.seed": _at_least(0),
    "data.crops_per_image": _at_least(1),
    "model.latent_dim": _at_least(1),
    "model.filters": ((lambda v: len(v) > 0 and all(isinstance(f, int) and f >= 1 for f in v)),
                      "a non-empty list of widths >= 1, e.g. 32,64,128"),
    "model.kernel_size": _at_least(1),
    "model.free_bits": _at_least(0),
    "beta.value": _at_least(0),
    "beta.start": _at_least(0),
    "beta.stop": _at_least(0),
    "beta.warmup_steps": _at_least(1),
    "beta.delay_steps": _at_least(0),
    "beta.period": _at_least(1),
    "beta.ratio": ((lambda v: 0 < v <= 1), "in (0, 1]"),
    "beta.midpoint_steps": _at_least(0),
    "beta.width_steps": _above(0),
    "beta.update": ((lambda v: v in ("batch", "epoch")), "batch or epoch"),
    "beta.target_rate": _at_least(0),
    "beta.kp": _at_least(0),
    "beta.ki": _at_least(0),
    "beta.tolerance": ((lambda v: True), "finite"),
    "beta.alpha": ((lambda v: 0 <= v < 1), "in [0, 1)"),
    "beta.step_size": _above(0),
    "beta.beta_min": _at_least(0),
    "beta.beta_max": _at_least(0),
    "train.epochs": _at_least(1),
    "train.batch_size": _at_least(1),
    "train.learning_rate": _above(0),
    "train.seed": _at_least(0),
    "train.steps_per_epoch": _at_least(1),
    "train.image_every": _at_least(0),  # 0: no pictures.
    "train.update_freq": _at_least(0),  # 0: epoch ends only.
    "train.precision": ((lambda v: v in precision_lib.PRECISIONS),
                        " or ".join(precision_lib.PRECISIONS)),
}


def validate(config, names=None):
    """Raises ValueError, one line naming the key (and its flag, from
    `names`: {dotted key: flag}) and the allowed range, unless every value
    of `config` is in range; returns `config`.

    Checked once on the resolved config, so values from a TOML file and from
    flags get the same messages.
    """
    names = names or {}

    def name(key):
        return f"{names[key]} ({key})" if key in names else key

    for key, value in flatten(config).items():
        if value is None or key not in RANGES:
            continue
        test, allowed = RANGES[key]
        try:  # Keys whose default is None take any type from a TOML file.
            ok = not isinstance(value, bool) and test(value) and (
                not isinstance(value, float) or math.isfinite(value))
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(f"{name(key)} must be {allowed}, got {_shown(value)}")
    likelihood = config["model"]["likelihood"]
    if likelihood.startswith("gaussian:"):
        try:
            sigma = float(likelihood.partition(":")[2])
        except ValueError:
            sigma = None
        if sigma is None or not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(
                f"{name('model.likelihood')} gaussian:SIGMA needs a pixel noise sigma > 0 "
                f"(e.g. gaussian:0.1), got {likelihood!r}"
            )
    beta = config["beta"]
    if None not in (beta["beta_min"], beta["beta_max"]) and beta["beta_min"] > beta["beta_max"]:
        raise ValueError(
            f"{name('beta.beta_min')} must be <= {name('beta.beta_max')}, got "
            f"{beta['beta_min']:g} > {beta['beta_max']:g}"
        )
    side, depth = config["data"]["image_size"], len(config["model"]["filters"])
    factor = 2**depth
    if side % factor:
        lower = max(factor, side // factor * factor)
        raise ValueError(
            f"{name('data.image_size')} must be divisible by 2^{depth} = {factor} (one "
            f"halving per {name('model.filters')} entry), got {side}: use {lower} or "
            f"{lower + factor}, or fewer filters"
        )
    return config


def _shown(value):
    if isinstance(value, list):
        return ",".join(map(str, value)) or "an empty list"
    return repr(value)


#: Keys that may change without making a run a different run: where it is
#: written, and how long it trains (raising epochs trains a run further).
RUN_INDEPENDENT_KEYS = ("train.run_name", "train.output_dir", "train.epochs")


def load_config(path=None, overrides=None, names=None):
    """The resolved config: `DEFAULTS` < the TOML file at `path` < `overrides`.

    Args:
        path: a TOML file with any of the tables and keys of `DEFAULTS`.
        overrides: a dict of dotted keys, e.g. `{"model.latent_dim": 8}`;
            `None` values are ignored (an unset command-line flag).
        names: {dotted key: command-line flag}, for the messages.

    Raises:
        FileNotFoundError, or ValueError for invalid TOML, an unknown key, a
        value of the wrong type or out of range (see `validate`), with a
        one-line message.
    """
    config = copy.deepcopy(DEFAULTS)
    if path is not None:
        if not pathlib.Path(path).is_file():
            raise FileNotFoundError(f"Config file {str(path)!r} not found: check the --config path")
        with open(path, "rb") as f:
            try:
                document = tomllib.load(f)
            except tomllib.TOMLDecodeError as err:
                raise ValueError(f"{path} is not valid TOML: {err}") from None
        for section, table in document.items():
            if not isinstance(table, dict):
                raise ValueError(
                    f"{path}: {section!r} must be a table such as [{section}]; "
                    f"the tables are {', '.join(DEFAULTS)}"
                )
            for key, value in table.items():
                _set(config, f"{section}.{key}", value, where=str(path))
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set(config, dotted, value, where="overrides")
    return validate(config, names)


def _set(config, dotted, value, where):
    section, _, key = dotted.partition(".")
    if section not in DEFAULTS or key not in DEFAULTS[section]:
        known = ", ".join(f"{section}.{k}" for k in DEFAULTS.get(section, {})) or (
            "tables " + ", ".join(DEFAULTS)
        )
        raise ValueError(f"{where}: unknown config key {dotted!r}; known: {known}")
    default = DEFAULTS[section][key]
    # int where a float is expected is fine (TOML `1` for `1.0`); bool is not a number.
    numeric = isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)
    if default is not None and not numeric and type(value) is not type(default):
        raise ValueError(
            f"{where}: {dotted} must be a {type(default).__name__}, got {value!r}"
        )
    config[section][key] = float(value) if numeric else value


def flatten(config):
    """{"section.key": value} for every key of a config."""
    return {f"{s}.{k}": v for s, table in config.items() for k, v in table.items()}


def differences(old, new, ignore=RUN_INDEPENDENT_KEYS):
    """Dotted keys whose values differ between two configs, sorted."""
    old, new = flatten(old), flatten(new)
    return sorted(k for k in old.keys() | new.keys() if k not in ignore and old.get(k) != new.get(k))


def dump_toml(config, path):
    """Writes a config (nested dicts of str, int, float, bool, lists) as TOML.

    `None` values are left out: reading the file back gives their defaults.
    """
    lines = []
    for section, table in config.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(v)}" for key, v in table.items() if v is not None]
        lines.append("")
    files.write_text(path, "\n".join(lines))


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)  # repr round-trips floats exactly, e.g. 1e-06.
    if isinstance(value, str):
        # TOML basic strings share JSON's escapes for \\ and \".
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"Cannot write {value!r} ({type(value).__name__}) as TOML.")
