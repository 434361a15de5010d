"""`keras-vae sweep`: runs per β, tables, pictures, HParams sessions, resuming."""

import csv
import math
import os

import pytest
import tensorflow as tf
from PIL import Image
from tensorboard import context
from tensorboard.backend.event_processing import data_provider
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.backend.event_processing import plugin_event_multiplexer
from tensorboard.plugins.hparams import metadata

from export import lock
from keras_vae import monitoring
from pipelines import sweep

TINY = ["--data", "digits", "--image-size", "8", "--channels", "1", "--epochs", "1",
        "--batch-size", "64", "--filters", "8,16", "--seed", "0", "-q"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    output = tmp_path_factory.mktemp("sweeps")
    argv = [*TINY, "--betas", "1,0", "--latent-dims", "4", "--output-dir", str(output),
            "--sweep-name", "tiny"]
    assert sweep.main(argv) == 0
    return output / "tiny", argv


def _table(folder):
    with open(folder / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_sweep_writes_one_finite_row_per_beta(swept):
    folder, _ = swept
    rows = _table(folder)
    assert [(r["beta"], r["latent_dim"], r["status"], r["run"]) for r in rows] == [
        ("0", "4", "ok", "beta-0-z4"), ("1", "4", "ok", "beta-1-z4")]
    for row in rows:
        rate, distortion, elbo = (float(row[k]) for k in ("rate", "distortion", "elbo"))
        assert all(map(math.isfinite, (rate, distortion, elbo)))
        assert elbo == pytest.approx(-(rate + distortion), rel=1e-3)
        assert 0 <= int(row["active_units"]) <= 4
    # Without a KL penalty the posterior spreads out; at β = 1 after one epoch
    # it has (nearly) collapsed onto the prior.
    assert float(rows[0]["rate"]) > float(rows[1]["rate"]) + 1.0
    markdown = (folder / "results.md").read_text()
    assert "| 0 | 4 | ok |" in markdown and "| 1 | 4 | ok |" in markdown


def test_sweep_writes_its_pictures(swept):
    folder, _ = swept
    for name in ("rate_distortion.png", "reconstructions.png", "samples.png"):
        with Image.open(folder / name) as png:
            assert png.format == "PNG" and min(png.size) > 100


def test_each_run_is_an_hparams_session_with_its_final_metrics(swept):
    folder, _ = swept
    for row in _table(folder):
        logs = folder / "runs" / row["run"] / "logs"
        events = event_accumulator.EventAccumulator(
            str(logs), size_guidance={event_accumulator.TENSORS: 0})
        events.Reload()
        content = events.PluginTagToContent("hparams")
        session = metadata.parse_session_start_info_plugin_data(
            content[metadata.SESSION_START_INFO_TAG])
        assert session.hparams["beta"].number_value == float(row["beta"])
        assert session.hparams["latent_dim"].number_value == 4
        experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
        assert {m.name.tag for m in experiment.metric_infos} == set(sweep.METRICS)
        for info in experiment.metric_infos:  # The words of keras_vae.monitoring.METRICS.
            assert info.description == monitoring.describe(info.name.tag)
        rate = tf.make_ndarray(events.Tensors("rate")[0].tensor_proto)
        assert rate == pytest.approx(float(row["rate"]), rel=1e-6)


def test_tensorboard_shows_one_run_per_beta_in_beta_order(swept):
    folder, _ = swept
    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(folder / "runs")).Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(folder / "runs"))
    runs = provider.list_runs(context.RequestContext(), experiment_id="")
    # TensorBoard orders (and colours) runs by start time: --betas 1,0 trains β = 0 first.
    assert [r.run_name for r in sorted(runs, key=lambda r: r.start_time)] == [
        "beta-0-z4/logs", "beta-1-z4/logs"]


def test_rerunning_the_sweep_skips_finished_runs(swept):
    folder, argv = swept
    before = _table(folder)
    models = sorted((folder / "runs").glob("*/model.keras"))
    stamps = [m.stat().st_mtime_ns for m in models]
    assert sweep.main(argv) == 0
    assert [m.stat().st_mtime_ns for m in models] == stamps  # not retrained
    assert _table(folder) == before
    assert len(list((folder / "runs" / "beta-0-z4" / "logs").glob("events.*.hparams"))) == 1


def test_a_failed_run_is_reported_and_the_exit_status_is_1(tmp_path, capsys):
    # A learning rate of 10^6 throws the weights out of range: the loss becomes NaN.
    argv = [*TINY, "--betas", "1", "--learning-rate", "1e6", "--output-dir", str(tmp_path)]
    assert sweep.main(argv) == 1
    assert "1 of 1 runs failed (beta-1)" in capsys.readouterr().err
    (row,) = _table(tmp_path / "sweep")
    assert row["status"] == "failed" and row["rate"] == "" and "NaN" in row["error"]
    assert not (tmp_path / "sweep" / "rate_distortion.png").exists()


@pytest.mark.parametrize("flags, message", [
    (["--betas", "0,-1"], "β values >= 0"),
    (["--latent-dim", "4"], "unrecognized arguments: --latent-dim"),
])
def test_bad_flags_exit_2_with_one_line(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        sweep.main([*TINY, *flags])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_sweep_needs_validation_data(tmp_path, capsys):
    argv = [*TINY, "--validation-split", "0", "--output-dir", str(tmp_path)]
    assert sweep.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--validation-split > 0" in err
    assert not any(tmp_path.iterdir())


def test_a_second_sweep_of_one_name_is_refused_in_one_line(tmp_path, capsys):
    folder = tmp_path / "sweep"
    with lock.hold(folder, "keras-vae sweep"):
        assert sweep.main([*TINY, "--betas", "1", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"{folder} is in use by keras-vae sweep (pid {os.getpid()}, " in err
    assert sorted(p.name for p in folder.iterdir()) == []  # Nothing trained; lock removed.


def test_a_missing_data_folder_is_refused_before_the_sweep_folder_appears(tmp_path, capsys):
    argv = [*TINY, "--data", str(tmp_path / "missing"), "--output-dir", str(tmp_path / "out")]
    assert sweep.main(argv) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_bad_likelihood_is_refused_before_the_sweep_folder_appears(tmp_path, capsys):
    argv = [*TINY, "--likelihood", "gaussian:-1", "--output-dir", str(tmp_path / "out")]
    assert sweep.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Gaussian sigma must be > 0" in err, err
    assert not (tmp_path / "out").exists()
