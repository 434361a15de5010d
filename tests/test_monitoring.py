"""TensorBoard that explains itself, read back with TensorBoard's own readers,
and the posterior-collapse alarm on tiny 8×8 digits runs."""

import json
import math
import re

import keras

import pytest
from tensorboard import context
from tensorboard.backend.event_processing import data_provider
from tensorboard.backend.event_processing import plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.custom_scalar import custom_scalars_plugin

import keras_vae
from keras_vae import diagnostics
from keras_vae import monitoring


def _provider(logdir):
    """TensorBoard's own reading of `logdir`: (data provider, request context)."""
    mux = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={"tensors": 0})
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    return data_provider.MultiplexerDataProvider(mux, str(logdir)), context.RequestContext()


def _fit(x, logdir, epochs, beta, likelihood="bernoulli", alarm=None, latent_dim=2):
    # Module fixtures run before conftest's per-test seeding: seed here.
    keras.utils.set_random_seed(0)
    model = keras_vae.build_conv_vae(x.shape[1:], latent_dim=latent_dim, likelihood=likelihood,
                                     filters=(8, 16), beta=beta, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    board = monitoring.VAETensorBoard(logdir, x[-128:], update_freq=4, image_every=1,
                                      train_images=x[:8])
    callbacks = [board] + ([alarm] if alarm else [])
    history = model.fit(x[:-128], batch_size=32, epochs=epochs, validation_data=(x[-128:],),
                        callbacks=callbacks, verbose=0)
    return model, history.history


@pytest.fixture(scope="module")
def logged(tmp_path_factory, digits):
    logdir = tmp_path_factory.mktemp("logs")
    model, history = _fit(digits[:512], logdir, epochs=2, beta=0.05, likelihood="gaussian_optimal")
    return logdir, model, history


def test_every_scalar_has_its_description_in_tensorboard(logged):
    logdir, _, _ = logged
    provider, ctx = _provider(logdir)
    runs = provider.list_scalars(ctx, experiment_id="", plugin_name="scalars")
    assert list(runs) == ["."]  # One TensorBoard run per training run.
    series = runs["."]
    for group in ("train", "validation"):
        for name in ("loss", "distortion", "rate", "elbo", "bits_per_dim", "mse", "psnr", "sigma"):
            assert f"{group}/{name}" in series, f"{group}/{name}"
    for tag in ("train/beta", "train/learning_rate", "validation/active_units",
                "validation/rate_per_active_unit", "gradients/grad_norm_distortion",
                "gradients/grad_norm_beta_rate", "gradients/grad_ratio", "train_batch/rate"):
        assert tag in series, tag
    for tag, time_series in series.items():
        metric = monitoring.METRICS[tag.rpartition("/")[2]]
        assert time_series.description == metric.description(), tag
        assert metric.unit in time_series.description and metric.better in time_series.description
    assert "negative" in series["train/distortion"].description  # Why D < 0 is possible.
    histograms = provider.list_tensors(ctx, experiment_id="", plugin_name="histograms")
    assert histograms["."]["validation/kl_per_dim"].description == monitoring.describe("kl_per_dim")


def _values(provider, ctx, tag):
    data = provider.read_scalars(ctx, experiment_id="", plugin_name="scalars",
                                 run_tag_filter=None, downsample=100)
    return [(point.step, point.value) for point in data["."][tag]]


def test_psnr_sigma_and_active_units_are_the_epochs_numbers(logged, digits):
    logdir, model, history = logged
    provider, ctx = _provider(logdir)
    psnr = _values(provider, ctx, "validation/psnr")
    assert [step for step, _ in psnr] == [0, 1]
    for (_, value), mse in zip(psnr, history["val_mse"]):
        assert value == pytest.approx(-10 * math.log10(mse), rel=1e-5)
    sigma = _values(provider, ctx, "train/sigma")
    assert sigma[-1][1] == pytest.approx(history["sigma"][-1], rel=1e-5)
    # An integer count, equal to a fresh measurement on the same images.
    units = _values(provider, ctx, "validation/active_units")
    assert all(value == int(value) for _, value in units)
    fresh = diagnostics.latent_statistics(model, digits[:512][-128:])["active_units"]
    assert units[-1][1] == fresh == history["active_units"][-1]
    assert 0 < fresh <= 2


def test_custom_scalars_layout_puts_rate_distortion_beta_sigma_psnr_on_screen(logged):
    logdir, _, _ = logged
    provider, ctx = _provider(logdir)
    plugin = custom_scalars_plugin.CustomScalarsPlugin(base_plugin.TBContext(
        logdir=str(logdir), data_provider=provider, plugin_name_to_instance={}))
    layout = json.loads(plugin.layout_impl(ctx, ""))  # What the dashboard receives.
    tags = set(provider.list_scalars(ctx, experiment_id="", plugin_name="scalars")["."])
    first = layout["category"][0]
    assert "Rate, distortion and β" in first["title"]
    charts = {c["title"]: c["multiline"]["tag"] for cat in layout["category"] for c in cat["chart"]}
    def shown(regexes):
        return {t for t in tags if any(re.search(r, t) for r in regexes)}

    on_first_screen = set().union(*(shown(c["multiline"]["tag"]) for c in first["chart"]))
    assert {"train/rate", "validation/rate", "train/distortion", "validation/distortion",
            "train/beta"} <= on_first_screen
    everywhere = set().union(*(shown(r) for r in charts.values()))
    assert {"train/sigma", "validation/mse", "validation/psnr",
            "validation/active_units", "gradients/grad_ratio"} <= everywhere


def test_image_grids_are_labelled_enlarged_and_cover_train_and_held_out(logged):
    logdir, _, _ = logged
    provider, ctx = _provider(logdir)
    images = provider.list_blob_sequences(ctx, experiment_id="", plugin_name="images")["."]
    assert set(images) == {f"images/{n}" for n in (
        "held_out_reconstructions", "train_reconstructions", "samples", "traversals")}
    assert "Row *data*" in images["images/train_reconstructions"].description
    mux = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={"tensors": 0})
    mux.AddRunsFromDirectory(str(logdir)).Reload()
    width, height = mux.Tensors(".", "images/train_reconstructions")[-1].tensor_proto.string_val[:2]
    assert int(height) >= 2 * 64 and int(width) > 8 * 64  # 8×8 digits enlarged, plus labels.


def test_without_a_validation_split_no_tag_says_validation(tmp_path, digits):
    """Latent statistics on training images are tagged train/..., not validation/..."""
    keras.utils.set_random_seed(0)
    model = keras_vae.build_conv_vae((8, 8, 1), latent_dim=2, filters=(4,), seed=0)
    model.compile(optimizer="adam")
    board = monitoring.VAETensorBoard(tmp_path, digits[:64], update_freq=0, image_every=0,
                                      images_split="train")
    model.fit(digits[:64], batch_size=32, epochs=1, callbacks=[board], verbose=0)
    provider, ctx = _provider(tmp_path)
    tags = set(provider.list_scalars(ctx, experiment_id="", plugin_name="scalars")["."])
    tags |= set(provider.list_tensors(ctx, experiment_id="", plugin_name="histograms")["."])
    assert {"train/active_units", "train/rate_per_active_unit", "train/kl_per_dim"} <= tags
    assert not [tag for tag in tags if tag.startswith("validation/")]
    with pytest.raises(ValueError, match="images_split"):
        monitoring.VAETensorBoard(tmp_path, digits[:8], images_split="held_out")


def _alarm_texts(logdir):
    provider, ctx = _provider(logdir)
    texts = provider.list_tensors(ctx, experiment_id="", plugin_name="text")
    if "." not in texts:
        return []
    data = provider.read_tensors(ctx, experiment_id="", plugin_name="text",
                                 run_tag_filter=None, downsample=100)
    return [(p.step, p.numpy.item().decode()) for p in data["."]["alarms/posterior_collapse"]]


def test_collapse_alarm_fires_once_on_a_collapsed_run(tmp_path, digits, capfd):
    alarm = monitoring.CollapseAlarm(min_active_units=1, min_rate_per_active_unit=0.1,
                                     log_dir=tmp_path)
    # β = 30 makes every nat of rate cost 30 nats: the code collapses at once.
    with pytest.warns(monitoring.PosteriorCollapseWarning) as caught:
        _, history = _fit(digits[:384], tmp_path, epochs=2, beta=30.0, alarm=alarm)
    assert [epoch for epoch, _ in alarm.alarms] == [0]  # Once, at the first epoch.
    [warning] = [w for w in caught if w.category is monitoring.PosteriorCollapseWarning]
    text = str(warning.message)
    assert text.startswith("posterior collapse at epoch 1:") and text == alarm.alarms[0][1]
    # A library speaks Python: the remedies are its own classes, no flag, no prefix.
    for remedy in ("VAE(free_bits=0.1)", "BetaScheduler(schedules.LinearWarmup(1000))",
                   "a lower β (now 30)"):
        assert remedy in text
    assert "--" not in text and "keras-vae" not in capfd.readouterr().err
    assert f"rate {history['val_rate'][0]:.3g} nats per image" in text
    assert _alarm_texts(tmp_path) == [(0, alarm.alarms[0][1])]


def test_collapse_alarm_stays_quiet_on_a_healthy_run(tmp_path, digits, capfd):
    alarm = monitoring.CollapseAlarm(digits[-128:], log_dir=tmp_path)  # Measures by itself.
    model = keras_vae.build_conv_vae((8, 8, 1), latent_dim=2, filters=(8, 16), beta=0.1, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(digits[:384], batch_size=32, epochs=2, callbacks=[alarm], verbose=0)
    stats = diagnostics.latent_statistics(model, digits[-128:])
    assert monitoring.latent_health(stats)[1] > 0.1 and stats["active_units"] >= 1
    assert alarm.alarms == [] and "posterior collapse" not in capfd.readouterr().err
    assert _alarm_texts(tmp_path) == []
    # The same run with a threshold it cannot meet: the alarm is the thresholds'.
    strict = monitoring.CollapseAlarm(digits[-128:], min_active_units=3)
    strict.set_model(model)
    with pytest.warns(monitoring.PosteriorCollapseWarning, match="threshold 3"):
        strict.on_epoch_end(0, {})
    assert "2 of 2 latent dimensions active (threshold 3)" in strict.alarms[0][1]


def test_collapse_alarm_round_trips_and_checks_its_thresholds(tmp_path):
    alarm = monitoring.CollapseAlarm(min_active_units=2, min_rate_per_active_unit=0.5,
                                     log_dir=tmp_path)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(alarm))
    assert isinstance(again, monitoring.CollapseAlarm)
    assert again.get_config() == alarm.get_config() == {
        "min_active_units": 2, "min_rate_per_active_unit": 0.5, "log_dir": str(tmp_path)}
    with pytest.raises(ValueError, match="thresholds must be >= 0"):
        monitoring.CollapseAlarm(min_rate_per_active_unit=-1)
    lonely = monitoring.CollapseAlarm()
    with pytest.raises(ValueError, match="needs images"):
        lonely.on_epoch_end(0, {})


@pytest.mark.parametrize("likelihood, calibrate", [
    ("gaussian:0.7", True), ("gaussian_optimal", False), ("bernoulli", False)])
def test_the_alarm_offers_a_calibrated_sigma_only_for_a_fixed_one(likelihood, calibrate):
    if likelihood.startswith("gaussian:"):
        likelihood = keras_vae.likelihoods.Gaussian(sigma=float(likelihood.partition(":")[2]))
    model = keras_vae.build_conv_vae((8, 8, 1), latent_dim=2, filters=(4,), likelihood=likelihood)
    alarm = monitoring.CollapseAlarm()
    alarm.set_model(model)
    text = alarm.message(3, 0, 0.0, {"val_rate": 0.02})
    assert text.startswith("posterior collapse at epoch 4: 0 of 2 latent dimensions active")
    assert ("fixed σ = 0.7" in text) == calibrate
    assert ('likelihoods.Gaussian(sigma="optimal")' in text) == calibrate


def test_descriptions_cover_every_metric_the_model_logs():
    model = keras_vae.build_conv_vae((8, 8, 1), latent_dim=2, filters=(4,),
                                     likelihood="gaussian_learned")
    logged = [*model.metric_names, "beta", *model.likelihood.log_values()]
    for name in logged:
        text = monitoring.describe(name)
        assert "[" in text and "]" in text  # The unit, in brackets.
    with pytest.raises(KeyError):
        monitoring.describe("no_such_metric")


def test_keras_vae_train_raises_the_alarm_and_its_flags_set_the_thresholds(tmp_path, capfd):
    from pipelines import train as train_lib

    flags = ["--data", "digits", "--image-size", "8", "--channels", "1", "--latent-dim", "2",
             "--filters", "4,8", "--likelihood", "bernoulli", "--steps-per-epoch", "5",
             "--epochs", "2", "--beta-schedule", "constant", "--beta", "30", "-q",
             "--output-dir", str(tmp_path)]
    assert train_lib.main([*flags, "--run-name", "collapsed"]) == 0
    err = capfd.readouterr().err
    assert err.count("keras-vae: warning: posterior collapse at epoch 1:") == 1, err
    # The command translates the library's remedies into its flags.
    assert "--free-bits 0.1" in err and "--warmup-steps 1000" in err and "VAE(" not in err
    assert _alarm_texts(tmp_path / "collapsed" / "logs")[0][0] == 0
    # The thresholds are flags; 0 and 0 switch the alarm off.
    off = ["--collapse-active-units", "0", "--collapse-rate-per-unit", "0", "--run-name", "off"]
    assert train_lib.main([*flags, *off]) == 0
    assert "posterior collapse" not in capfd.readouterr().err
    assert _alarm_texts(tmp_path / "off" / "logs") == []


def test_monitoring_keeps_its_public_names_after_the_split():
    from keras_vae import collapse, glossary, monitoring, summaries

    assert monitoring.CollapseAlarm is collapse.CollapseAlarm
    assert monitoring.PosteriorCollapseWarning is collapse.PosteriorCollapseWarning
    assert monitoring.METRICS is glossary.METRICS
    assert monitoring.custom_scalars_layout is summaries.custom_scalars_layout
