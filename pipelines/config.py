"""Run configuration: defaults < TOML file < overrides.

Each table is a dataclass of `pipelines.schema` whose fields carry, in their
metadata, the help text (with units), the command-line flag and the allowed
range; the defaults (`DEFAULTS`), the flags (`pipelines.flags`), the checks
(`validate`) and the written TOML (`to_toml`) all come from them. A config
in memory is a dict of four tables, `data`, `model`, `beta` and `train`;
`beta` is flat, `{"schedule": name, **its parameters}`, and is written as
the tagged table `[beta.<name>]` (see `pipelines.beta`). `None` means "not
set": TOML has no null, so such keys are left out of the files written.

This module does not import TensorFlow.
"""

import copy
import hashlib
import json
import re
import dataclasses
import math
import pathlib
import tomllib
import types

import tomli_w

from keras_vae import files
from export import runfolder
from pipelines import beta as beta_lib
from pipelines.schema import TABLES, Beta


#: Every field: {"table.key": dataclasses.Field}.
FIELDS = {f"{t}.{f.name}": f for t, cls in TABLES.items() for f in dataclasses.fields(cls)}
#: The β parameters' defaults, for `pipelines.beta.resolve`.
BETA_DEFAULTS = dataclasses.asdict(Beta())
#: The default config (β: only the default schedule's parameters).
DEFAULTS = {t: dataclasses.asdict(cls()) for t, cls in TABLES.items()}
DEFAULTS["beta"] = beta_lib.resolve({"schedule": Beta.schedule}, BETA_DEFAULTS)

#: Keys that may change without making a run a different run: where it is
#: written, how long it trains (raising epochs trains a run further), when it
#: warns and whether its pictures come from a cache (the same pixels either way).
RUN_INDEPENDENT_KEYS = ("train.run_name", "train.output_dir", "train.epochs",
                        "train.collapse_active_units", "train.collapse_rate_per_unit",
                        "data.cache", "data.cache_dir", "compare.seeds", "compare.curve_points")


#: Keys added after runs were first named, with their defaults: at the
#: default they are left out of `run_name`'s hash, so a run named before them
#: keeps its name (and resumes).
LATER_DEFAULTS = {"model.architecture": "conv"}

#: The largest seed NumPy and TensorFlow take (`keras.utils.set_random_seed`).
MAX_SEED = 2**32 - 1


def value_type(field):
    """The Python type a field holds: `int` for `int | None`, `list` for `list[int]`."""
    kind = field.type
    if isinstance(kind, types.UnionType):
        kind = next(k for k in kind.__args__ if k is not type(None))
    return getattr(kind, "__origin__", kind)


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
        check = FIELDS[key].metadata["check"]
        if value is None or check is None:
            continue
        test, allowed = check
        try:  # Keys whose default is None take any type from a TOML file.
            ok = not isinstance(value, bool) and test(value) and (
                not isinstance(value, float) or math.isfinite(value))
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(f"{name(key)} must be {allowed}, got {_shown(value)}")
    _check_names_and_seeds(config, name)
    config["beta"] = beta_lib.resolve(config["beta"], BETA_DEFAULTS, names)
    low, high = (config["beta"].get(k) for k in ("beta_min", "beta_max"))
    if None not in (low, high) and low > high:
        raise ValueError(
            f"{name('beta.beta_min')} must be <= {name('beta.beta_max')}, got {low:g} > {high:g}"
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


def _check_names_and_seeds(config, name):
    """Seeds in 0..MAX_SEED (NumPy's range); a run name that is one folder
    name, so that no run is written outside --output-dir."""
    for key in ("train.seed", "data.seed"):
        section, _, field = key.partition(".")
        value = config[section][field]
        if isinstance(value, int) and not 0 <= value <= MAX_SEED:
            raise ValueError(f"{name(key)} must be an integer from 0 to {MAX_SEED}, "
                             f"got {value}")
    run = config["train"]["run_name"]
    if run and (run.strip(".") == "" or any(c in run for c in "/\\\0")):
        raise ValueError(
            f"{name('train.run_name')} must be a folder name, without '/' and not '.' or "
            f"'..' (the run is written in --output-dir), got {run!r}"
        )


def _shown(value):
    if isinstance(value, list):
        return ",".join(map(str, value)) or "an empty list"
    return repr(value)


def load_config(path=None, overrides=None, names=None):
    """The resolved config: `DEFAULTS` < the TOML file at `path` < `overrides`.

    Args:
        path: a TOML file with any of the tables and keys of `DEFAULTS`.
        overrides: a dict of dotted keys, e.g. `{"model.latent_dim": 8}`;
            `None` values are ignored (an unset command-line flag). A
            "beta.schedule" other than the file's drops the file's β keys.
        names: {dotted key: command-line flag}, for the messages.

    Raises:
        FileNotFoundError, or ValueError for invalid TOML, an unknown key, a
        value of the wrong type or out of range (see `validate`), a flat
        [beta] table, with a one-line message.

    Example:

        >>> load_config(overrides={"beta.schedule": "constant", "beta.value": 0.5})["beta"]
        {'schedule': 'constant', 'value': 0.5, 'update_freq': 'batch'}
    """
    config = copy.deepcopy(DEFAULTS)
    if path is not None:
        values = _read(path)
        if "beta.schedule" in values:
            config["beta"] = {}  # The file's β table replaces the default one.
        for dotted, value in values.items():
            _set(config, dotted, value, where=str(path))
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if overrides.get("beta.schedule", config["beta"]["schedule"]) != config["beta"]["schedule"]:
        config["beta"] = {}  # The file's parameters belong to another schedule.
    for dotted, value in sorted(overrides.items(), key=lambda kv: kv[0] != "beta.schedule"):
        _set(config, dotted, value, where="overrides")
    return validate(config, names)


def _read(path):
    """{dotted key: value} of a TOML config file; [beta.<name>] gives beta.schedule."""
    if not pathlib.Path(path).is_file():
        raise FileNotFoundError(f"Config file {str(path)!r} not found: check the --config path")
    with open(path, "rb") as f:
        try:
            document = tomllib.load(f)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path} is not valid TOML: {err}") from None
    values = {}
    for section, table in document.items():
        if not isinstance(table, dict):
            raise ValueError(f"{path}: {section!r} must be a table such as [{section}]; "
                             f"the tables are {', '.join(TABLES)}")
        if section == "beta":
            table = _untag(table, path)
        values.update({f"{section}.{key}": value for key, value in table.items()})
    return values


def _untag(table, path):
    """{"schedule": name, **parameters} of a tagged [beta.<name>] table."""
    tagged = [k for k, v in table.items() if isinstance(v, dict)]
    if len(tagged) != 1 or len(table) != 1:
        name = table.get("schedule", "linear")
        raise ValueError(
            f"{path}: [beta] must be one tagged table holding only that schedule's keys, "
            f'e.g. [beta.{name}] (instead of [beta] with schedule = "{name}"); the names are '
            f"{', '.join(beta_lib.REGISTRY)}"
        )
    beta_lib.entry(tagged[0])
    return {"schedule": tagged[0], **table[tagged[0]]}


def _set(config, dotted, value, where):
    section, _, key = dotted.partition(".")
    if dotted not in FIELDS:
        known = ", ".join(k for k in FIELDS if k.startswith(section + ".")) or (
            "tables " + ", ".join(TABLES)
        )
        raise ValueError(f"{where}: unknown config key {dotted!r}; known: {known}")
    kind = value_type(FIELDS[dotted])
    # int where a float is expected is fine (TOML `1` for `1.0`); bool is not a number.
    numeric = kind is float and isinstance(value, int) and not isinstance(value, bool)
    if not numeric and type(value) is not kind:
        raise ValueError(f"{where}: {dotted} must be a {kind.__name__}, got {value!r}")
    config[section][key] = float(value) if numeric else value


def flatten(config):
    """{"section.key": value} for every key of a config."""
    return {f"{s}.{k}": v for s, table in config.items() for k, v in table.items()}


def differences(old, new, ignore=RUN_INDEPENDENT_KEYS):
    """Dotted keys whose values differ between two configs, sorted."""
    old, new = flatten(old), flatten(new)
    return sorted(k for k in old.keys() | new.keys() if k not in ignore and old.get(k) != new.get(k))


def to_toml(config):
    """The TOML text of a config, β as its tagged table; `None` values are
    left out: reading the file back gives their defaults."""
    document = {s: {k: v for k, v in t.items() if v is not None} for s, t in config.items()}
    name = document["beta"].pop("schedule")
    document["beta"] = {name: document["beta"]}
    return tomli_w.dumps(document)


def dump_toml(config, path):
    """Writes `to_toml(config)` to `path` atomically."""
    files.write_text(path, to_toml(config))


def steps_per_epoch(config, train_samples):
    """Training steps per epoch: the [train] value, or one pass over the data."""
    t = config["train"]
    return t["steps_per_epoch"] or math.ceil(train_samples / t["batch_size"])


def model_spec(config, image_shape, **changes):
    """The `keras_vae.models.ModelSpec` of `config` ([model], and [train]'s
    precision and seed) for images of `image_shape`, with `changes` (e.g.
    beta=, autoencoder=True) applied: the one way a command turns a config
    into networks. Imports TensorFlow (through keras_vae) when called."""
    from keras_vae.models import ModelSpec

    m, t = config["model"], config["train"]
    spec = ModelSpec(
        tuple(int(s) for s in image_shape), latent_dim=m["latent_dim"],
        likelihood=m["likelihood"], filters=tuple(m["filters"]), kernel_size=m["kernel_size"],
        architecture=m["architecture"], precision=t["precision"], free_bits=m["free_bits"],
        kl=m["kl"], seed=t["seed"],
    )
    return dataclasses.replace(spec, **changes)


def run_name(config):
    """`config["train"]["run_name"]`, or `<data>-<likelihood>-<schedule>-z<d>-s<seed>-<hash>`.

    The hash covers every key but `config.RUN_INDEPENDENT_KEYS`: the same
    command always names the same run (so it resumes), another config another.
    """
    if config["train"]["run_name"]:
        return config["train"]["run_name"]
    # + 0.0 makes -0.0 0.0: one config, one name.
    key = {k: v + 0.0 if isinstance(v, float) else v
           for k, v in flatten(config).items()
           if k not in RUN_INDEPENDENT_KEYS and LATER_DEFAULTS.get(k, ()) != v}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:6]
    name = "-".join([
        pathlib.Path(str(config["data"]["source"])).name or "data",
        config["model"]["likelihood"],
        config["beta"]["schedule"],
        f"z{config['model']['latent_dim']}",
        f"s{config['train']['seed']}",
        digest,
    ])
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def run_dir(config):
    """Where the run of `config` is written: `<output_dir>/<run_name>`.

    Example:

        >>> str(run_dir(load_config(overrides={"train.run_name": "demo"})))
        'saved_models/demo'
    """
    return pathlib.Path(config["train"]["output_dir"]) / run_name(config)


def check_same_run(config, remedy="pass another --run-name, or delete the folder to start over"):
    """Raises RunFileError (exit 2, a bad run folder) if the run folder of
    `config` holds another config's run."""
    folder = run_dir(config)
    path = folder / runfolder.CONFIG
    if not path.exists():
        return
    changed = differences(load_config(path), config)
    if changed:
        raise runfolder.RunFileError(
            f"{folder} holds a run with a different config ({', '.join(changed)} "
            f"changed): {remedy}"
        )
