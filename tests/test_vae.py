"""The VAE model: loss reduction, β, metrics, training, saving and bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import keras_vae
from keras_vae import likelihoods

tfd = tfp.distributions


def _model(**kwargs):
    kwargs.setdefault("latent_dim", 3)
    return keras_vae.build_conv_vae((8, 8, 1), filters=(8, 16), seed=0, **kwargs)


def test_loss_reduction_sums_pixels_and_latents_and_averages_the_batch(digits):
    # Pins the effective β: per-image sums (nats), batch mean. A posterior
    # scale of e^-15 makes the sample equal its mean, so numpy can recompute.
    model = _model(beta=0.5)
    dense = model.encoder.get_layer("posterior_params")
    kernel, bias = dense.get_weights()
    kernel[:, 3:], bias[3:] = 0.0, -30.0
    dense.set_weights([kernel, bias])
    x = digits[:5]
    terms = {k: float(v) for k, v in model.compute_terms(x).items()}
    loc, log_var = np.split(model.encoder(x).numpy().astype("float64"), 2, axis=-1)
    kl = 0.5 * (np.exp(log_var) + loc**2 - 1.0 - log_var)
    p = 1 / (1 + np.exp(-model.decoder(loc.astype("float32")).numpy().astype("float64")))
    bce = -(x * np.log(p) + (1 - x) * np.log1p(-p))
    assert terms["rate"] == pytest.approx(kl.sum(axis=1).mean(), rel=1e-5)
    assert terms["distortion"] == pytest.approx(bce.sum(axis=(1, 2, 3)).mean(), rel=1e-5)
    assert terms["loss"] == pytest.approx(terms["distortion"] + 0.5 * terms["rate"], rel=1e-6)
    assert terms["elbo"] == pytest.approx(-(terms["distortion"] + terms["rate"]), rel=1e-6)


def test_beta_zero_is_the_autoencoder_objective(digits):
    model = _model(beta=0.0)
    terms = model.compute_terms(digits[:16])
    assert float(terms["loss"]) == pytest.approx(float(terms["distortion"]), rel=1e-7)
    assert float(terms["rate"]) > 0.0


def test_fit_makes_the_loss_fall_and_evaluate_reports_the_named_metrics(digits):
    model = _model(latent_dim=4, beta=1.0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(digits[:1024], batch_size=64, epochs=4, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.85 * losses[0]
    result = model.evaluate(digits[1024:1280], batch_size=64, verbose=0, return_dict=True)
    assert set(result) == {"loss", "distortion", "rate", "elbo", "mse", "beta"}
    assert result["beta"] == 1.0
    assert result["loss"] == pytest.approx(result["distortion"] + result["rate"], rel=0.02)
    assert all(np.isfinite(v) for v in result.values())


def test_sigma_optimal_evaluates_with_the_training_mean_not_the_last_batch(digits):
    # 520 images in batches of 64: the epoch ends with a batch of 8, whose own
    # σ* the old code kept for evaluation. σ² must be the mean of the epoch's
    # batch MSEs (< 100 batches: the plain mean), recovered here from the
    # logged running means over images.
    model = _model(likelihood="gaussian_optimal")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    running = []
    log = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: running.append(logs["mse"]))
    history = model.fit(digits[:520], batch_size=64, epochs=1, verbose=0, shuffle=False,
                        callbacks=[log])
    seen = np.cumsum([64] * 8 + [8])
    totals = np.array(running) * seen
    batch_mse = np.diff(totals, prepend=0.0) / np.diff(seen, prepend=0)
    sigma = float(model.likelihood.scale())
    assert sigma**2 == pytest.approx(batch_mse.mean(), rel=1e-4)
    assert history.history["mse"][0] == pytest.approx(totals[-1] / 520, rel=1e-6)
    assert history.history["sigma"][0] == pytest.approx(sigma, rel=1e-6)
    # Scored outside training, an image's NLL does not depend on its batch.
    x = digits[600:664]
    one = model.evaluate(x[:1], verbose=0, return_dict=True)
    params = model.decoder(model.posterior_factors(x).loc)
    alone = model.likelihood.nll(x[:1], params[:1]).numpy()
    together = model.likelihood.nll(x, params).numpy()
    np.testing.assert_allclose(alone, together[:1], rtol=1e-6)
    assert one["sigma"] == pytest.approx(sigma)


def test_diagnostics_never_change_model_state(digits):
    from keras_vae import diagnostics

    model = _model(likelihood="gaussian_optimal")
    model.compile(optimizer="adam")
    model.fit(digits[:128], batch_size=64, epochs=1, verbose=0)
    before = [v.numpy().copy() for v in model.variables]
    state = model.seed_generator.state.numpy().copy()
    norms = diagnostics.gradient_norms(model, digits[1000:1064])
    diagnostics.latent_statistics(model, digits[1000:1064])
    assert norms["distortion"] > 0 and norms["beta_rate"] > 0
    for old, variable in zip(before, model.variables):
        np.testing.assert_array_equal(variable.numpy(), old, err_msg=variable.path)
    np.testing.assert_array_equal(model.seed_generator.state.numpy(), state)
    # Same seed, same numbers: the diagnostic is repeatable.
    assert diagnostics.gradient_norms(model, digits[1000:1064]) == norms


def test_extreme_log_variance_gives_a_finite_rate(digits):
    model = _model()
    dense = model.encoder.get_layer("posterior_params")
    kernel, bias = dense.get_weights()
    kernel[:, 3:] = 0.0
    for log_var in (80.0, 180.0, -200.0):
        bias[3:] = log_var
        dense.set_weights([kernel, bias])
        terms = model.compute_terms(digits[:8])
        assert all(np.isfinite(float(v)) for v in terms.values()), (log_var, terms)
        loc, bounded = model.posterior_params(digits[:8])
        assert -50.0 <= float(tf.reduce_min(bounded)) <= float(tf.reduce_max(bounded)) <= 20.0


def test_plain_fit_stops_at_the_first_nan_with_the_weights_before_it(digits):
    model = _model()
    model.compile(optimizer="adam")
    x = digits[:96].copy()
    x[70, 3, 3, 0] = np.nan  # In the second batch of 64.
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.fit(x[:64], batch_size=64, epochs=1, verbose=0, shuffle=False)
    after_first = [w.numpy().copy() for w in model.trainable_weights]
    assert not all(np.array_equal(a, b) for a, b in zip(before, after_first))
    with pytest.raises(keras_vae.callbacks.NonFiniteLossError) as err:
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(64), epochs=1, verbose=0,
                  shuffle=False)
    message = _one_line(err)
    assert "step 3" in message and "loss became NaN" in message
    # Step 2 (the first batch again) trained; step 3 was skipped, not applied.
    assert int(model.optimizer.iterations.numpy()) == 2
    assert all(np.all(np.isfinite(w.numpy())) for w in model.trainable_weights)


def test_fit_works_with_tf_data(digits):
    model = _model()
    model.compile(optimizer="adam")
    ds = tf.data.Dataset.from_tensor_slices(digits[:128]).batch(32)
    history = model.fit(ds, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])


def test_learned_sigma_trains(digits):
    model = _model(likelihood="gaussian_learned")
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(digits[:512], batch_size=64, epochs=2, verbose=0)
    # Starts at σ = 1; pixel errors are ~0.3, so the data pull σ down.
    assert np.exp(float(model.likelihood.log_sigma.numpy())) < 0.9


def test_free_bits_floor_the_penalty_not_the_reported_rate(digits):
    model = _model(latent_dim=3, beta=1.0, free_bits=2.0)
    keras.utils.set_random_seed(1)
    terms = model.compute_terms(digits[:32])
    # Untrained posteriors are near the prior: each dimension's KL < 2 nats,
    # so the penalty is the floor, 3 × 2 nats.
    assert float(terms["rate"]) < 6.0
    assert float(terms["loss"]) == pytest.approx(float(terms["distortion"]) + 6.0, rel=1e-6)


def test_capacity_objective_penalises_distance_to_capacity(digits):
    model = _model(beta=10.0, objective="capacity", capacity=25.0)
    terms = model.compute_terms(digits[:16])
    expected = float(terms["distortion"]) + 10.0 * abs(float(terms["rate"]) - 25.0)
    assert float(terms["loss"]) == pytest.approx(expected, rel=1e-6)


def test_monte_carlo_kl_estimates_the_analytic_kl(digits):
    analytic, mc = _model(kl="analytic"), _model(kl="mc")
    mc.set_weights(analytic.get_weights())
    q = analytic.posterior_factors(tf.repeat(digits[:1], 20000, axis=0))
    z = q.sample(seed=[1, 2])
    exact = analytic.kl_per_dim(q, z).numpy().sum(-1).mean()
    estimate = mc.kl_per_dim(q, z).numpy().sum(-1).mean()
    assert estimate == pytest.approx(exact, abs=0.05)


def test_non_gaussian_prior_uses_monte_carlo_and_round_trips(tmp_path, digits):
    prior = tfd.Laplace(loc=tf.zeros(3), scale=tf.ones(3))
    model = _model(prior=prior)
    terms = model.compute_terms(digits[:8])
    assert np.isfinite(float(terms["rate"]))
    with pytest.raises(ValueError, match="kl='mc'"):
        _model(prior=prior, kl="analytic").compute_terms(digits[:8])
    model.save(tmp_path / "laplace.keras")
    again = keras.saving.load_model(tmp_path / "laplace.keras")
    assert isinstance(again.prior, tfd.Laplace)


@pytest.mark.parametrize("architecture", ["conv", "resnet"])
def test_keras_round_trip_keeps_outputs_beta_likelihood_and_schedule(tmp_path, digits,
                                                                     architecture):
    schedule = keras_vae.schedules.LinearWarmup(warmup_steps=7)
    model = _model(likelihood=likelihoods.Gaussian(sigma="learned"), beta=0.25, free_bits=0.1,
                   architecture=architecture)
    model.compile(optimizer="adam")
    model.fit(digits[:64], batch_size=32, epochs=1, verbose=0,
              callbacks=[keras_vae.callbacks.BetaScheduler(schedule)])
    model.save(tmp_path / "vae.keras")
    again = keras.saving.load_model(tmp_path / "vae.keras")
    x = digits[:4]
    np.testing.assert_allclose(again(x).numpy(), model(x).numpy(), atol=1e-6)
    np.testing.assert_allclose(again.sample(3, seed=5).numpy(), model.sample(3, seed=5).numpy(), atol=1e-6)
    assert float(again.beta.numpy()) == pytest.approx(float(model.beta.numpy()))
    assert float(again.likelihood.log_sigma.numpy()) == pytest.approx(float(model.likelihood.log_sigma.numpy()))
    assert again.get_config()["free_bits"] == 0.1
    cb = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(keras_vae.callbacks.BetaScheduler(schedule)))
    assert cb.schedule == schedule


@pytest.mark.parametrize("architecture", ["conv", "resnet"])
def test_sample_is_reproducible_by_seed(architecture):
    model = _model(architecture=architecture)
    a, b, c = model.sample(4, seed=1), model.sample(4, seed=1), model.sample(4, seed=2)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.allclose(a.numpy(), c.numpy())
    assert a.shape == (4, 8, 8, 1)
    assert 0.0 <= float(tf.reduce_min(a)) and float(tf.reduce_max(a)) <= 1.0


def test_encode_and_decode_return_distributions(digits):
    model = _model()
    q = model.encode(digits[:2])
    assert q.event_shape == (3,) and q.batch_shape == (2,)
    p = model.decode(q.mean())
    assert p.event_shape == (8, 8, 1)
    np.testing.assert_allclose(p.mean().numpy(), model(digits[:2]).numpy(), atol=1e-6)


def _one_line(err):
    message = str(err.value)
    assert "\n" not in message
    return message


def test_wrong_image_shape_is_a_one_line_error():
    model = _model()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError) as err:
        model.fit(np.zeros((4, 16, 16, 1), "float32"), verbose=0)
    assert "resize" in _one_line(err)
    with pytest.raises(ValueError) as err:
        model.evaluate(tf.data.Dataset.from_tensor_slices(np.zeros((4, 8, 8, 3), "float32")).batch(2), verbose=0)
    assert "(8, 8, 1)" in _one_line(err)


def test_data_outside_the_support_is_a_one_line_error(digits):
    model = _model()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError) as err:
        model.fit(digits[:8] * 16.0, verbose=0)
    assert "divide uint8 images by 255" in _one_line(err)


def test_decoder_that_does_not_match_the_likelihood_is_a_one_line_error():
    enc = keras_vae.build_encoder((8, 8, 1), 3, filters=(8,))
    dec = keras_vae.build_decoder((8, 8, 3), 3, filters=(8,))
    with pytest.raises(ValueError) as err:
        keras_vae.VAE(enc, dec, "bernoulli")
    assert "one decoder output per pixel and channel" in _one_line(err)
    bad_enc = keras_vae.build_encoder((8, 8, 1), 2, filters=(8,))
    with pytest.raises(ValueError) as err:
        keras_vae.VAE(bad_enc, keras_vae.build_decoder((8, 8, 1), 3, filters=(8,)))
    assert "2·latent_dim = 6" in _one_line(err)


@pytest.mark.parametrize("architecture", ["conv", "resnet"])
def test_image_sides_must_divide_by_the_number_of_halvings(architecture):
    with pytest.raises(ValueError) as err:
        keras_vae.build_conv_vae((30, 30, 3), filters=(8, 16, 32), architecture=architecture)
    message = _one_line(err)
    assert "2**3 = 8" in message and "24" in message and "32" in message
    with pytest.raises(ValueError, match="1 or 3 channels"):
        keras_vae.build_conv_vae((32, 32, 2))
