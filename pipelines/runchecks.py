"""The data a checkpoint was trained on, which a resumed run must agree with.

A disagreement is one `runfolder.RunFileError` (exit 2) naming the data and
what to do, as `runfolder.check_model` does for the model and its config.toml.

The data fingerprint: a hash of the sorted image file list (or the embedded
set's name) with the split's fraction and seed, stored in each checkpoint, so
a resumed run whose data folder changed (held-out pictures would become
training pictures, and best-model selection would compare different
validation sets) is refused rather than resumed on another split.
"""

import hashlib
import json
import os

from keras_vae import data as data_lib
from export import runfolder


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
            f"folder as it was, or {runfolder.RETRAIN}"
        )

    return check
