"""A run folder's layout, name and checks; shared by train, sweep, evaluate and export.

`<output_dir>/<run_name>/` holds config.toml (written first), model.keras
(best validation ELBO), last.keras (last epoch), checkpoints/ (resume
state), logs/ (TensorBoard), images/ and, written last as the "finished"
marker, metrics.json. This module does not import TensorFlow, so a command
can refuse a wrong folder before paying for that import.

Example:

    >>> config = config_lib.load_config(overrides={"train.run_name": "demo"})
    >>> str(run_dir(config))
    'saved_models/demo'
"""

import hashlib
import json
import pathlib
import re

from pipelines import config as config_lib

CONFIG = "config.toml"
MODEL = "model.keras"
LAST = "last.keras"
METRICS = "metrics.json"
CHECKPOINTS = "checkpoints"
IMAGES = "images"
LOGS = "logs"

#: The numbers metrics.json holds per split and a sweep compares, with units.
BOUND_TERMS = ("rate", "distortion", "elbo")
METRIC_NAMES = {
    "rate": "rate (nats)",
    "distortion": "distortion (nats)",
    "elbo": "ELBO (nats)",
    "active_units": "active units",
}


class TrainingError(RuntimeError):
    """Training could not go on; the one-line message says what to do."""


class RunFolderError(FileNotFoundError):
    """A folder given as a run is none; the one-line message says what to do."""


class RunFileError(ValueError):
    """A file the run wrote is damaged, or disagrees with the rest of the run
    or with the command (a folder holding another config's run): exit 2, a bad
    run folder; the one-line message names the file and says what to do."""


def damaged(path, problem, remedy):
    """The RunFileError of the file at `path`: "'<path>' is damaged
    (<problem>): <remedy>" (no remedy: the caller says what to do)."""
    problem = " ".join(str(problem).split())[:300]
    return RunFileError(f"{str(path)!r} is damaged ({problem})" + (f": {remedy}" if remedy else ""))


def count(low=0):
    """A field check: an integer (not a bool) >= `low`."""
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low,
            f"an integer >= {low}")


def real(low=None, optional=False):
    """A field check: a number (not a bool) >= `low`; None too if `optional`."""
    def ok(v):
        if v is None:
            return optional
        return isinstance(v, int | float) and not isinstance(v, bool) and (
            low is None or v >= low)
    return ok, "a number" + (f" >= {low}" if low is not None else "") + (
        " or null" if optional else "")


def kind(*types, optional=False):
    """A field check: an instance of `types`; None too if `optional`."""
    names = " or ".join({dict: "an object", list: "a list", str: "a string"}[t] for t in types)
    return (lambda v: (optional and v is None) or isinstance(v, types),
            names + (" or null" if optional else ""))


#: metrics.json's fields that keras-vae reads back: {name: (test, what it must be)}.
METRICS_FIELDS = {"epochs_completed": count(0), "train": kind(dict), "best": kind(dict)}


def read_json(path, fields, remedy):
    """The JSON object at `path`, each of `fields` ({name: (test, what)})
    present and passing its test. The one way keras-vae reads back a JSON
    file it wrote: a truncated or edited file raises RunFileError naming it
    and `remedy`, never a raw JSON error or a later traceback."""
    try:
        value = json.loads(pathlib.Path(path).read_text())
    except UnicodeDecodeError as error:
        raise damaged(path, f"not text: {error.reason}", remedy) from None
    except ValueError as error:
        raise damaged(path, f"not JSON: {error}", remedy) from None
    if not isinstance(value, dict):
        raise damaged(path, f"a JSON {type(value).__name__}, not an object", remedy)
    for name, (test, what) in fields.items():
        if name not in value:
            raise damaged(path, f"no {name!r}", remedy)
        if not test(value[name]):
            raise damaged(path, f"{name!r} must be {what}, got {value[name]!r}", remedy)
    return value


def run_name(config):
    """`config["train"]["run_name"]`, or `<data>-<likelihood>-<schedule>-z<d>-s<seed>-<hash>`.

    The hash covers every key but `config.RUN_INDEPENDENT_KEYS`: the same
    command always names the same run (so it resumes), another config another.
    """
    if config["train"]["run_name"]:
        return config["train"]["run_name"]
    # + 0.0 makes -0.0 0.0: one config, one name.
    key = {k: v + 0.0 if isinstance(v, float) else v
           for k, v in config_lib.flatten(config).items()
           if k not in config_lib.RUN_INDEPENDENT_KEYS}
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
    """Where the run of `config` is written: `<output_dir>/<run_name>`."""
    return pathlib.Path(config["train"]["output_dir"]) / run_name(config)


def read_metrics(folder):
    """The run's metrics.json as a dict; None until the run has finished.
    Raises RunFileError if it is damaged."""
    path = pathlib.Path(folder) / METRICS
    if not path.exists():
        return None
    return read_json(path, METRICS_FIELDS, "delete it and rerun the run's keras-vae train "
                     "command: it is rewritten from the last checkpoint")


def check_same_run(config, remedy="pass another --run-name, or delete the folder to start over"):
    """Raises RunFileError (exit 2, a bad run folder) if the run folder of
    `config` holds another config's run."""
    folder = run_dir(config)
    path = folder / CONFIG
    if not path.exists():
        return
    changed = config_lib.differences(config_lib.load_config(path), config)
    if changed:
        raise RunFileError(
            f"{folder} holds a run with a different config ({', '.join(changed)} "
            f"changed): {remedy}"
        )


def check(folder, needs=(CONFIG, MODEL)):
    """`folder` as a Path; raises RunFolderError (one line) unless it is a
    folder holding every file of `needs`."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise RunFolderError(
            f"run folder {str(folder)!r} does not exist: pass a folder written by "
            "`keras-vae train` (e.g. saved_models/<run>)"
        )
    for name in needs:
        if not (folder / name).is_file():
            raise RunFolderError(
                f"{str(folder)!r} holds no {name}: train first with keras-vae train, "
                "or point at a run folder"
            )
    return folder


def sha256(path):
    """The hex SHA-256 of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_record(run_dir):
    """What the run's model.keras is: {"file", "sha256", "epoch" (the epoch it
    is of: best ELBO), "epochs_trained", "run_finished"}. From metrics.json,
    or for an unfinished run from its newest checkpoint's state.json; epochs
    None where neither says. Exports record it, so a stale export can be
    told from a fresh one; evaluate prints it."""
    run_dir = pathlib.Path(run_dir)
    record = {"file": MODEL, "sha256": sha256(check(run_dir, needs=(MODEL,)) / MODEL),
              "epoch": None, "epochs_trained": None, "run_finished": False}
    state = read_metrics(run_dir)
    if state is not None:
        record["run_finished"] = True
    else:
        found = sorted((run_dir / CHECKPOINTS).glob("epoch-[0-9]*/state.json"))
        state = found and read_json(
            found[-1], {"epochs_completed": count(1)},
            "delete that checkpoint folder (the one before it is used) or rerun keras-vae train")
    if state:
        best = state.get("best_epoch")
        record["epoch"] = best if isinstance(best, int) and not isinstance(best, bool) else None
        record["epochs_trained"] = state["epochs_completed"]
    return record


def describe_source(record):
    """One phrase: which epoch's model.keras `record` is, of what run."""
    epoch = f"epoch {record['epoch']}" if record["epoch"] else "an unrecorded epoch"
    if record["run_finished"]:
        return (f"model.keras of {epoch} (best ELBO) of a run finished after "
                f"{record['epochs_trained']} epochs")
    if record["epochs_trained"]:
        return (f"model.keras of {epoch} (best ELBO) of an unfinished run, "
                f"{record['epochs_trained']} epochs trained")
    return "model.keras (the run records no epochs)"
