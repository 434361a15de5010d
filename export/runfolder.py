"""A run folder's layout and checks: what train writes and every later stage reads.

`<output_dir>/<run_name>/` holds config.toml (written first), model.keras
(best validation ELBO), last.keras (last epoch), checkpoints/ (resume
state), logs/ (TensorBoard), images/ and, written last as the "finished"
marker, metrics.json. This module does not import TensorFlow, so a command
can refuse a wrong folder before paying for that import.

A run's folder name comes from its config (`pipelines.config.run_dir`).

Example:

    >>> describe_source({"epoch": 7, "epochs_trained": 10, "run_finished": True})
    'model.keras of epoch 7 (best ELBO) of a run finished after 10 epochs'
"""

import hashlib
import json
import pathlib

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


def read_metrics(folder):
    """The run's metrics.json as a dict; None until the run has finished.
    Raises RunFileError if it is damaged."""
    path = pathlib.Path(folder) / METRICS
    if not path.exists():
        return None
    return read_json(path, METRICS_FIELDS, "delete it and rerun the run's keras-vae train "
                     "command: it is rewritten from the last checkpoint")


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


RETRAIN = "train the run again (delete its folder, or pass another --run-name)"


def load_model(path, kind=None, compile=True):
    """The `kind` model (None: a `keras_vae.VAE`) saved at `path` (Keras's
    safe mode: no Lambda code). Imports TensorFlow, here only: the checks
    above stay cheap.

    Raises RunFileError if the file is damaged (Keras says "File not found"
    for a truncated zip) or holds another kind of model."""
    import keras

    import keras_vae

    kind = keras_vae.VAE if kind is None else kind
    path = pathlib.Path(path)
    try:
        model = keras.saving.load_model(path, compile=compile)
    except Exception as error:  # Keras raises many types for a bad file.
        problem = "not a Keras model file, or a truncated one"
        if not isinstance(error, ValueError) or "File not found" not in str(error):
            problem = f"{type(error).__name__}: {error}"
        raise damaged(path, problem, RETRAIN) from None
    if not isinstance(model, kind):
        raise RunFileError(
            f"{str(path)!r} holds a {type(model).__name__}, not a {kind.__module__}."
            f"{kind.__name__}: point at a run folder made by keras-vae train"
        )
    return model


def check_model(config, model, path):
    """Raises RunFileError unless the run's `config` (its config.toml, as
    read: keys may be missing) and the VAE loaded from `path` have the same
    image shape and latent size."""
    expected = {"data.image_size": model.image_shape[0], "data.channels": model.image_shape[2],
                "model.latent_dim": model.latent_dim}
    wrong = []
    for key, got in expected.items():
        section, _, name = key.partition(".")
        want = (config.get(section) or {}).get(name)
        if want is not None and want != int(got):
            wrong.append(f"{key} is {want!r}, the model's {int(got)}")
    if wrong:
        raise RunFileError(
            f"{str(pathlib.Path(path).parent / CONFIG)!r} does not match "
            f"{pathlib.Path(path).name} ({'; '.join(wrong)}): restore the config.toml "
            f"that keras-vae train wrote with the model, or {RETRAIN}"
        )
