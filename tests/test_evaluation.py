"""The importance-weighted bound against exact likelihoods, and `keras-vae evaluate`."""

import json
import math
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_vae
from keras_vae import evaluation
from keras_vae import likelihoods

PIXELS = 16  # A 4×4×1 image: p(x) over a 1-D latent is a 1-D integral.


@pytest.fixture(scope="module")
def linear_bernoulli():
    """A VAE with latent_dim 1 whose decoder logits are w·z + b, and data from it.

    The encoder is a random linear map: its q(z|x) is deliberately not the
    true posterior, so the ELBO is loose and the IWAE bound has room to tighten.
    """
    rng = np.random.default_rng(0)
    encoder = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    decoder = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(PIXELS), keras.layers.Reshape((4, 4, 1))]
    )
    w, b = rng.normal(0, 1.5, PIXELS), rng.normal(0, 0.5, PIXELS)
    decoder.set_weights([w[None].astype("float32"), b.astype("float32")])
    encoder.set_weights(
        [rng.normal(0, 0.1, (PIXELS, 2)).astype("float32"), np.array([0.3, -1.0], "float32")]
    )
    model = keras_vae.VAE(encoder, decoder, "bernoulli")
    z = rng.normal(size=(64, 1))
    x = (rng.random((64, PIXELS)) < 1 / (1 + np.exp(-(z * w + b)))).astype("float32")
    return model, x.reshape(-1, 4, 4, 1), w, b


def _exact(model, x, w, b):
    """log p(x) and the ELBO per image by 20,001-point quadrature on [−10, 10]."""
    z, dz = np.linspace(-10, 10, 20_001, retstep=True)
    logits = z[:, None] * w + b  # [grid, pixels]
    flat = x.reshape(len(x), -1)
    log_lik = flat @ logits.T - np.logaddexp(0, logits).sum(axis=1)  # [B, grid]
    log_prior = -0.5 * z**2 - 0.5 * math.log(2 * math.pi)
    joint = log_lik + log_prior
    top = joint.max(axis=1, keepdims=True)
    log_px = top[:, 0] + np.log(np.exp(joint - top).sum(axis=1) * dz)
    q = model.posterior_factors(x)
    mu, sigma = q.loc.numpy(), q.scale.numpy()  # [B, 1]
    q_density = np.exp(-0.5 * ((z - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    expected_log_lik = (q_density * log_lik).sum(axis=1) * dz
    kl = (0.5 * (mu**2 + sigma**2 - 1) - np.log(sigma))[:, 0]
    return log_px, expected_log_lik - kl


def test_iwae_matches_exact_log_likelihood(linear_bernoulli):
    model, x, w, b = linear_bernoulli
    log_px, _ = _exact(model, x, w, b)
    bound = evaluation.iwae_bound(model, x, k=5000, chunk=1000, seed=1)
    assert bound.shape == (len(x),)
    # q is a poor proposal, so single images still carry Monte-Carlo noise
    # (a few tenths of a nat); averaged over images the bias is below 0.05.
    assert np.abs(bound - log_px).mean() < 0.05
    np.testing.assert_allclose(bound, log_px, atol=0.5)
    assert bound.mean() <= log_px.mean() + 0.05


def test_iwae_tightens_with_k_between_elbo_and_log_likelihood(linear_bernoulli):
    model, x, w, b = linear_bernoulli
    log_px, elbo = _exact(model, x, w, b)
    bounds = [evaluation.iwae_bound(model, x, k=k, seed=2).mean() for k in (1, 10, 100, 1000)]
    assert np.all(np.diff(bounds) > 0), bounds
    # k = 1 is the single-sample ELBO: its mean matches the exact ELBO.
    assert bounds[0] == pytest.approx(elbo.mean(), abs=0.5)
    assert elbo.mean() + 1.0 < bounds[-1] <= log_px.mean() + 0.05


def test_iwae_k1_averages_to_the_elbo(linear_bernoulli):
    model, x, w, b = linear_bernoulli
    _, elbo = _exact(model, x[:4], w, b)
    many = np.repeat(x[:4], 2000, axis=0)
    single = evaluation.iwae_bound(model, many, k=1, seed=3).reshape(4, 2000)
    # Within 4 standard errors of the mean (about 0.1 nat here) per image.
    standard_error = single.std(axis=1) / np.sqrt(single.shape[1])
    assert np.all(np.abs(single.mean(axis=1) - elbo) < 4 * standard_error)


def test_bits_per_dim_of_a_mass_function_and_of_a_dequantised_density():
    # A pmf: −log p / (D ln 2); 784 nats on 28×28 is one bit per pixel.
    assert evaluation.bits_per_dim(784 * math.log(2), (28, 28, 1)) == pytest.approx(1.0)
    # The uniform density on [0, 1] (nll = 0) puts 1/255 on each 8-bit level:
    # log2(255) bits per value.
    assert evaluation.bits_per_dim(0.0, (4, 4, 3), evaluation.EIGHT_BIT_BIN) == pytest.approx(
        math.log2(255)
    )


def test_dequantised_bits_match_the_probability_of_each_8_bit_bin():
    # Independent check: integrate a Gaussian over each value's bin of width
    # 1/255 (with erf) and count bits; the dequantised density agrees.
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 256, size=(5, 4, 4, 3))
    x = (levels / 255.0).astype("float32")
    logits = rng.normal(size=x.shape).astype("float32")
    lik = likelihoods.Gaussian(sigma=0.1)
    nll = lik.nll(x, logits).numpy()
    mu = 1 / (1 + np.exp(-logits.astype("float64")))
    cdf = np.vectorize(lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2))))
    half = 0.5 / 255
    p_bin = cdf((x + half - mu) / 0.1) - cdf((x - half - mu) / 0.1)
    exact_bits = -np.log2(p_bin).sum(axis=(1, 2, 3)) / 48
    got = evaluation.bits_per_dim(nll, x.shape[1:], evaluation.EIGHT_BIT_BIN)
    np.testing.assert_allclose(got, exact_bits, rtol=1e-3)  # Midpoint rule: 0.1 %.
    assert np.all(got > 0)


def _deterministic_posterior(model):
    """Posterior scale e^−15: z equals its mean to float32 precision."""
    dense = model.encoder.get_layer("posterior_params")
    kernel, bias = dense.get_weights()
    half = kernel.shape[1] // 2
    kernel[:, half:], bias[half:] = 0.0, -30.0
    dense.set_weights([kernel, bias])


def test_exact_8bit_bits_per_dim_match_a_direct_per_pixel_computation(digits):
    # digits/16: 8-bit levels only where v/16 is one (0 and 1 are, and most
    # pixels are one of them: saturated). Quantise to 8 bits first, as
    # evaluate does, then compute P of each level with scipy, edge bins to ±∞.
    from scipy import stats

    x = digits[:16]
    assert np.mean((x == 0) | (x == 1)) > 0.4
    model = keras_vae.build_conv_vae((8, 8, 1), latent_dim=3, likelihood="gaussian:0.1",
                                     filters=(8, 16), seed=0)
    _deterministic_posterior(model)
    numbers = evaluation.evaluate(model, x, k=4, progress=False)
    loc, log_var = np.split(model.encoder(x).numpy().astype("float64"), 2, axis=-1)
    kl = (0.5 * (np.exp(log_var) + loc**2 - 1.0 - log_var)).sum(axis=1)
    mu = 1 / (1 + np.exp(-model.decoder(loc.astype("float32")).numpy().astype("float64")))
    levels = np.round(x.astype("float64") * 255)
    v, half = levels / 255, 0.5 / 255
    upper = np.where(levels == 255, 1.0, stats.norm.cdf((v + half - mu) / 0.1))
    lower = np.where(levels == 0, 0.0, stats.norm.cdf((v - half - mu) / 0.1))
    nll = -np.log(upper - lower).sum(axis=(1, 2, 3))
    expected = (nll + kl).mean() / (64 * math.log(2))
    assert numbers["bits_per_dim_elbo"] == pytest.approx(expected, rel=1e-4)
    assert numbers["elbo_8bit"] == pytest.approx(-(nll + kl).mean(), rel=1e-4)
    # The closed-bin density formula misses the mass beyond 0 and 1 of the
    # saturated pixels: far above the exact figure here.
    dequantised = evaluation.bits_per_dim(-numbers["elbo"], (8, 8, 1), evaluation.EIGHT_BIT_BIN)
    assert dequantised > numbers["bits_per_dim_elbo"] + 0.3
    assert math.isfinite(numbers["bits_per_dim_iwae"])


def test_logistic_mixture_bits_are_its_own_nll():
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 256, size=(6, 8, 8, 3)) / 255).astype("float32")
    model = keras_vae.build_conv_vae((8, 8, 3), latent_dim=2, filters=(4,), seed=0,
                                     likelihood="discretized_logistic_mixture:2")
    numbers = evaluation.evaluate(model, x, k=3, progress=False)
    assert numbers["elbo_8bit"] == pytest.approx(numbers["elbo"], rel=1e-5)
    assert numbers["iwae_8bit"] == pytest.approx(numbers["iwae"], rel=1e-5)
    assert numbers["bits_per_dim_elbo"] == pytest.approx(
        -numbers["elbo"] / (192 * math.log(2)), rel=1e-5)


def test_autoencoder_reconstructs_better_than_vae_and_round_trips(digits, tmp_path):
    x = digits[:512]
    vae = keras_vae.build_conv_vae((8, 8, 1), latent_dim=4, filters=(8, 16), seed=0)
    ae = keras_vae.build_autoencoder((8, 8, 1), latent_dim=4, filters=(8, 16))
    for model in (vae, ae):
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        model.fit(x, batch_size=64, epochs=15, verbose=0)
    ae_nll, ae_mse = evaluation.reconstruction_errors(ae, x)
    vae_nll, vae_mse = evaluation.reconstruction_errors(vae, x)
    assert ae_nll.mean() < vae_nll.mean() and ae_mse.mean() < vae_mse.mean()
    path = tmp_path / "ae.keras"
    ae.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored(x[:8]), ae(x[:8]), atol=1e-6)
    assert restored.sample(3, seed=0).shape == (3, 8, 8, 1)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real run folder: the pipeline trains 8×8 digits for 2 epochs."""
    from pipelines import config as config_lib
    from pipelines import train

    config = config_lib.load_config(overrides={
        "data.source": "digits", "data.image_size": 8, "data.channels": 1,
        "model.latent_dim": 4, "model.filters": [8, 16], "model.likelihood": "bernoulli",
        "beta.schedule": "constant", "train.epochs": 2, "train.batch_size": 64,
        "train.output_dir": str(tmp_path_factory.mktemp("runs")), "train.run_name": "digits",
    })
    return train.train(config, verbose=0)


def test_evaluate_writes_report_and_reuses_baseline(run_dir):
    from pipelines import evaluate

    report = evaluate.evaluate_run(run_dir, k=20, chunk=10, baseline_epochs=4, verbose=0)
    saved = json.loads((run_dir / "eval.json").read_text())
    assert saved == json.loads(json.dumps(report))
    vae, ae = saved["vae"], saved["autoencoder"]
    assert saved["split"] == "validation" and saved["images"] == 180  # ceil(10 % of 1797)
    for key in ("elbo", "iwae", "rate", "distortion", "reconstruction_distortion"):
        assert math.isfinite(vae[key])
    # Bernoulli: bits/dim are cross-entropies of −ELBO, −IWAE, with the conventional sign.
    bits = vae["bits_per_dim"]
    assert bits["negative_elbo"] == pytest.approx(-vae["elbo"] / (64 * math.log(2)))
    assert bits["negative_iwae"] == pytest.approx(-vae["iwae"] / (64 * math.log(2)))
    assert 0 < bits["negative_iwae"] <= bits["negative_elbo"] + 1e-3
    assert "cross-entropy" in saved["bits_per_dim"] and saved["sigma"] is None
    assert vae["elbo"] == pytest.approx(-(vae["rate"] + vae["distortion"]), abs=1e-3)
    assert vae["rate"] >= 0 and len(vae["kl_per_dim"]) == 4
    assert 0 <= vae["active_units"] <= 4
    for values in (vae, ae):
        # One PSNR: of the mean MSE beside it.
        assert values["reconstruction_psnr"] == pytest.approx(
            10 * math.log10(1 / values["reconstruction_mse"]), abs=1e-6)
    assert ae["training"] == {"epochs": 4, "steps_per_epoch": 26,
                              "file": "baseline_autoencoder-4x26.keras"}
    text = (run_dir / "eval.md").read_text()
    assert "IWAE bound" in text and "4 epochs of 26 steps" in text
    better = "autoencoder" if ae["reconstruction_psnr"] > vae["reconstruction_psnr"] else "VAE"
    assert f"The {better} reconstructs better" in text
    for name in ("eval.md", "eval_reconstructions.png", "eval_samples.png"):
        assert (run_dir / name).stat().st_size > 0

    # The cache is keyed by the budget: the same budget reuses it, another trains anew.
    cached = run_dir / ae["training"]["file"]
    stamp = cached.stat().st_mtime_ns
    evaluate.evaluate_run(run_dir, k=2, baseline_epochs=4, verbose=0)
    assert cached.stat().st_mtime_ns == stamp
    again = evaluate.evaluate_run(run_dir, k=2, baseline_epochs=1, verbose=0)
    assert again["autoencoder"]["training"]["epochs"] == 1
    assert (run_dir / "baseline_autoencoder-1x26.keras").is_file()


def test_evaluate_of_a_resnet_gaussian_run_reports_exact_and_dequantised_bits(tmp_path):
    # The config's architecture reaches the run's networks and the baseline's;
    # eval.json's bits/dim are the exact 8-bit ones, the density's labelled.
    from pipelines import config as config_lib
    from pipelines import evaluate
    from pipelines import train

    config = config_lib.load_config(overrides={
        "data.source": "digits", "data.image_size": 8, "data.channels": 1,
        "model.latent_dim": 2, "model.filters": [4], "model.architecture": "resnet",
        "model.likelihood": "gaussian_optimal", "beta.schedule": "constant",
        "train.epochs": 1, "train.batch_size": 128, "train.output_dir": str(tmp_path),
        "train.run_name": "resnet",
    })
    run_dir = train.train(config, verbose=0)
    report = evaluate.evaluate_run(run_dir, k=4, baseline_epochs=1, verbose=0)
    vae, shape = report["vae"], (8, 8, 1)
    bits = vae["bits_per_dim"]
    assert bits["negative_elbo"] == pytest.approx(-vae["elbo_8bit"] / (64 * math.log(2)))
    assert bits["negative_iwae"] == pytest.approx(-vae["iwae_8bit"] / (64 * math.log(2)))
    assert bits["dequantised"]["negative_elbo"] == pytest.approx(
        evaluation.bits_per_dim(-vae["elbo"], shape, evaluation.EIGHT_BIT_BIN))
    assert "exact 8-bit" in report["bits_per_dim"] and "dequantised" in report["bits_per_dim"]
    assert "(dequantised)" in (run_dir / "eval.md").read_text()
    baseline = keras.saving.load_model(run_dir / report["autoencoder"]["training"]["file"])
    for model in (keras.saving.load_model(run_dir / "model.keras"), baseline):
        assert any(isinstance(layer, keras.layers.GroupNormalization)
                   for layer in model.encoder.layers)


def test_baseline_is_scored_with_the_vaes_sigma(digits):
    # Like for like: the autoencoder's reconstruction NLL under the VAE's own
    # Gaussian, recomputed in numpy from its MSE and the VAE's σ.
    x = digits[:64]
    vae = keras_vae.build_conv_vae((8, 8, 1), latent_dim=2, likelihood="gaussian_learned",
                                   filters=(8,), seed=0)
    vae.likelihood.log_sigma.assign(math.log(0.3))
    ae = keras_vae.build_autoencoder((8, 8, 1), latent_dim=2, likelihood="gaussian_learned",
                                      filters=(8,))
    ae.likelihood.log_sigma.assign(math.log(0.05))
    numbers = evaluation.evaluate(vae, x, ae, k=2, progress=False)
    _, mse = evaluation.reconstruction_errors(ae, x)
    sigma = float(vae.likelihood.scale())
    expected = (64 * mse / (2 * sigma**2) + 64 * math.log(sigma * math.sqrt(2 * math.pi))).mean()
    assert numbers["ae_nll"] == pytest.approx(expected, rel=1e-4)
    assert numbers["ae_mse"] == pytest.approx(mse.mean(), rel=1e-5)


@pytest.mark.parametrize("missing", ["folder", "model"])
def test_evaluate_cli_one_line_error(tmp_path, missing):
    run = tmp_path / "run"
    if missing == "model":
        run.mkdir()
        (run / "config.toml").write_text("[data]\n")
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "evaluate", str(run)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keras-vae: error:"), result.stderr
    assert ("does not exist" if missing == "folder" else "no model.keras") in lines[0]
    assert not (run / "eval.json").exists()
