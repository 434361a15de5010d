"""How good is a trained VAE: likelihood bounds and an autoencoder baseline.

The ELBO is a lower bound on log p(x); the importance-weighted bound
(Burda et al. 2016) tightens it towards log p(x) as the number of samples k
grows. Numbers are nats per image unless stated; `bits_per_dim` converts a
negative log-likelihood to the bits per pixel and channel used to compare
across image sizes.

bits/dim of 8-bit data, as published (Salimans et al. 2017; Kingma et al.
2016; Vahdat & Kautz 2020), are those of a probability mass function over
the 256 levels: for a Gaussian decoder, the Gaussian discretised with edge
bins to ±∞ (`Likelihood.level_nll`, `keras_vae.discretized`); for the
discretised logistic mixture, its own NLL. `evaluate` returns them as
`bits_per_dim_elbo` and `bits_per_dim_iwae`, computed on the images
quantised to 8 bits, round(x·255)/255: exact for 8-bit data, and for data
off the grid (resized crops) exact for the image as an 8-bit file stores it.
The older dequantised-density figure, (−log p(x) + D·ln 255)/(D·ln 2),
leaves out the mass outside [0, 1]: on saturated pixels (exactly 0 or 1) it is
far above the exact one.

The baseline is the same encoder and decoder trained as a deterministic
autoencoder (`keras_vae.autoencoder`: β = 0, no sampling): the best reconstruction the architecture
can reach, and what giving up the prior costs when decoding z ~ N(0, I).
It is scored like for like: its reconstructions under the VAE's likelihood
(the same σ), and by MSE and PSNR, which need no σ at all.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_vae import compiled

#: The spacing of 8-bit pixel values scaled to [0, 1] (v / 255): the width of
#: the bin of each value when a density on [0, 1] is read as a distribution
#: over the 256 levels.
EIGHT_BIT_BIN = 1.0 / 255.0


def bits_per_dim(nll, image_shape, bin_width=None):
    """A negative log-likelihood, nats per image -> bits per dimension.

        bits/dim = (nll − D·ln bin_width) / (D·ln 2),   D = H·W·C.

    Without `bin_width`, nll / (D·ln 2): right for a probability mass
    function (or a KL). With `bin_width`, the NLL is of a *density* over
    quantised data: −log P(bin) ≈ −log p(x) − ln bin_width per value, the
    dequantisation correction of the literature (Theis et al. 2016). Pass
    `EIGHT_BIT_BIN` for 8-bit images scaled by 1/255; it approximates the
    exact 8-bit figure only where the density has little mass outside
    [0, 1] (a uniform density on [0, 1] gives log2 255 = 7.994 bits/dim;
    the uniform pmf over the 256 levels, 8). The exact figure:
    `Likelihood.level_nll`, as `evaluate`'s `bits_per_dim_*`.
    """
    dims = math.prod(image_shape)
    offset = 0.0 if bin_width is None else -dims * math.log(bin_width)
    return (nll + offset) / (dims * math.log(2.0))


def bin_width(likelihood):
    """The `bits_per_dim` bin of a likelihood: EIGHT_BIT_BIN for a density
    (Gaussian, dequantised to 8-bit levels), None for a probability mass."""
    return EIGHT_BIT_BIN if likelihood.is_density else None


def psnr(mse):
    """Peak signal-to-noise ratio, dB, of a mean squared error on [0, 1] pixels.

    keras-vae's one PSNR is of a set's mean MSE, 10·log10(1 / mean MSE): the
    number −10·log10 of the MSE column beside it, which a mean of per-image
    PSNRs is not (it is higher, by Jensen's inequality)."""
    return 10.0 * np.log10(1.0 / np.maximum(mse, 1e-12))


def iwae_bound(model, x, k=1000, chunk=100, seed=0, eight_bit=False):
    """The importance-weighted lower bound on log p(x), nats per image, [B].

        L_k = log (1/k) Σ_i p(x|z_i) p(z_i) / q(z_i|x),   z_i ~ q(z|x)

    (Burda et al. 2016). L_1 is the (single-sample) ELBO; E[L_k] never
    decreases with k and tends to log p(x). The k samples are drawn `chunk`
    at a time and combined with a streaming log-sum-exp, so peak memory is
    O(B·chunk·H·W·C) whatever k is. `seed` fixes the samples.
    `eight_bit`: the bound on log P(x's 8-bit levels) (`Likelihood.level_nll`)
    instead of the likelihood's own log p(x|z).
    """
    return _iwae_bounds(model, x, k, chunk, seed, ("level_nll",) if eight_bit else ("nll",))[0]


def _iwae_bounds(model, x, k, chunk, seed, nlls):
    """`iwae_bound` under each likelihood method named in `nlls` ("nll",
    "level_nll"), from the same samples and decodes, [len(nlls), B]."""
    if k < 1 or chunk < 1:
        raise ValueError(f"k and chunk must be >= 1, got k={k}, chunk={chunk}.")
    x = tf.convert_to_tensor(x, dtype="float32")
    chunk_logsumexp = compiled.function(model, _chunk_logsumexp)
    total = None  # log Σ_i w_i over the chunks so far, [len(nlls), B].
    for index, start in enumerate(range(0, k, chunk)):
        chunk_lse = chunk_logsumexp(x, min(chunk, k - start), tf.constant([seed, index]), nlls)
        total = chunk_lse if total is None else tf.reduce_logsumexp(
            tf.stack([total, chunk_lse]), axis=0
        )
    return (total - math.log(k)).numpy()


def _chunk_logsumexp(model, x, n, seed, nlls):
    """log Σ_i w_i over n importance samples per image, [len(nlls), B]
    (compiled as the model is)."""
    weights = _log_weights(model, x, model.posterior_factors(x), n, seed, nlls)
    return tf.reduce_logsumexp(weights, axis=1)


def _log_weights(model, x, q, n, seed, nlls=("nll",)):
    """log p(x|z) + log p(z) − log q(z|x) for n samples z per image, under
    each likelihood method of `nlls`, [len(nlls), n, B]."""
    batch = tf.shape(x)[0]
    eps = compiled.standard_normal(tf.concat([[n], tf.shape(q.loc)], 0), seed)
    z = q.loc + q.scale * eps  # [n, B, d]
    log_q = tf.reduce_sum(q.log_prob(z), axis=-1)
    log_prior = tf.reduce_sum(model.prior.log_prob(z), axis=-1)
    params = model.decoder_params(tf.reshape(z, [n * batch, -1]))
    images = tf.reshape(tf.repeat(x[None], n, axis=0), tf.concat([[n * batch], tf.shape(x)[1:]], 0))
    return tf.stack([
        log_prior - tf.reshape(getattr(model.likelihood, name)(images, params), [n, batch]) - log_q
        for name in nlls
    ])


def level_distortion(model, x, seed):
    """−log P(x's 8-bit levels | z), nats per image, [B], at the z that
    `model.compute_terms(x, seed=seed)` samples (so the two ELBOs pair)."""
    q = model.posterior_factors(x)
    z = q.loc + q.scale * compiled.standard_normal(tf.shape(q.loc), seed)
    return model.likelihood.level_nll(x, model.decoder_params(z)).numpy()


def reconstruction_errors(model, x, likelihood=None):
    """Distortion and MSE of the deterministic reconstruction, per image.

    Decodes the posterior mean (no sampling) of a `VAE` or `Autoencoder`.
    Returns `(nll, mse)`, numpy [B]: −log p(x|z = E_q[z]) in nats under
    `likelihood` (default: the model's own; pass another model's to compare
    two models at one σ), and the mean squared error of the reconstruction
    over pixels and channels (pixel units²).
    """
    x = tf.convert_to_tensor(x, dtype="float32")
    loc, _ = model.posterior_params(x)
    params = model.decoder_params(loc)
    likelihood = likelihood or model.likelihood
    mse = tf.reduce_mean(tf.square(x - model.likelihood.mean(params)), axis=[1, 2, 3])
    return likelihood.nll(x, params).numpy(), mse.numpy()


def evaluate(model, data, autoencoder=None, k=1000, chunk=100, seed=0, progress=True):
    """Means over a data set (batched tf.data or an array) of a VAE's bounds.

    Returns a dict of floats, nats per image unless stated: `elbo`, `rate`,
    `distortion` (as the VAE reports them, one z sample per image), `iwae`
    (the bound with k samples), `recon_nll`, `recon_mse` and `recon_psnr`
    (dB, `psnr` of the mean MSE; the deterministic reconstruction, see
    `reconstruction_errors`), `images` (the count), and with an
    `autoencoder` its `ae_nll` (under the VAE's likelihood: the same σ),
    `ae_mse` and `ae_psnr`. For a likelihood over 8-bit levels
    (`Likelihood.eight_bit`: Gaussian, logistic mixture) also `elbo_8bit`
    and `iwae_8bit`, the bounds on log P of the images quantised to 8 bits,
    and their exact bits/dim, `bits_per_dim_elbo` and `bits_per_dim_iwae`
    (bits per pixel and channel; see the module's docstring). Every sample
    is drawn from `seed`, so the numbers repeat. A progress bar counts the
    batches.
    """
    if isinstance(data, tf.data.Dataset):
        batches = data
    else:
        batches = tf.data.Dataset.from_tensor_slices(np.asarray(data, "float32")).batch(256)
    count = int(batches.cardinality())  # Negative when unknown or infinite.
    bar = None
    if progress:
        bar = keras.utils.Progbar(count if count >= 0 else None, unit_name="batch")
    sums = {}
    for index, x in enumerate(batches):
        x = x[0] if isinstance(x, tuple) else x
        for name, values in _batch_numbers(model, x, autoencoder, k, chunk, seed + index):
            sums[name] = sums.get(name, 0.0) + float(np.sum(values))
        if bar:
            bar.add(1)
    if not sums:
        raise ValueError("evaluate got no data: pass a non-empty data set.")
    images = sums.pop("images")
    results = {name: value / images for name, value in sums.items()}
    for prefix in ("recon", "ae"):
        if f"{prefix}_mse" in results:
            results[f"{prefix}_psnr"] = float(psnr(results[f"{prefix}_mse"]))
    results["images"] = int(images)
    if "elbo_8bit" in results:
        for bound in ("elbo", "iwae"):
            results[f"bits_per_dim_{bound}"] = bits_per_dim(
                -results[f"{bound}_8bit"], model.image_shape)
    return results


def _batch_numbers(model, x, autoencoder, k, chunk, seed):
    """(name, sum over the batch's images) pairs of `evaluate`'s numbers."""
    n = int(x.shape[0])
    terms = model.compute_terms(x, training=False, seed=seed)
    yield "images", n
    for name in ("elbo", "rate", "distortion"):
        yield name, float(terms[name]) * n
    eight_bit = model.likelihood.eight_bit
    nlls = ("nll", "level_nll") if eight_bit else ("nll",)
    iwae = _iwae_bounds(model, x, k, chunk, seed, nlls)
    yield "iwae", iwae[0]
    if eight_bit:
        yield "iwae_8bit", iwae[1]
        rate = float(terms["rate"]) * n
        yield "elbo_8bit", -np.sum(level_distortion(model, x, seed)) - rate
    rows = [("recon", model)] + ([("ae", autoencoder)] if autoencoder is not None else [])
    for prefix, net in rows:
        nll, mse = reconstruction_errors(net, x, model.likelihood)
        yield f"{prefix}_nll", nll
        yield f"{prefix}_mse", mse
