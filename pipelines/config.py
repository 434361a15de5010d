"""Run configuration: defaults < TOML file < overrides, and a small TOML writer.

A config is a dict of four tables, `data`, `model`, `beta` and `train`
(see `DEFAULTS` for every key and its meaning). `None` means "not set": TOML
has no null, so such keys are simply left out of the files written here.
"""

import copy
import pathlib
import tomllib

from keras_vae import files

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
        "image_every": 1,  # Epochs between TensorBoard images.
        "update_freq": 50,  # Steps between per-step TensorBoard summaries.
    },
}

#: Keys that may change without making a run a different run: where it is
#: written, and how long it trains (raising epochs trains a run further).
RUN_INDEPENDENT_KEYS = ("train.run_name", "train.output_dir", "train.epochs")


def load_config(path=None, overrides=None):
    """The resolved config: `DEFAULTS` < the TOML file at `path` < `overrides`.

    Args:
        path: a TOML file with any of the tables and keys of `DEFAULTS`.
        overrides: a dict of dotted keys, e.g. `{"model.latent_dim": 8}`;
            `None` values are ignored (an unset command-line flag).

    Raises:
        FileNotFoundError, tomllib.TOMLDecodeError, or ValueError for an
        unknown key or a value of the wrong type, with a one-line message.
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
    return config


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
