"""The callbacks of a `keras-vae train` run (`keras_vae.callbacks` holds the
library's): the stop on a non-finite loss that says where the last good model
is, the per-epoch saver of models and resume checkpoints, and the collapse
alarm in the command's words."""

import math
import sys
import time

import keras

from keras_vae import callbacks as callbacks_lib
from keras_vae import collapse
from export import runfolder
from pipelines import checkpoints
from pipelines import cli


class StopOnNonFinite(callbacks_lib.TerminateOnNonFinite):
    """`VAE.fit`'s stop on a NaN or ±inf loss or metric, whose one-line error
    also says where the last good model is."""

    def __init__(self, folder, learning_rate):
        super().__init__()
        self.folder, self.learning_rate = folder, learning_rate

    def error(self, key, value, step):
        last = self.folder / runfolder.LAST
        kept = (
            f"the last good model is {last} and rerunning resumes from it"
            if last.exists() else "no epoch had finished, so no model was saved"
        )
        return cli.TrainingError(
            f"training stopped at epoch {self.epoch + 1}, step {step}: {key} became {value}; "
            f"{kept}; lower the learning rate (now {self.learning_rate:g}) or β"
        )


class CollapseAlarm(collapse.CollapseAlarm):
    """`keras_vae.collapse.CollapseAlarm` for `keras-vae train`: its remedies
    named as flags, its warning one `keras-vae: warning:` paragraph on stderr."""

    REMEDIES = {
        "free_bits": "--free-bits 0.1",
        "warmup": "--beta-schedule linear --warmup-steps 1000",
        "sigma": "--likelihood gaussian_optimal or gaussian_learned",
    }

    def warn(self, text):
        print(f"\nkeras-vae: warning: {text}", file=sys.stderr, flush=True)


class SaveRun(keras.callbacks.Callback):
    """At each epoch end: last.keras, model.keras if the monitored ELBO is the
    best so far, then the resume checkpoint (see `save_checkpoint`).

    The monitor is `val_elbo` (or `elbo` without validation): the bound at
    β = 1, comparable across epochs while a schedule moves β; `val_loss` =
    D + β·R would favour warm-up epochs by (1 − β)·R nats.

    Every file is written under a temporary name and renamed, so an
    interrupted save never leaves a truncated model.keras.
    """

    def __init__(self, folder, monitor, state, controller=None, fingerprint=None):
        super().__init__()
        self.folder, self.monitor, self.controller = folder, monitor, controller
        self.fingerprint = fingerprint
        same = state.get("monitor") == monitor
        self.best = state.get("best", -math.inf) if same else -math.inf
        self.best_epoch = state.get("best_epoch") if same else None
        self.seconds = state.get("train_seconds", 0.0)
        self.epochs_completed = state.get("epochs_completed", 0)

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds += time.perf_counter() - self._started
        self.epochs_completed = epoch + 1
        self._save(runfolder.LAST)
        value = float(logs[self.monitor])
        if value > self.best:
            self.best, self.best_epoch = value, self.epochs_completed
            self._save(runfolder.MODEL)
        state = {
            "epochs_completed": self.epochs_completed,
            "best": self.best,
            "best_epoch": self.best_epoch,  # The epoch model.keras is of.
            "monitor": self.monitor,
            "train_seconds": self.seconds,
            "controller": self.controller.get_config() if self.controller else None,
            "data_fingerprint": self.fingerprint,
        }
        checkpoints.save_checkpoint(self.model, self.folder / runfolder.CHECKPOINTS, state)

    def _save(self, name):
        checkpoints.save_model(self.model, self.folder / name)
