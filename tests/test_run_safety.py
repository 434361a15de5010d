"""One run folder, one writer; files the run wrote are validated when read back;
memory estimated before training; signals and small flags end in one line.

Tiny runs: the embedded 8×8 `digits`, a 2-d latent, 5 steps an epoch.
"""

import argparse
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
from PIL import Image

from export import exporter
from export import web_page
from export import runfolder
from pipelines import cli
from pipelines import config as config_lib
from pipelines import evaluate as evaluate_lib
from pipelines import flags as pipeline_flags
from pipelines import memory
from pipelines import train as train_lib

from test_reliability import TINY_FLAGS

REPO = pathlib.Path(__file__).resolve().parents[1]


def flags(folder, name, *more):
    return [*TINY_FLAGS, "--output-dir", str(folder), "--run-name", name, *more]


def keras_vae_command(*args, **kwargs):
    """`keras-vae ARGS` in a process of its own: (returncode, stdout, stderr lines)."""
    result = subprocess.run([sys.executable, "-m", "pipelines.cli", *map(str, args)],
                            capture_output=True, text=True, cwd=REPO, **kwargs)
    return result.returncode, result.stdout, result.stderr.splitlines()


def one_line(capsys):
    [line] = capsys.readouterr().err.splitlines()
    return line


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-epoch run; tests copy it."""
    folder = tmp_path_factory.mktemp("finished")
    assert train_lib.main(flags(folder, "run", "--epochs", "2")) == 0
    return folder / "run"


@pytest.fixture
def run(finished, tmp_path):
    return pathlib.Path(shutil.copytree(finished, tmp_path / "run"))


# -- One writer per run folder: two real processes -------------------------------

PAUSED_TRAIN = """
import pathlib, sys, time
from pipelines import cli
cli.import_tensorflow_quietly()
import keras
from pipelines import train

class Pause(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        pathlib.Path({ready!r}).touch()
        while not pathlib.Path({go!r}).exists():
            time.sleep(0.05)

cli.handle_signals()
config, _ = train.parse_config({argv!r})
sys.exit(cli.run_command(lambda: train.train(config, 0, [Pause()])))
"""


def start_paused_train(tmp_path, argv):
    """A `keras-vae train` process stopped inside its first epoch end, the
    run's lock held: (process, ready file, go file)."""
    ready, go = tmp_path / "ready", tmp_path / "go"
    script = textwrap.dedent(PAUSED_TRAIN).format(ready=str(ready), go=str(go), argv=argv)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while not ready.exists():
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    return process, ready, go


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    argv = flags(tmp_path / "out", "busy", "--epochs", "2")
    holder, _, go = start_paused_train(tmp_path, argv)
    folder = tmp_path / "out" / "busy"
    try:
        expected = f"keras-vae: error: {folder} is in use by keras-vae train (pid {holder.pid}, "
        status, _, [line] = keras_vae_command("train", *argv)
        assert status == 2 and line.startswith(expected), line
        for command in (["evaluate", folder, "--k", "2", "-q"], ["export", folder, "--quiet"]):
            status, _, lines = keras_vae_command(*command)
            prefix = "keras-vae export: error: " if command[0] == "export" else "keras-vae: error: "
            assert status == 2 and lines == [lines[-1]], lines
            assert lines[0].startswith(prefix) and f"(pid {holder.pid}, " in lines[0], lines
        assert not (folder / "export").exists() and not (folder / "eval.json").exists()
    finally:
        go.touch()
    assert holder.wait() == 0, holder.communicate()
    assert not (folder / ".lock").exists()  # Released and removed.
    assert runfolder.read_metrics(folder)["epochs_completed"] == 2


def test_sigterm_ends_in_one_line_and_kill_9_leaves_a_lock_taken_over(tmp_path):
    argv = flags(tmp_path / "out", "killed", "--epochs", "2")
    folder = tmp_path / "out" / "killed"
    holder, ready, _ = start_paused_train(tmp_path, argv)
    holder.send_signal(signal.SIGTERM)
    # The handler runs once the paused callback returns to Python bytecode: at once.
    _, err = holder.communicate()
    assert holder.returncode == 143
    assert err.splitlines() == [
        "keras-vae: terminated (SIGTERM): rerun the same command to resume"]
    assert not (folder / ".lock").exists()

    ready.unlink()
    holder, _, _ = start_paused_train(tmp_path, argv)
    holder.kill()
    holder.wait()
    lock = json.loads((folder / ".lock").read_text())
    assert lock["pid"] == holder.pid and lock["command"] == "keras-vae train"
    # What a killed export, checkpoint and model save leave: the next command cleans all.
    debris = [folder / ".export-tmp-1a2b3c4d", folder / ".export.5e6f7a8b.tmp",
              folder / "checkpoints" / ".epoch-00002.x1y2.tmp", folder / ".model.keras.ab.tmp.keras"]
    for path in debris:
        path.mkdir() if "export" in path.name or "epoch" in path.name else path.touch()
    status, _, lines = keras_vae_command("train", *argv)
    assert status == 0, lines
    assert lines == [f"keras-vae: note: {folder} was left locked by keras-vae train "
                     f"(pid {holder.pid}), which is no longer running: taking over"]
    assert not any(path.exists() for path in debris)
    assert not (folder / ".lock").exists()


def test_a_finished_runs_rerun_deletes_what_a_killed_export_left(run, capsys):
    (run / ".export.5e6f7a8b.tmp" / "web").mkdir(parents=True)
    assert train_lib.main(flags(run.parent, "run", "--epochs", "2")) == 0
    assert capsys.readouterr().err == ""
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []


def test_ctrl_c_during_tensorflow_import_is_one_line_exit_130(tmp_path):
    # Ctrl-C's default action in the child, even where this suite runs with
    # SIGINT ignored (started with `&` by a non-interactive shell): a process
    # that inherits SIG_IGN gets no KeyboardInterrupt, as in any shell.
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "train", *flags(tmp_path, "x")],
        cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(1.0)  # Inside TensorFlow's import, which takes seconds.
    process.send_signal(signal.SIGINT)
    _, err = process.communicate()
    assert process.returncode == 130
    [line] = err.splitlines()  # Said by cli.main (the import) or, if later, by run_command.
    assert line in ("keras-vae: interrupted: nothing was left half-written; rerun the same "
                    "command", "keras-vae: interrupted: rerun the same command to resume")


# -- Files the run wrote, validated ----------------------------------------------

def states(folder):
    return sorted(folder.glob("checkpoints/epoch-*/state.json"))


def edit_state(path, **values):
    state = json.loads(path.read_text())
    path.write_text(json.dumps({**state, **values}))


@pytest.mark.parametrize("value, problem", [
    ("two", "'epochs_completed' must be an integer >= 1, got 'two'"),
    (-5, "'epochs_completed' must be an integer >= 1, got -5"),
    (99, None),  # An integer, but not the folder's epoch.
])
def test_bad_checkpoint_state_is_one_line_exit_2(run, capsys, value, problem):
    (run / "metrics.json").unlink()
    for path in states(run):
        edit_state(path, epochs_completed=value)
    status = train_lib.main(flags(run.parent, "run", "--epochs", "3"))
    line = one_line(capsys)
    assert status == 2
    assert line.startswith(f"keras-vae: error: no checkpoint in {run / 'checkpoints'} can be "
                           "restored (epoch-00002: 'state.json' is damaged ("), line
    assert (problem or "epochs_completed 99 in the folder epoch-00002") in line
    assert line.endswith(f"delete {run} to start over, or pass another --run-name")
    assert not list(run.glob("checkpoints/epoch-0000[3-9]")) and not list(run.glob("*--*"))


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before_saying_so(run, capsys):
    (run / "metrics.json").unlink()
    edit_state(states(run)[-1], train_seconds="soon")
    assert train_lib.main(flags(run.parent, "run", "--epochs", "2")) == 0
    [warning] = capsys.readouterr().err.splitlines()
    assert warning.startswith("keras-vae: warning: skipped the newer checkpoint(s) that cannot "
                              "be restored (epoch-00002: 'state.json' is damaged ('train_seconds' must be a "
                              "number >= 0, got 'soon'))")
    assert warning.endswith("resuming from epoch-00001")
    assert runfolder.read_metrics(run)["epochs_completed"] == 2


def test_a_checkpoint_whose_optimizer_step_disagrees_is_refused(run, capsys):
    (run / "metrics.json").unlink()
    first, second = (path.parent / "checkpoint.keras" for path in states(run))
    first.rename(run / "swap")
    second.rename(first)
    (run / "swap").rename(second)  # Each checkpoint's weights now hold the other's step.
    status = train_lib.main(flags(run.parent, "run", "--epochs", "3"))
    line = one_line(capsys)
    assert status == 2 and "(epoch-00002: 'checkpoint.keras' is damaged (optimizer step 5 where " \
                           "epochs_completed × steps per epoch = 2 × 5 = 10); epoch-00001: " in line, line


@pytest.mark.parametrize("text, problem", [
    ('{"epochs_completed": 2, "tr', "not JSON: "),
    ('[1, 2]', "a JSON list, not an object"),
    ('{"epochs_completed": "2", "train": {}, "best": {}}',
     "'epochs_completed' must be an integer >= 0, got '2'"),
])
def test_bad_metrics_json_is_one_line_exit_2(run, capsys, text, problem):
    (run / "metrics.json").write_text(text)
    status = train_lib.main(flags(run.parent, "run", "--epochs", "2"))
    line = one_line(capsys)
    assert status == 2 and line.startswith(
        f"keras-vae: error: '{run / 'metrics.json'}' is damaged ({problem}"), line
    assert line.endswith("delete it and rerun the run's keras-vae train command: it is "
                         "rewritten from the last checkpoint")
    (run / "metrics.json").unlink()  # As the message says.
    assert train_lib.main(flags(run.parent, "run", "--epochs", "2")) == 0
    assert runfolder.read_metrics(run)["epochs_completed"] == 2


def test_config_that_does_not_match_the_model_is_one_line_exit_2(run, capsys):
    path = run / "config.toml"
    path.write_text(path.read_text().replace("channels = 1", "channels = 3"))
    status = cli.main(["export", str(run), "--formats", "onnx", "--quiet"])
    line = one_line(capsys)
    assert status == 2 and line == (
        f"keras-vae export: error: '{path}' does not match model.keras (data.channels is 3, "
        "the model's 1): restore the config.toml that keras-vae train wrote with the model, "
        "or train the run again (delete its folder, or pass another --run-name)")
    assert not (run / "export").exists()


def test_evaluate_refuses_a_model_that_is_not_a_vae_or_is_truncated(run, capsys):
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(run / "model.keras")
    assert evaluate_lib.main([str(run), "--k", "2", "-q"]) == 2
    assert one_line(capsys) == (f"keras-vae: error: '{run / 'model.keras'}' holds a Sequential, "
                                "not a keras_vae.vae.VAE: point at a run folder made by "
                                "keras-vae train")
    shutil.copy(run / "last.keras", run / "model.keras")
    with open(run / "model.keras", "r+b") as f:
        f.truncate(2000)
    assert evaluate_lib.main([str(run), "--k", "2", "-q"]) == 2
    assert one_line(capsys) == (
        f"keras-vae: error: '{run / 'model.keras'}' is damaged (not a Keras model file, or a "
        "truncated one): train the run again (delete its folder, or pass another --run-name)")


def test_a_changed_data_folder_is_refused_on_resume(tmp_path, capsys):
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(pictures / f"{i}.png")
    argv = [*flags(tmp_path, "folder"), "--data", str(pictures)]
    assert train_lib.main([*argv, "--epochs", "1"]) == 0
    for i in range(12, 15):
        shutil.copy(pictures / "0.png", pictures / f"{i}.png")
    capsys.readouterr()
    assert train_lib.main([*argv, "--epochs", "2"]) == 2
    assert one_line(capsys) == (
        f"keras-vae: error: the data '{pictures}' changed since this run's checkpoints were "
        "written (12 files then, 15 now): resuming would train on another split; restore the "
        "folder as it was, or train the run again (delete its folder, or pass another "
        "--run-name)")


# -- Memory --------------------------------------------------------------------

@pytest.mark.parametrize("flag, value", [("--image-size", "4096"),
                                         ("--latent-dim", "3000000000")])
def test_a_run_too_big_for_memory_is_one_line_before_any_folder(tmp_path, capsys, flag, value):
    status = train_lib.main([*flags(tmp_path / "out", "big"), flag, value])
    line = one_line(capsys)
    assert status == 2 and line.startswith("keras-vae: error: this run needs about "), line
    assert line.endswith(f"GB is available: lower {flag} (now {value})"), line
    assert not (tmp_path / "out").exists()


def test_the_estimate_names_the_flag_whose_halving_saves_most():
    config = config_lib.load_config(overrides={"train.batch_size": 100_000})
    with pytest.raises(ValueError, match=r"lower --batch-size \(now 100000\)$"):
        memory.check(config, free=10**6)
    memory.check(config_lib.load_config(), free=2 * 10**9)  # The default run fits in 2 GB.
    parts = memory.estimate(config_lib.load_config())
    assert set(parts) == {"parameters", "activations", "summary images", "data"}


# -- Export and demo without npm's onnxruntime-web ------------------------------

def test_export_without_the_web_runtime_skips_the_page_unless_asked(run, capsys, monkeypatch):
    monkeypatch.setattr(web_page, "PACKAGE", run / "no-npm-install")
    assert cli.main(["export", str(run), "--formats", "web", "--quiet"]) == 2
    line = one_line(capsys)
    assert line.startswith("keras-vae export: error: the web page needs onnxruntime-web: "
                           "onnxruntime-web is not installed in ")
    assert not (run / "export").exists()
    manifest = exporter.export_run(run, formats=None)
    out = capsys.readouterr().out
    assert "web" not in manifest["artifacts"] and "decoder.onnx" in manifest["artifacts"]
    assert out.splitlines()[0] == (f"skipping the web page: {web_page.MISSING}; then export "
                                   "again with --formats web")
    source = manifest["model"]["source"]
    assert source["sha256"] == runfolder.sha256(run / "model.keras")
    assert source["epoch"] in (1, 2) and source["epochs_trained"] == 2 and source["run_finished"]


# -- Small things --------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--epochs", "x"], "argument --epochs: invalid int value: 'x'; see keras-vae train --help"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag; see keras-vae train --help"),
])
def test_argparse_errors_are_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        train_lib.main(argv)
    assert exit_.value.code == 2
    assert one_line(capsys) == f"keras-vae: error: {message}"
    assert cli.main(["trian"]) == 2
    assert one_line(capsys) == ("keras-vae: error: unknown command 'trian': use one of train, "
                                "sweep, demo, export, evaluate, compare, serve (see keras-vae --help)")


@pytest.mark.parametrize("flag", ["--seed", "--data-seed"])
def test_seeds_out_of_range_name_their_flag(tmp_path, capsys, flag):
    status = train_lib.main([*flags(tmp_path, "s"), flag, str(2**64)])
    key = "train.seed" if flag == "--seed" else "data.seed"
    assert status == 2 and one_line(capsys) == (
        f"keras-vae: error: {flag} ({key}) must be an integer from 0 to 4294967295, "
        f"got {2**64}")
    assert not (tmp_path / "s").exists()


def test_minus_zero_and_zero_name_one_run():
    names = {config_lib.run_name(config_lib.load_config(overrides={"model.free_bits": v}))
             for v in (0.0, -0.0)}
    assert len(names) == 1
    betas = pipeline_flags.numbers(float, "numbers", unique=True)
    assert str(betas("-0.0,1")) == "[0.0, 1.0]"  # A sweep's run beta-0, not beta--0.
    with pytest.raises(argparse.ArgumentTypeError, match="'-0,0' repeats a value"):
        betas("-0,0")


def test_a_run_name_cannot_leave_the_output_folder(tmp_path, capsys):
    for name in ("../x", "a/b", ".."):
        assert train_lib.main([*TINY_FLAGS, "--output-dir", str(tmp_path / "out"),
                               "--run-name", name]) == 2
        assert one_line(capsys) == (
            "keras-vae: error: --run-name (train.run_name) must be a folder name, without '/' "
            f"and not '.' or '..' (the run is written in --output-dir), got {name!r}")
    assert os.listdir(tmp_path) == []


def test_an_old_opset_is_refused_before_tf2onnx_runs(run, capsys):
    assert cli.main(["export", str(run), "--formats", "onnx", "--opset", "1", "--quiet"]) == 2
    line = one_line(capsys)
    assert line.startswith("keras-vae export: error: --opset 1 is not supported here: "
                           "tf2onnx "), line
    assert "writes opsets 14 to 18" in line


def test_evaluate_says_and_records_which_epochs_model_it_used(run, capsys):
    assert evaluate_lib.main([str(run), "--k", "2", "--chunk", "2"]) == 0
    record = json.loads((run / "eval.json").read_text())["model"]
    assert record["sha256"] == runfolder.sha256(run / "model.keras")
    assert record["epochs_trained"] == 2 and record["run_finished"]
    assert capsys.readouterr().out.splitlines()[0] == (
        f"Evaluating model.keras of epoch {record['epoch']} (best ELBO) of a run finished "
        "after 2 epochs")


def test_export_of_a_read_only_run_is_one_line(finished, small_disk, capsys):
    disk = small_disk(3)
    run = pathlib.Path(shutil.copytree(finished, disk / "run", ignore=shutil.ignore_patterns(
        "logs", "checkpoints")))
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    assert cli.main(["export", str(run), "--formats", "onnx", "--quiet"]) == 1
    assert one_line(capsys) == (f"keras-vae export: error: cannot write the export in '{run}': "
                                f"'{run / '.lock'}': Read-only file system; the previous "
                                "export, if any, is unchanged")
