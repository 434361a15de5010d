"""Resume checkpoints of a run: `checkpoints/epoch-<N>/`, written whole.

Each epoch ends with a folder holding the model's and optimizer's variables
(and hence the step that β schedules read), the seed generators' states and
the pipeline's own state (best ELBO, β controller, wall time), renamed into
place only once complete; the previous one is kept as a fallback. A run
interrupted at any instant resumes exactly as if it had not been.
"""

import math
import pathlib
import shutil
import sys
import warnings

import numpy as np

from keras_vae import files
from export import runfolder

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


#: state.json's fields: {name: (test, what it must be)} (see `runfolder.read_json`).
STATE_FIELDS = {
    "epochs_completed": runfolder.count(1),
    "best": runfolder.real(optional=True),
    "monitor": runfolder.kind(str),
    "train_seconds": runfolder.real(0),
    "controller": runfolder.kind(dict, optional=True),
    "random_state": runfolder.kind(list),
}


def restore_checkpoint(model, folder, steps_per_epoch, remedy, check_state=None):
    """Loads the newest checkpoint under `folder` that loads completely into
    the compiled `model` (weights and optimizer) and returns its state; {}
    when there is none. Each is validated first: state.json's types and
    ranges, its epoch against the folder's name, the optimizer's step against
    epochs × `steps_per_epoch`; a newer one that fails is named in a warning
    and the one before it is tried. Then `check_state(state)` (which raises
    RunFileError; no fallback: older checkpoints would fail it too). Raises
    RunFileError when checkpoints exist but none restores exactly: resuming
    from a partial state would train silently with a reset optimizer or β
    step."""
    found = _checkpoints(folder)
    if not found:
        if (folder / "backup").exists() or (folder / CHECKPOINT_STATE).exists():
            raise runfolder.RunFileError(
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
            state = _restore(model, path, steps_per_epoch)
        except Exception as error:  # h5py, json and Keras raise their own types.
            problem = " ".join(str(error).replace(f"{path}/", "").split())
            problems.append(f"{path.name}: {problem[:300]}")
            continue
        if check_state is not None:
            check_state(state)  # Older checkpoints would not pass either.
        if problems:
            print(f"keras-vae: warning: skipped the newer checkpoint(s) that cannot be "
                  f"restored ({'; '.join(problems)}); resuming from {path.name}",
                  file=sys.stderr)
        state["best"] = -math.inf if state.get("best") is None else state["best"]
        return state
    raise runfolder.RunFileError(
        f"no checkpoint in {folder} can be restored ({'; '.join(problems)}): {remedy}"
    )


def _restore(model, path, steps_per_epoch):
    """The state of checkpoint `path`, loaded into `model`; raises if any
    part of it is damaged or disagrees with the rest."""
    state = runfolder.read_json(path / CHECKPOINT_STATE, STATE_FIELDS, remedy=None)
    epochs = state["epochs_completed"]
    if path.name != f"epoch-{epochs:05d}":
        raise runfolder.damaged(path / CHECKPOINT_STATE,
                                f"epochs_completed {epochs} in the folder {path.name}", None)
    with warnings.catch_warnings():
        # Keras only warns when variables do not match; that is a failure here.
        warnings.simplefilter("error")
        model.load_weights(path / CHECKPOINT_WEIGHTS)
    step, expected = int(model.optimizer.iterations.numpy()), epochs * steps_per_epoch
    # A loss-scale optimizer (mixed_float16) does not count the steps it
    # skips because their scaled gradients overflowed: fewer, never more.
    skips = hasattr(model.optimizer, "inner_optimizer")
    if step > expected or (step < expected and not skips):
        raise runfolder.damaged(
            path / CHECKPOINT_WEIGHTS, f"optimizer step {step} where epochs_completed × steps "
            f"per epoch = {epochs} × {steps_per_epoch} = {expected}", None)
    random_state, unsaved = state.pop("random_state"), _unsaved_variables(model)
    if len(random_state) != len(unsaved):
        raise ValueError(f"{len(random_state)} random states for {len(unsaved)} generators")
    for variable, value in zip(unsaved, random_state):
        variable.assign(np.asarray(value, variable.dtype))
    return state
