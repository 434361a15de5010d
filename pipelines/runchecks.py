"""What a run's files must agree with before a command trusts them: the model
in a .keras file, the config.toml beside it, and the data a checkpoint was
trained on. Each disagreement is one `runfolder.RunFileError` (exit 2)
naming the file and what to do; `runfolder.read_json` validates the JSON
files the same way.

The data fingerprint: a hash of the sorted image file list (or the embedded
set's name) with the split's fraction and seed, stored in each checkpoint, so
a resumed run whose data folder changed (held-out pictures would become
training pictures, and best-model selection would compare different
validation sets) is refused rather than resumed on another split.
"""

import hashlib
import json
import os
import pathlib

import keras

import keras_vae
from keras_vae import data as data_lib
from pipelines import runfolder

RETRAIN = "train the run again (delete its folder, or pass another --run-name)"


def load_model(path, kind=keras_vae.VAE, compile=True):
    """The `kind` model saved at `path` (Keras's safe mode: no Lambda code).

    Raises RunFileError if the file is damaged (Keras says "File not found"
    for a truncated zip) or holds another kind of model."""
    path = pathlib.Path(path)
    try:
        model = keras.saving.load_model(path, compile=compile)
    except Exception as error:  # Keras raises many types for a bad file.
        problem = "not a Keras model file, or a truncated one"
        if not isinstance(error, ValueError) or "File not found" not in str(error):
            problem = f"{type(error).__name__}: {error}"
        raise runfolder.damaged(path, problem, RETRAIN) from None
    if not isinstance(model, kind):
        raise runfolder.RunFileError(
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
        raise runfolder.RunFileError(
            f"{str(pathlib.Path(path).parent / runfolder.CONFIG)!r} does not match "
            f"{pathlib.Path(path).name} ({'; '.join(wrong)}): restore the config.toml "
            f"that keras-vae train wrote with the model, or {RETRAIN}"
        )


def data_fingerprint(config):
    """{"files": count or None, "sha256": ...} of the data split of `config`:
    the sorted image files of a folder (relative paths) or the embedded
    set's name, with the validation fraction and the split's seed."""
    d = config["data"]
    source = str(d["source"])
    names, count = [source], None
    if os.path.isdir(source):  # keras_vae.data's public names only: image_files.
        found = data_lib.image_files(source)
        names, count = [p.relative_to(source).as_posix() for p in found], len(found)
    key = json.dumps([names, d["validation_split"], d["seed"]])
    return {"files": count, "sha256": hashlib.sha256(key.encode()).hexdigest()}


def data_check(config, fingerprint):
    """A `check_state` for `checkpoints.restore_checkpoint`: raises
    RunFileError when the checkpoint's data fingerprint is not `fingerprint`
    (checkpoints before fingerprints pass)."""

    def check(state):
        saved = state.get("data_fingerprint")
        if saved is None or saved == fingerprint:
            return
        files = saved.get("files") if isinstance(saved, dict) else None
        was = f"{files} files then, {fingerprint['files']} now" if files is not None else (
            "another file list or split")
        raise runfolder.RunFileError(
            f"the data {str(config['data']['source'])!r} changed since this run's checkpoints "
            f"were written ({was}): resuming would train on another split; restore the "
            f"folder as it was, or {RETRAIN}"
        )

    return check
