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


def test_learned_gaussian_uses_its_variable(batch):
    x, params = batch
    lik = likelihoods.Gaussian(sigma="learned")
    lik.log_sigma.assign(math.log(0.2))
    np.testing.assert_allclose(
        lik.nll(x, params).numpy(), likelihoods.Gaussian(sigma=0.2).nll(x, params).numpy(), rtol=RTOL
    )
    assert [w.name for w in lik.trainable_weights] == ["log_sigma"]


def test_optimal_gaussian_sigma_is_the_batch_rmse_and_minimises_nll(batch):
    x, params = batch
    lik = likelihoods.Gaussian(sigma="optimal")
    rmse = float(np.sqrt(((x - _sigmoid(params)) ** 2).mean()))
    nll = lik.nll(x, params, training=True).numpy()
    np.testing.assert_allclose(math.exp(float(lik.log_sigma.numpy())), rmse, rtol=1e-4)
    for other in (0.9 * rmse, 1.1 * rmse):
        assert nll.sum() < likelihoods.Gaussian(sigma=other).nll(x, params).numpy().sum()
    # Outside training the fitted σ* is kept: one image's NLL ignores the others.
    np.testing.assert_allclose(lik.nll(x[:1], params[:1]).numpy(), nll[:1], rtol=1e-5)
    np.testing.assert_allclose(math.exp(float(lik.log_sigma.numpy())), rmse, rtol=1e-4)


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
    assert likelihoods.get("gaussian:1e-3").sigma == 1e-3
    assert likelihoods.get("Gaussian-Learned").sigma == "learned"
    for name in ("bernoulli", "gaussian", "gaussian_learned", "gaussian_optimal", "gaussian:0.3"):
        lik = likelihoods.get(name)
        again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(lik))
        assert type(again) is type(lik) and again.get_config() == lik.get_config()


def test_bad_likelihood_arguments_say_what_to_do():
    for bad in ("poisson", "gaussian:abc", "gaussian:-1", "bernoulli:0.1"):
        with pytest.raises(ValueError, match="use one of"):
            likelihoods.get(bad)
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
