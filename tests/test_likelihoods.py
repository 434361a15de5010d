"""Likelihoods and KL against independent numpy formulas (nats, 1e-5 relative)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import likelihoods

tfd = tfp.distributions
RTOL = 1e-5


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, 4, 5, 2)).astype("float32")
    params = rng.normal(scale=2.0, size=x.shape).astype("float32")
    return x, params


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a.astype("float64")))


def test_bernoulli_nll_is_summed_binary_cross_entropy(batch):
    x, logits = batch
    p = _sigmoid(logits)
    expected = -(x * np.log(p) + (1 - x) * np.log1p(-p)).sum(axis=(1, 2, 3))
    got = likelihoods.Bernoulli().nll(x, logits).numpy()
    np.testing.assert_allclose(got, expected, rtol=RTOL)
    np.testing.assert_allclose(likelihoods.Bernoulli().mean(logits).numpy(), p, rtol=RTOL)


def test_bernoulli_nll_matches_tfp_on_binary_data(batch):
    _, logits = batch
    x = (logits > 0.3).astype("float32")
    bern = likelihoods.Bernoulli()
    np.testing.assert_allclose(
        bern.nll(x, logits).numpy(), -bern.distribution(logits).log_prob(x).numpy(), rtol=RTOL
    )


@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.7])
def test_fixed_gaussian_nll(batch, sigma):
    x, params = batch
    mu = _sigmoid(params)
    d = x[0].size
    expected = ((x - mu) ** 2).sum(axis=(1, 2, 3)) / (2 * sigma**2) + d * math.log(
        sigma * math.sqrt(2 * math.pi)
    )
    got = likelihoods.Gaussian(sigma=sigma).nll(x, params).numpy()
    np.testing.assert_allclose(got, expected, rtol=RTOL)


def test_learned_gaussian_uses_its_soft_clipped_variable(batch):
    x, params = batch
    lik = likelihoods.Gaussian(sigma="learned")
    lik.log_sigma.assign(math.log(0.2))
    # σ-VAE's softclip: log σ = −6 + softplus(log 0.2 + 6), in numpy.
    expected_sigma = math.exp(-6.0 + math.log1p(math.exp(math.log(0.2) + 6.0)))
    assert float(lik.scale()) == pytest.approx(expected_sigma, rel=1e-6)
    np.testing.assert_allclose(
        lik.nll(x, params).numpy(),
        likelihoods.Gaussian(sigma=expected_sigma).nll(x, params).numpy(), rtol=RTOL,
    )
    assert [w.name for w in lik.trainable_weights] == ["log_sigma"]


def test_learned_sigma_below_its_floor_still_has_a_gradient(batch):
    # A hard clip (tf.maximum) would give exactly zero gradient here.
    x, params = batch
    lik = likelihoods.Gaussian(sigma="learned")
    lik.log_sigma.assign(-9.0)
    with tf.GradientTape() as tape:
        nll = tf.reduce_sum(lik.nll(x, params))
    grad = float(tape.gradient(nll, lik.log_sigma))
    assert grad < 0.0 and math.isfinite(grad)  # The data pull σ up, towards the floor.
    assert float(lik.scale()) > math.exp(-6.0)


def test_optimal_gaussian_fits_the_batch_in_training_without_changing_state(batch):
    x, params = batch
    lik = likelihoods.Gaussian(sigma="optimal")
    rmse = float(np.sqrt(((x - _sigmoid(params)) ** 2).mean()))
    nll = lik.nll(x, params, training=True).numpy()
    np.testing.assert_allclose(nll, likelihoods.Gaussian(sigma=rmse).nll(x, params).numpy(), rtol=1e-4)
    for other in (0.9 * rmse, 1.1 * rmse):
        assert nll.sum() < likelihoods.Gaussian(sigma=other).nll(x, params).numpy().sum()
    # Scoring a batch never moves the σ used outside training (σ = 1 untrained).
    assert float(lik.scale()) == 1.0
    np.testing.assert_allclose(
        lik.nll(x, params).numpy(), likelihoods.Gaussian(sigma=1.0).nll(x, params).numpy(), rtol=RTOL
    )


def test_optimal_gaussian_evaluates_with_the_running_mean_of_training_mse():
    lik = likelihoods.Gaussian(sigma="optimal", momentum=0.9)
    mses = np.random.default_rng(3).uniform(0.001, 0.05, size=40)
    expected = None
    for n, mse in enumerate(mses, start=1):
        lik.update_state(tf.constant(mse, "float32"))
        # The plain mean of the first 1/(1 − momentum) = 10, then an EMA.
        expected = mses[:n].mean() if n <= 10 else 0.9 * expected + 0.1 * mse
        assert float(lik.moving_mse) == pytest.approx(expected, rel=1e-5)
    assert float(lik.scale()) == pytest.approx(math.sqrt(expected), rel=1e-5)


def test_sigma_floors_and_bounds_are_one_line_errors():
    for bad in (1e-19, 1e-50):
        with pytest.raises(ValueError, match="below the floor") as err:
            likelihoods.Gaussian(sigma=bad)
        assert "\n" not in str(err.value)
    assert likelihoods.Gaussian(sigma=1e-4, min_log_sigma=-10).sigma == 1e-4
    with pytest.raises(ValueError, match="min_log_sigma must be in"):
        likelihoods.Gaussian(sigma="learned", min_log_sigma=-50)


def test_soft_clip_is_the_identity_far_inside_and_bounded_outside():
    x = tf.constant([-1e4, -80.0, -30.0, -15.0, 0.0, 80.0, 1e4])
    got = likelihoods.soft_clip(x, -50.0, 20.0).numpy()
    np.testing.assert_allclose(got[2:5], [-30.0, -15.0, 0.0], atol=1e-6)
    assert np.all(got >= -50.0) and np.all(got <= 20.0) and np.all(np.isfinite(got))
    assert np.all(np.diff(got) >= 0)


def test_mse_plus_beta_kl_is_a_gaussian_with_sigma_squared_beta_over_two(batch):
    # ‖x − x̂‖² + β·KL = 2σ²·(NLL + KL) − const with σ² = β/2, for any KL.
    x, params = batch
    beta, kl = 0.1, 7.3
    lik = likelihoods.Gaussian.from_mse_weight(beta)
    assert lik.sigma == pytest.approx(math.sqrt(0.05))
    mse_loss = ((x - _sigmoid(params)) ** 2).sum(axis=(1, 2, 3)) + beta * kl
    d = x[0].size
    const = d * math.log(lik.sigma * math.sqrt(2 * math.pi))
    elbo_loss = 2 * lik.sigma**2 * (lik.nll(x, params).numpy() - const + kl)
    np.testing.assert_allclose(elbo_loss, mse_loss, rtol=1e-5)


def test_analytic_gaussian_kl_matches_closed_form():
    rng = np.random.default_rng(1)
    mu, sigma = rng.normal(size=(4, 6)), rng.uniform(0.1, 3.0, size=(4, 6))
    expected = 0.5 * (sigma**2 + mu**2 - 1.0 - 2.0 * np.log(sigma))
    q = tfd.Normal(mu.astype("float32"), sigma.astype("float32"))
    got = tfd.kl_divergence(q, tfd.Normal(0.0, 1.0)).numpy()
    np.testing.assert_allclose(got, expected, rtol=RTOL)


def test_likelihoods_round_trip_through_config():
    assert likelihoods.get("gaussian:3e-3").sigma == 3e-3
    assert likelihoods.get("Gaussian-Learned").sigma == "learned"
    assert likelihoods.get("discretized_logistic_mixture:3").components == 3
    for name in ("bernoulli", "gaussian", "gaussian_learned", "gaussian_optimal", "gaussian:0.3",
                 "discretized_logistic_mixture", "discretized_logistic_mixture:2"):
        lik = likelihoods.get(name)
        again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(lik))
        assert type(again) is type(lik) and again.get_config() == lik.get_config()


def test_bad_likelihood_arguments_say_what_to_do():
    for bad in ("poisson", "gaussian:abc", "bernoulli:0.1"):
        with pytest.raises(ValueError, match="use one of"):
            likelihoods.get(bad)
    for bad in ("discretized_logistic_mixture:0", "discretized_logistic_mixture:two"):
        with pytest.raises(ValueError, match="whole number of components >= 1"):
            likelihoods.get(bad)
    for bad in ("gaussian:-0.1", "gaussian:inf", "gaussian:nan", "gaussian:1e39"):
        with pytest.raises(ValueError, match="must be > 0 and finite in float32"):
            likelihoods.get(bad)
    with pytest.raises(ValueError, match="below the floor"):
        likelihoods.get("gaussian:1e-3")
    with pytest.raises(ValueError, match="must be > 0"):
        likelihoods.Gaussian(sigma=0.0)
    with pytest.raises(ValueError, match="scale images to"):
        likelihoods.Bernoulli().check_data(0.0, 255.0)


def test_tf_function_traces_gaussian_optimal(batch):
    x, params = batch
    lik = likelihoods.Gaussian(sigma="optimal")
    eager = lik.nll(x, params, training=True).numpy()
    traced = tf.function(lambda x, p: lik.nll(x, p, training=True))(x, params).numpy()
    np.testing.assert_allclose(traced, eager, rtol=RTOL)


# -- The discretised logistic mixture (Salimans et al. 2017) -------------------

LEVELS = np.arange(256) / 255.0


def _mixture_params(components, scale=3.0, shape=(2, 3, 2, 3)):
    """Random decoder outputs: wide logits, locations across [0, 1] and past
    it, log-scales from well under a level's width to most of [0, 1]."""
    rng = np.random.default_rng(1)
    return rng.normal(scale=scale, size=shape + (3 * components,)).reshape(
        shape[:-1] + (shape[-1] * 3 * components,)).astype("float32")


def _level_masses(lik, params):
    """P(level) of every pixel value for all 256 levels, float64 [256, ...]."""
    shape = params.shape[:-1] + (params.shape[-1] // (3 * lik.components),)
    return np.stack([np.exp(lik.log_mass(np.full(shape, v, "float32"), params).numpy())
                     for v in LEVELS]).astype("float64")


def _logistic_cdf(t):
    return 1.0 / (1.0 + np.exp(-t))


def test_logistic_mixture_pmf_sums_to_one_over_the_256_levels():
    lik = likelihoods.get("discretized_logistic_mixture:3")
    masses = _level_masses(lik, _mixture_params(3))
    np.testing.assert_allclose(masses.sum(axis=0), 1.0, atol=2e-5)
    assert masses.min() >= 0.0


def test_logistic_mixture_nll_is_a_direct_mixture_of_logistic_bins():
    # numpy, float64: Σ_k π_k [F(x + 1/510) − F(x − 1/510)], edge bins to ±∞.
    lik = likelihoods.get("discretized_logistic_mixture:2")
    params = _mixture_params(2, scale=1.5)
    rng = np.random.default_rng(2)
    levels = rng.integers(0, 256, size=(2, 3, 2, 3))
    levels[0, 0, 0], levels[1, 2, 1] = 0, 255  # Saturated pixels: the edge bins.
    x = (levels / 255.0).astype("float32")
    raw = params.astype("float64").reshape(x.shape + (3, 2))
    logits, loc, log_scale = raw[..., 0, :], _sigmoid(raw[..., 1, :]), raw[..., 2, :]
    log_scale = -7.0 + np.logaddexp(0.0, log_scale + 7.0)  # soft_clip at −7
    weights = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    xk, scale, half = x.astype("float64")[..., None], np.exp(log_scale), 0.5 / 255
    upper = np.where(xk >= 1.0, 1.0, _logistic_cdf((xk + half - loc) / scale))
    lower = np.where(xk <= 0.0, 0.0, _logistic_cdf((xk - half - loc) / scale))
    expected = -np.log((weights * (upper - lower)).sum(axis=-1)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(lik.nll(x, params).numpy(), expected, rtol=1e-4)


def test_logistic_mixture_mean_is_within_half_a_level_of_the_pmf_mean():
    lik = likelihoods.get("discretized_logistic_mixture:3")
    params = _mixture_params(3)
    masses = _level_masses(lik, params)
    pmf_mean = np.tensordot(LEVELS, masses, axes=1)
    mean = lik.mean(params).numpy()
    assert np.abs(mean - pmf_mean).max() <= 0.5 / 255
    assert mean.min() >= 0.0 and mean.max() <= 1.0


def test_logistic_mixture_gradients_are_finite_at_saturated_and_sharp_pixels():
    lik = likelihoods.get("discretized_logistic_mixture:2")
    params = tf.Variable(_mixture_params(2, scale=30.0))  # Scales e^±30, locations at 0 and 1.
    x = np.tile(np.array([0.0, 1.0, 128 / 255], "float32"), 12).reshape(2, 3, 2, 3)
    with tf.GradientTape() as tape:
        nll = tf.reduce_sum(lik.nll(x, params))
    assert np.isfinite(nll.numpy())
    assert np.all(np.isfinite(tape.gradient(nll, params).numpy()))


def test_gaussian_level_nll_is_the_discretised_gaussian_with_edge_bins():
    from scipy import stats

    rng = np.random.default_rng(3)
    levels = rng.integers(0, 256, size=(3, 4, 4, 1))
    levels[:, 0] = 0
    levels[:, 1] = 255
    x = (levels / 255.0).astype("float32")
    params = rng.normal(scale=1.5, size=x.shape).astype("float32")
    lik = likelihoods.Gaussian(sigma=0.05)
    mu, half = _sigmoid(params), 0.5 / 255
    u, l = (x + half - mu) / 0.05, (x - half - mu) / 0.05  # noqa: E741
    # float64 scipy, each bin from the tail it lies in (sf above the mean).
    mass = np.where(x > mu, stats.norm.sf(l) - stats.norm.sf(u),
                    stats.norm.cdf(u) - stats.norm.cdf(l))
    mass = np.where(levels == 0, stats.norm.cdf(u), np.where(levels == 255, stats.norm.sf(l), mass))
    expected = -np.log(mass).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(lik.level_nll(x, params).numpy(), expected, rtol=1e-4)
    # Off the 8-bit grid, a value is read as its nearest level.
    np.testing.assert_allclose(lik.level_nll(x + 0.4 / 255, params).numpy(), expected,
                               rtol=1e-5)
