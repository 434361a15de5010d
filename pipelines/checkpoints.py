"""Resume checkpoints of a run: `checkpoints/epoch-<N>/`, written whole.

Each epoch ends with a folder holding the model's and optimizer's variables
(and hence the step that β schedules read), the seed generators' states and
the pipeline's own state (best ELBO, β controller, wall time), renamed into
place only once complete; the previous one is kept as a fallback. A run
interrupted at any instant resumes exactly as if it had not been.
"""

import json
import math
import pathlib
import shutil
import warnings

import numpy as np

from keras_vae import files
from pipelines.runfolder import TrainingError

#: A checkpoint is a folder `epoch-<N>` holding both files, renamed into
#: place only once complete, so weights and state always belong together.
#: Model and optimizer variables. A .keras file, not .weights.h5: Keras builds
#: its HDF5 part in memory and writes it with Python's zipfile, so a full disk
#: raises an OSError; h5py writing to disk spews errors and can segfault.
CHECKPOINT_WEIGHTS = "checkpoint.keras"
CHECKPOINT_STATE = "state.json"  # The pipeline's state, JSON.
KEEP_CHECKPOINTS = 2  # The newest, and the one before as a fallback.


def save_model(model, path):
    """`model.save(path)` through a temporary file and a rename, so an
    interrupted save never leaves a truncated .keras file."""
    files.write_atomically(path, model.save)


def save_checkpoint(model, folder, state):
    """Writes `folder/epoch-<N>/` (N = state["epochs_completed"]) atomically:
    the model's and the optimizer's variables (Adam's moments and step, which
    β schedules read) and `state` (strict JSON: ±inf is written null);
    then deletes all but the newest `KEEP_CHECKPOINTS` checkpoints."""
    state = {**state, "random_state": [v.numpy().tolist() for v in _unsaved_variables(model)]}

    def write(temp):
        model.save(pathlib.Path(temp) / CHECKPOINT_WEIGHTS)
        (pathlib.Path(temp) / CHECKPOINT_STATE).write_text(files.to_json(state))

    files.write_folder(folder / f"epoch-{state['epochs_completed']:05d}", write)
    for old in _checkpoints(folder)[KEEP_CHECKPOINTS:]:
        shutil.rmtree(old, ignore_errors=True)


def _unsaved_variables(model):
    """Variables that Keras's saving leaves out: the seed generators' states,
    which draw z's noise. Restored too, a resumed run draws the same noise."""
    saved = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in saved]


def _checkpoints(folder):
    """The checkpoint folders under `folder`, newest first."""
    return sorted(folder.glob("epoch-[0-9]*"), reverse=True)


def restore_checkpoint(model, folder, remedy):
    """Loads the newest checkpoint under `folder` that loads completely into
    the compiled `model` (weights and optimizer) and returns its state; {}
    when there is none. Raises TrainingError when checkpoints exist but none
    restores exactly: resuming from a partial state would train silently
    with a reset optimizer or β step."""
    found = _checkpoints(folder)
    if not found:
        if (folder / "backup").exists() or (folder / CHECKPOINT_STATE).exists():
            raise TrainingError(
                f"{folder} holds checkpoints of an older keras-vae that cannot resume "
                f"exactly: {remedy}"
            )
        return {}
    # The optimizer's variables must exist for load_weights to fill them;
    # fit builds it lazily, too late.
    model.optimizer.build(model.trainable_variables)
    problems = []
    for path in found:
        try:
            state = json.loads((path / CHECKPOINT_STATE).read_text())
            with warnings.catch_warnings():
                # Keras only warns when variables do not match; that is a failure here.
                warnings.simplefilter("error")
                model.load_weights(path / CHECKPOINT_WEIGHTS)
            random_state, unsaved = state.pop("random_state"), _unsaved_variables(model)
            if len(random_state) != len(unsaved):
                raise ValueError(f"{len(random_state)} random states for {len(unsaved)} generators")
            for variable, value in zip(unsaved, random_state):
                variable.assign(np.asarray(value, variable.dtype))
        except Exception as error:  # h5py, json and Keras raise their own types.
            problems.append(f"{path.name}: {' '.join(str(error).split())[:200]}")
            continue
        state["best"] = -math.inf if state.get("best") is None else state["best"]
        return state
    raise TrainingError(
        f"no checkpoint in {folder} can be restored ({'; '.join(problems)}): {remedy}"
    )
