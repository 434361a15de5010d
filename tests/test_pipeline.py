"""The training pipeline: config precedence, run folders, TensorBoard, resume, NaN, seeds.

Runs train a 2-d latent VAE on the embedded 8×8 `digits` for a few steps.
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from export import runfolder
from pipelines import beta as beta_lib
from pipelines import config as config_lib
from pipelines import cli
from pipelines import train as train_lib

TINY = {
    "data.source": "digits",
    "data.image_size": 8,
    "data.channels": 1,
    "model.latent_dim": 2,
    "model.filters": [4, 8],
    "model.likelihood": "bernoulli",
    "train.steps_per_epoch": 5,
    "train.update_freq": 2,
}
TINY_FLAGS = [
    "--data", "digits", "--image-size", "8", "--channels", "1", "--latent-dim", "2",
    "--filters", "4,8", "--likelihood", "bernoulli", "--steps-per-epoch", "5", "-q",
]


def tiny_config(tmp_path, **overrides):
    overrides = {"train.output_dir": str(tmp_path), **TINY, **overrides}
    return config_lib.load_config(overrides=overrides)


def run_cli(*args):
    """Runs `keras-vae train ARGS`; returns (exit code, stderr lines)."""
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "train", *args],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stderr.splitlines()


def read_events(folder):
    """{tag: (plugin name, [steps])} of the event files in `folder`."""
    acc = event_accumulator.EventAccumulator(
        str(folder), size_guidance={event_accumulator.TENSORS: 0}
    ).Reload()
    return {
        tag: (acc.SummaryMetadata(tag).plugin_data.plugin_name, [e.step for e in acc.Tensors(tag)])
        for tag in acc.Tags()["tensors"]
    }


def final_weights(folder, name="last.keras"):
    return keras.saving.load_model(folder / name).get_weights()


def test_config_precedence_defaults_file_flags(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\nlatent_dim = 5\nfilters = [8, 16]\n[train]\nlearning_rate = 1\n')
    config, _ = train_lib.parse_config(["--config", str(path), "--filters", "4,8,16"])
    assert config["model"]["latent_dim"] == 5  # file over default
    assert config["model"]["filters"] == [4, 8, 16]  # flag over file
    assert config["train"]["learning_rate"] == 1.0  # an int where a float goes
    assert config["data"] == config_lib.DEFAULTS["data"]  # defaults elsewhere
    # The written config reads back to the same config.
    config_lib.dump_toml(config, tmp_path / "out.toml")
    assert config_lib.load_config(tmp_path / "out.toml") == config
    path.write_text("[model]\nlatent_dims = 5\n")
    with pytest.raises(ValueError, match="unknown config key 'model.latent_dims'"):
        config_lib.load_config(path)
    path.write_text('[model]\nlatent_dim = "5"\n')
    with pytest.raises(ValueError, match="model.latent_dim must be a int"):
        config_lib.load_config(path)


def test_shipped_configs_load_and_default_run_names_are_stable(tmp_path):
    for name in ("default.toml", "artworks.toml"):
        config_lib.load_config(pathlib.Path(config_lib.__file__).parent / "configs" / name)
    a = tiny_config(tmp_path)
    assert config_lib.run_name(a) == config_lib.run_name(tiny_config(tmp_path))
    assert config_lib.run_name(a).startswith("digits-bernoulli-linear-z2-s0-")
    # More epochs train the same run further; another β is another run.
    assert config_lib.run_name(a) == config_lib.run_name(tiny_config(tmp_path, **{"train.epochs": 9}))
    assert config_lib.run_name(a) != config_lib.run_name(tiny_config(tmp_path, **{"beta.stop": 2.0}))


def test_run_writes_every_artifact_and_tensorboard_summaries(tmp_path):
    folder = train_lib.train(tiny_config(tmp_path, **{"train.epochs": 2}), verbose=0)
    for name in ("config.toml", "model.keras", "last.keras", "metrics.json",
                 "checkpoints/epoch-00002/state.json", "checkpoints/epoch-00002/checkpoint.keras",
                 "images/reconstructions_held_out.png", "images/reconstructions_train.png",
                 "images/samples.png", "images/traversals.png"):
        assert (folder / name).is_file(), name
    assert not list(folder.glob(".*tmp*"))  # No temporary file left behind.

    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 2
    for split in ("train", "validation"):
        m = metrics[split]
        assert m["elbo"] == pytest.approx(-(m["distortion"] + m["rate"]), rel=1e-5)
        assert m["rate"] >= 0 and 0 <= m["active_units"] <= 2

    # One TensorBoard run per training run: train and validation are tag groups.
    events = read_events(folder / "logs")
    for term in ("loss", "distortion", "rate", "elbo", "mse", "psnr", "bits_per_dim", "beta",
                 "learning_rate"):
        assert events[f"train/{term}"] == ("scalars", [0, 1])
        assert events[f"train_batch/{term}"] == ("scalars", [2, 4, 6, 8, 10])
    for name in ("grad_norm_distortion", "grad_norm_beta_rate", "grad_ratio"):
        assert events[f"gradients/{name}"][0] == "scalars"
    for term in ("loss", "distortion", "rate", "elbo", "mse", "psnr", "bits_per_dim",
                 "active_units", "rate_per_active_unit"):
        assert events[f"validation/{term}"] == ("scalars", [0, 1])
    assert events["validation/kl_per_dim"] == ("histograms", [0, 1])
    # Training images are reconstructed beside the held-out ones.
    for name in ("held_out_reconstructions", "train_reconstructions", "samples", "traversals"):
        assert events[f"images/{name}"] == ("images", [0, 1])
    assert events["custom_scalars__config__"][0] == "custom_scalars"
    acc = event_accumulator.EventAccumulator(
        str(folder / "logs"), size_guidance={event_accumulator.TENSORS: 0}).Reload()
    width, height = acc.Tensors("images/train_reconstructions")[-1].tensor_proto.string_val[:2]
    assert int(height) >= 2 * 64  # 8×8 digits enlarged to be seen: two rows of >= 64 px.


KILL_AFTER_EPOCH_2 = """
import os, sys, keras
from pipelines import config, train

class Kill(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            os._exit(1)  # Like kill -9: no cleanup at all.

train.train(config.load_config(overrides={overrides!r}), verbose=0, callbacks=[Kill()])
"""


class _Count(keras.callbacks.Callback):
    epochs = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs += 1


def test_killed_run_resumes_where_it_stopped_and_finished_run_returns(tmp_path):
    overrides = {"train.output_dir": str(tmp_path), **TINY, "train.epochs": 4,
                 "beta.warmup_steps": 40}
    config = config_lib.load_config(overrides=overrides)
    script = textwrap.dedent(KILL_AFTER_EPOCH_2).format(overrides=overrides)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert killed.returncode == 1, killed.stderr
    folder = config_lib.run_dir(config)
    assert not (folder / "metrics.json").exists()

    counter = _Count()
    train_lib.train(config, verbose=0, callbacks=[counter])
    assert counter.epochs == 2  # Epochs 3 and 4 only.
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 4
    # The optimizer step was restored, so the β warm-up went on: β was last
    # set before step 19 of 20 (0-based), to 19/40.
    assert metrics["train"]["beta"] == pytest.approx(19 / 40)
    events = read_events(folder / "logs")
    assert events["validation/loss"][1] == [0, 1, 2, 3]  # No epoch logged twice.

    counter = _Count()
    assert train_lib.train(config, verbose=0, callbacks=[counter]) == folder
    assert counter.epochs == 0
    # The same folder with another config is refused, not mixed.
    other = {**overrides, "train.run_name": folder.name, "model.latent_dim": 3}
    with pytest.raises(runfolder.RunFileError, match=r"\(model.latent_dim changed\)"):
        train_lib.train(config_lib.load_config(overrides=other), verbose=0)


class _PoisonWeights(keras.callbacks.Callback):
    """Sets every weight to NaN when epoch 3 begins."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            for w in self.model.trainable_weights:
                w.assign(np.full(w.shape, np.nan, "float32"))


def test_nan_loss_stops_with_one_line_and_keeps_the_last_good_model(tmp_path):
    config = tiny_config(tmp_path, **{"train.epochs": 4})
    with pytest.raises(cli.TrainingError, match="epoch 3, step 11: loss became NaN") as err:
        train_lib.train(config, verbose=0, callbacks=[_PoisonWeights()])
    assert "\n" not in str(err.value) and "last.keras" in str(err.value)
    folder = config_lib.run_dir(config)
    assert not (folder / "metrics.json").exists()
    for name in ("model.keras", "last.keras"):
        assert all(np.isfinite(w).all() for w in final_weights(folder, name))
    state = json.loads((folder / "checkpoints" / "epoch-00002" / "state.json").read_text())
    assert state["epochs_completed"] == 2


class _History(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(dict(logs))


def test_model_keras_is_the_epoch_of_best_validation_elbo(tmp_path):
    # A β warm-up from 0 lowers D + β·R on early epochs by (1 − β)·R; the
    # ELBO does not depend on β, so model.keras must follow val_elbo.
    config = tiny_config(tmp_path, **{
        "train.epochs": 4, "beta.schedule": "linear", "beta.warmup_steps": 20,
        "model.likelihood": "gaussian_optimal",
    })
    history = _History()
    folder = train_lib.train(config, verbose=0, callbacks=[history])
    elbos = [logs["val_elbo"] for logs in history.epochs]
    state = json.loads((folder / "checkpoints" / "epoch-00004" / "state.json").read_text())
    assert state["monitor"] == "val_elbo" and state["best"] == pytest.approx(max(elbos))
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["best"] == {"val_elbo": pytest.approx(max(elbos))}
    # metrics.json states the σ the model evaluates with, and it is the saved one.
    sigma = float(keras.saving.load_model(folder / "last.keras").likelihood.scale())
    assert metrics["validation"]["sigma"] == pytest.approx(sigma, rel=1e-6)
    assert metrics["validation"]["mse"] > 0


def test_cli_errors_are_one_line(tmp_path):
    code, lines = run_cli(*TINY_FLAGS, "--output-dir", str(tmp_path), "--learning-rate", "1e6")
    assert code == 1 and len(lines) == 1 and "became NaN" in lines[0], lines
    code, lines = run_cli(*TINY_FLAGS, "--data", str(tmp_path / "missing"))
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("keras-vae: error: ") and "missing" in lines[0]
    # The library names its argument (`source`); the command says its flag.
    assert "--data" in lines[0] and "`source`" not in lines[0], lines


def test_the_command_says_flags_where_the_library_says_arguments(caplog):
    """`keras_vae`'s data modules name their arguments; `keras-vae` shows its
    flags instead, in errors (`cli.error`) and in the data warnings."""
    import logging

    from keras_vae import arrays, images

    assert "`source`" in arrays.WHAT_TO_DO and "--" not in arrays.WHAT_TO_DO
    assert cli.in_flags(arrays.WHAT_TO_DO).startswith("pass a folder of images as --data, ")
    logger = logging.getLogger("keras_vae.data")
    logger.addFilter(cli._IN_FLAGS)
    try:
        with caplog.at_level(logging.WARNING):
            images.logger.warning("pass `cache_dir` to cache elsewhere, `cache=False` to stop")
    finally:
        logger.removeFilter(cli._IN_FLAGS)
    assert caplog.records[-1].getMessage() == (
        "pass --cache-dir DIR to cache elsewhere, --cache false to stop")


def test_same_seed_same_weights(tmp_path):
    a, b = (
        final_weights(train_lib.train(tiny_config(tmp_path, **{"train.run_name": name, "train.epochs": 2}), 0))
        for name in ("a", "b")
    )
    assert len(a) > 4 and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_controller_resumes_from_saved_state():
    beta = beta_lib.resolve({"schedule": "kl_target", "target_rate": 5.0}, config_lib.BETA_DEFAULTS)
    controller, _ = beta_lib.callback(beta)
    controller.update(rate=9.0)
    controller.update(rate=8.0)
    resumed, beta0 = beta_lib.callback(beta, state=controller.get_config())
    assert resumed.integral == controller.integral == -7.0
    assert beta0 == controller.beta
    with pytest.raises(ValueError, match="needs beta.tolerance"):
        beta_lib.resolve({"schedule": "geco"}, config_lib.BETA_DEFAULTS)


def test_beta_table_is_tagged_and_takes_only_its_own_keys(tmp_path):
    path = tmp_path / "beta.toml"
    path.write_text("[beta.cyclical]\nperiod = 40\n")
    config = config_lib.load_config(path)
    assert config["beta"] == {"schedule": "cyclical", "period": 40, "ratio": 0.5,
                              "start": 0.0, "stop": 1.0, "update_freq": "batch"}
    # Written back as the same tagged table, and read back to the same config.
    assert "[beta.cyclical]\nperiod = 40\n" in config_lib.to_toml(config)
    config_lib.dump_toml(config, tmp_path / "out.toml")
    assert config_lib.load_config(tmp_path / "out.toml") == config
    # A schedule from the flags drops the file's keys, which belong to another one.
    assert config_lib.load_config(path, {"beta.schedule": "constant"})["beta"] == {
        "schedule": "constant", "value": 1.0, "update_freq": "batch"}
    path.write_text("[beta.cyclical]\nperiod = 40\nwarmup_steps = 9\n")
    with pytest.raises(ValueError, match=r"^beta.warmup_steps is not a parameter of the "
                       r"cyclical schedule, whose \[beta.cyclical\] keys are period, ratio"):
        config_lib.load_config(path)
    with pytest.raises(ValueError, match=r"--beta \(beta.value\) is not a parameter of the linear"
                       r".*; constant takes it: --beta-schedule constant \(\[beta.constant\] in"):
        config_lib.load_config(None, {"beta.value": 0.5},
                               {"beta.value": "--beta", "beta.schedule": "--beta-schedule"})
    # Keys no schedule takes together get no suggestion.
    with pytest.raises(ValueError, match=r"^beta.period, beta.kp are not parameters of the "
                       r"constant schedule, whose \[beta.constant\] keys are value, update_freq$"):
        config_lib.load_config(None, {"beta.schedule": "constant", "beta.period": 3,
                                      "beta.kp": 1.0})
    path.write_text('[beta]\nschedule = "sigmoid"\nmidpoint_steps = 10\n')
    with pytest.raises(ValueError, match=r"\[beta\] must be one tagged table .* e.g. "
                       r"\[beta.sigmoid\] \(instead of \[beta\] with schedule = \"sigmoid\"\)"):
        config_lib.load_config(path)
    path.write_text("[beta.warmup]\nstop = 2.0\n")
    with pytest.raises(ValueError, match="Unknown beta schedule or controller 'warmup': use one of constant"):
        config_lib.load_config(path)


def test_cli_rejects_unknown_subcommands(capsys):
    from pipelines import cli

    assert cli.main(["trian"]) == 2
    assert "train" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0


def test_the_private_keras_fix_is_refused_on_an_unchecked_keras(monkeypatch):
    from pipelines import distribution

    monkeypatch.setattr(keras, "__version__", "3.99.0")
    with pytest.raises(ValueError, match=r"--strategy multiworker relies on a fix checked with "
                       r"Keras 3\.15\.x, not 3\.99\.0"):
        distribution.make_strategy("multiworker")


def test_the_old_callback_names_still_work_with_a_deprecation_warning():
    from pipelines import runcallbacks

    with pytest.warns(DeprecationWarning, match="use pipelines.runcallbacks.StopOnNonFinite"):
        from pipelines.callbacks import StopOnNaN
    assert StopOnNaN is runcallbacks.StopOnNonFinite
