"""Interrupted at any instant, a full disk, a read-only folder, a bad flag: each
ends in one line, and a rerun resumes exactly as if nothing had happened.

Runs train a 2-d latent VAE on the embedded 8×8 `digits` for a few steps.
"""

import json
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_vae import files
from export import runfolder
from pipelines import cli
from pipelines import config as config_lib
from pipelines import evaluate as evaluate_lib
from pipelines import sweep as sweep_lib
from pipelines import train as train_lib

TINY = {
    "data.source": "digits", "data.image_size": 8, "data.channels": 1,
    "model.latent_dim": 2, "model.filters": [4, 8], "model.likelihood": "bernoulli",
    "train.steps_per_epoch": 5, "train.update_freq": 2, "beta.warmup_steps": 40,
    "train.epochs": 3,
    # Runs of 5 steps have not learned a code yet: no collapse warning beside
    # the one-line errors these tests read (test_monitoring tests the alarm).
    "train.collapse_active_units": 0, "train.collapse_rate_per_unit": 0.0,
}
TINY_FLAGS = [
    "--data", "digits", "--image-size", "8", "--channels", "1", "--latent-dim", "2",
    "--filters", "4,8", "--likelihood", "bernoulli", "--steps-per-epoch", "5", "-q",
    "--collapse-active-units", "0", "--collapse-rate-per-unit", "0",
]


def config(folder, name, **overrides):
    return config_lib.load_config(overrides={
        **TINY, "train.output_dir": str(folder), "train.run_name": name, **overrides})


def weights(folder, name="last.keras"):
    return keras.saving.load_model(folder / name).get_weights()


def strict_json(path):
    """Parses like strict JSON parsers do: NaN and Infinity are errors."""
    def reject(constant):
        raise ValueError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=reject)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 3-epoch run: (folder, its last weights)."""
    folder = train_lib.train(config(tmp_path_factory.mktemp("ref"), "ref"), verbose=0)
    return folder, weights(folder)


def assert_same_run(folder, reference):
    ref_folder, ref_weights = reference
    resumed = weights(folder)
    assert len(resumed) == len(ref_weights)
    for a, b in zip(resumed, ref_weights):
        np.testing.assert_array_equal(a, b)  # Seeded: exactly the same numbers.
    got, want = strict_json(folder / "metrics.json"), strict_json(ref_folder / "metrics.json")
    assert got["epochs_completed"] == want["epochs_completed"] == 3
    assert got["train"]["beta"] == want["train"]["beta"]  # The β schedule's step.
    assert got["best"] == want["best"]


class _InterruptAtStep(keras.callbacks.Callback):
    """Ctrl-C after the optimizer's `step`-th step."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise KeyboardInterrupt


# Each attempt is interrupted at its n-th fsync, counted from its start: the
# first two are config.toml's; then per epoch last.keras (2), model.keras (2
# when it improved) and the checkpoint folder (its 2 files, the folder, then
# the rename's parent). So 9 is inside a checkpoint write, 10 just after its
# rename, 4 after last.keras, 5 inside model.keras, and so on.
INTERRUPTIONS = [9, ("step", 7), 10, 4, 5, 8, 3, ("step", 13), 12, 11, 6]


def test_interrupted_at_many_points_resumes_exactly(tmp_path, reference, monkeypatch):
    run = config(tmp_path, "cut")
    sync = files.sync
    attempts = 0
    for point in [*INTERRUPTIONS, None]:
        calls = []

        def interrupting_sync(path, point=point):
            calls.append(path)
            if len(calls) == point:
                raise KeyboardInterrupt
            sync(path)

        monkeypatch.setattr(files, "sync", interrupting_sync)
        extra = [_InterruptAtStep(point[1])] if isinstance(point, tuple) else []
        try:
            folder = train_lib.train(run, verbose=0, callbacks=extra)
        except KeyboardInterrupt:
            attempts += 1
            continue
        assert point is None or (isinstance(point, int) and point > len(calls)), point
        break
    assert attempts >= len(INTERRUPTIONS) - 2  # Nearly all points were reached.
    assert_same_run(folder, reference)
    assert not list(folder.rglob(".*tmp*"))  # No debris.


KILL_INSIDE_CHECKPOINT = """
import os, signal
from keras_vae import files
import pipelines
from pipelines import config, train

sync = files.sync
def sync_then_die(path):
    if ".epoch-00002." in str(path):  # Inside epoch 2's checkpoint, before its rename.
        os.kill(os.getpid(), signal.SIGKILL)
    sync(path)
files.sync = sync_then_die
train.train(config.load_config(overrides={overrides!r}), verbose=0)
"""


def test_kill_9_inside_the_checkpoint_write_resumes_exactly(tmp_path, reference, capsys):
    run = config(tmp_path, "killed")
    overrides = {**TINY, "train.output_dir": str(tmp_path), "train.run_name": "killed"}
    script = textwrap.dedent(KILL_INSIDE_CHECKPOINT).format(overrides=overrides)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    folder = config_lib.run_dir(run)
    assert list((folder / "checkpoints").glob(".epoch-00002.*"))  # Half-written, hidden.
    assert (folder / "last.keras").exists()  # Of epoch 2, newer than the checkpoint.

    capsys.readouterr()
    train_lib.train(run, verbose=2)
    out = capsys.readouterr().out
    # The message names the epoch training actually continues at.
    assert f"Resuming {folder} at epoch 2 of 3 (checkpoint of epoch 1)" in out
    assert "Epoch 2/3" in out and "Epoch 1/3" not in out
    assert_same_run(folder, reference)
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == [
        "epoch-00002", "epoch-00003"]  # The newest two; the debris is gone.


def test_no_restorable_checkpoint_says_how_to_restart(tmp_path, capsys):
    run = config(tmp_path, "broken", **{"train.epochs": 2})
    folder = train_lib.train(run, verbose=0)
    (folder / "metrics.json").unlink()
    for checkpoint in (folder / "checkpoints").glob("epoch-*/checkpoint.keras"):
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # Truncated.
    status = cli.run_command(lambda: train_lib.train(run, verbose=0))
    [line] = capsys.readouterr().err.splitlines()
    assert status == 2  # A damaged run folder, like a bad flag.
    assert line.startswith(f"keras-vae: error: no checkpoint in {folder / 'checkpoints'} "
                           "can be restored (epoch-00002: ")
    assert line.endswith(f"delete {folder} to start over, or pass another --run-name")
    # A folder of an older keras-vae (BackupAndRestore) is not half-resumed either.
    for checkpoint in (folder / "checkpoints").glob("epoch-*"):
        files.shutil.rmtree(checkpoint)
    (folder / "checkpoints" / "backup").mkdir()
    with pytest.raises(runfolder.RunFileError, match="older keras-vae that cannot resume"):
        train_lib.train(run, verbose=0)


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "--epochs (train.epochs) must be >= 1, got 0"),
    (["--epochs", "-2"], "--epochs (train.epochs) must be >= 1, got -2"),
    (["--batch-size", "0"], "--batch-size (train.batch_size) must be >= 1, got 0"),
    (["--filters", ""], "--filters (model.filters) must be a non-empty list of widths >= 1"),
    (["--image-size", "0"], "--image-size (data.image_size) must be >= 1, got 0"),
    (["--image-size", "-32"], "--image-size (data.image_size) must be >= 1, got -32"),
    (["--image-size", "10"], "--image-size (data.image_size) must be divisible by 2^2 = 4 "
                             "(one halving per --filters (model.filters) entry), got 10"),
    (["--latent-dim", "0"], "--latent-dim (model.latent_dim) must be >= 1, got 0"),
    (["--likelihood", "gaussian:-0.1"], "--likelihood (model.likelihood): Gaussian sigma must "
                                        "be > 0 and finite in float32, got -0.1"),
    (["--likelihood", "gaussian:inf"], "must be > 0 and finite in float32, got inf"),
    (["--likelihood", "bernouli"], "--likelihood (model.likelihood): Unknown likelihood "
                                   "'bernouli': use one of"),
    (["--likelihood", "discretized_logistic_mixture:0"], "whole number of components >= 1"),
    (["--likelihood", "gaussian:1e-9"], "below the floor"),
    (["--beta", "-1"], "--beta (beta.value) must be >= 0, got -1.0"),
    (["--beta", "nan"], "--beta (beta.value) must be >= 0, got nan"),
    (["--learning-rate", "0"], "--learning-rate (train.learning_rate) must be > 0, got 0.0"),
    (["--validation-split", "1"], "--validation-split (data.validation_split) must be in [0, 1)"),
    (["--channels", "2"], "--channels (data.channels) must be 1 or 3, got 2"),
])
def test_bad_flags_exit_2_in_one_line_before_any_folder(tmp_path, capsys, flags, message):
    output = tmp_path / "out"
    status = train_lib.main([*TINY_FLAGS, "--output-dir", str(output), *flags])
    [line] = capsys.readouterr().err.splitlines()
    assert status == 2 and line.startswith("keras-vae: error: ") and message in line, line
    assert not output.exists()


def test_a_misspelt_likelihood_is_refused_before_the_data_is_read(tmp_path, capsys):
    # The folder does not exist: had the data been read first, its error would show.
    status = train_lib.main([*TINY_FLAGS, "--output-dir", str(tmp_path), "--data",
                             str(tmp_path / "no-such-folder"), "--likelihood", "bernouli"])
    [line] = capsys.readouterr().err.splitlines()
    assert status == 2 and "Unknown likelihood 'bernouli'" in line, line


def test_config_file_values_are_checked_like_flags(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[train]\nepochs = 0\n")
    with pytest.raises(ValueError, match=r"--epochs \(train.epochs\) must be >= 1, got 0"):
        train_lib.parse_config(["--config", str(path)])
    path.write_text("[train]\nsteps_per_epoch = \"5\"\n")
    # Each key has its declared type, also those whose default is None (not set).
    with pytest.raises(ValueError, match=r"train.steps_per_epoch must be a int, got '5'"):
        train_lib.parse_config(["--config", str(path)])


def test_full_disk_ends_in_one_line_before_training(small_disk, capsys):
    disk = small_disk(3, free=2**20)
    status = train_lib.main([*TINY_FLAGS, "--output-dir", str(disk / "out")])
    [line] = capsys.readouterr().err.splitlines()
    assert status == 1, line
    assert line.startswith(f"keras-vae: error: not enough space in '{disk / 'out'}/digits-")
    assert re.search(r"' for the run's models and checkpoints: needs about 2\.\d MB, "
                     r"1\.0 MB free; free some space or pass another --output-dir$", line), line
    assert not (disk / "out").exists()


def test_disk_filling_during_training_ends_in_one_line_and_resumes(
        small_disk, capsys, monkeypatch, reference):
    monkeypatch.setattr(files, "check_space", lambda *args, **kwargs: None)
    disk = small_disk(3)
    run = config(disk, "full")
    folder = config_lib.run_dir(run)
    # The free space each attempt leaves: too little for model.keras, then for
    # a checkpoint, then for the next epoch; then room for the whole run.
    failures = []
    for free in (150_000, 260_000, 350_000, None):
        ballast = disk / "ballast"
        ballast.unlink(missing_ok=True)
        if free is not None:
            ballast.write_bytes(b"\0" * (files.shutil.disk_usage(disk).free - free))
        status = cli.run_command(lambda: train_lib.train(run, verbose=0))
        err = capsys.readouterr().err.splitlines()
        if status == 0:
            break
        [line] = err
        failures.append(line)
        assert status == 1 and "No space left on device" in line, line
        assert line.startswith(f"keras-vae: error: cannot write '{folder}")
        assert "MB written when the disk filled" in line and line.endswith(
            "free some space and rerun")
        # No partial file that looks valid: whatever model is there loads.
        assert not list(folder.rglob(".*tmp*"))
        for model in folder.rglob("*.keras"):
            keras.saving.load_model(model)
    assert status == 0 and len(failures) >= 2, failures
    assert_same_run(folder, reference)


def test_read_only_output_fails_before_any_training(read_only_dir, tmp_path, capsys):
    status = train_lib.main([*TINY_FLAGS, "--output-dir", str(read_only_dir / "runs")])
    [line] = capsys.readouterr().err.splitlines()
    assert status == 1
    assert line.startswith(f"keras-vae: error: cannot write in the run folder "
                           f"'{read_only_dir / 'runs' / 'digits-bernoulli-linear-z2-s0-'}")
    assert line.endswith("': Read-only file system; pass a writable folder")

    flags = [f for f in TINY_FLAGS if f not in ("--latent-dim", "2")]
    status = sweep_lib.main([*flags, "--betas", "0,1", "--output-dir", str(read_only_dir)])
    captured = capsys.readouterr()
    assert status == 1 and "run 1/" not in captured.out
    [line] = captured.err.splitlines()
    assert f"cannot write in the sweep folder '{read_only_dir / 'sweep'}'" in line


def test_evaluate_refuses_a_read_only_run_before_training_its_baseline(small_disk, capsys):
    disk = small_disk(3)
    folder = train_lib.train(config(disk, "ro", **{"train.epochs": 1}), verbose=0)
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    status = evaluate_lib.main([str(folder), "--k", "2", "-q"])
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert status == 1 and "baseline" not in captured.out
    assert line == (f"keras-vae: error: cannot write in the run folder '{folder}': "
                    "Read-only file system; pass a writable folder")


def test_written_files_follow_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        folder = train_lib.train(config(tmp_path, "umask", **{"train.epochs": 1}), verbose=0)
    finally:
        os.umask(previous)
    modes = {p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in folder.rglob("*") if "logs" not in p.parts}
    for name in ("config.toml", "metrics.json", "model.keras", "last.keras",
                 "images/samples.png", "checkpoints/epoch-00001/state.json",
                 "checkpoints/epoch-00001/checkpoint.keras"):
        assert modes[name] == 0o640, (name, oct(modes[name]))
    assert modes["checkpoints/epoch-00001"] == 0o750


def test_json_is_strict(tmp_path, reference):
    path = files.write_json(tmp_path / "x.json", {"best": float("inf"), "v": [float("nan"), 1.5]})
    assert strict_json(path) == {"best": None, "v": [None, 1.5]}
    folder, _ = reference
    strict_json(folder / "metrics.json")
    for state in folder.glob("checkpoints/epoch-*/state.json"):
        strict_json(state)
