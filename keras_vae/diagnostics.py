"""What a trained VAE does with its latent space and its gradients.

Measured over data, outside the train step (these are per-epoch quantities):
per-dimension KL (nats), active units (Burda et al. 2016) and the separate
gradient norms of the distortion and β·rate terms.
"""

import numpy as np
import tensorflow as tf

from keras_vae import compiled

#: Burda et al. 2016: a latent dimension is active if Cov_x(E_q[z_d]) > 0.01.
ACTIVE_UNIT_THRESHOLD = 0.01


def _batches(data, batch_size=256):
    if isinstance(data, tf.data.Dataset):
        for batch in data:
            yield batch[0] if isinstance(batch, tuple) else batch
    else:
        for start in range(0, len(data), batch_size):
            yield tf.convert_to_tensor(data[start : start + batch_size], dtype="float32")


def latent_statistics(model, data, max_batches=None):
    """Posterior statistics over a data set (numpy array or batched tf.data).

    Returns a dict of numpy arrays:
        kl_per_dim: mean KL(q(z_d|x) ‖ p(z_d)) per latent dimension, nats.
        mean_variance: Cov_x(E_q[z_d]), the activity of each dimension.
        active: boolean mask of active units; `active_units` counts them.
    """
    kls, locs = [], []
    for i, x in enumerate(_batches(data)):
        if max_batches is not None and i >= max_batches:
            break
        kl, loc = compiled.function(model, _posterior_kl)(x, tf.constant([i, 0]))
        kls.append(kl.numpy())
        locs.append(loc.numpy())
    if not locs:
        raise ValueError("latent_statistics got no data: pass a non-empty data set.")
    locs = np.concatenate(locs)
    mean_variance = locs.var(axis=0)
    active = mean_variance > ACTIVE_UNIT_THRESHOLD
    return {
        "kl_per_dim": np.concatenate(kls).mean(axis=0),
        "mean_variance": mean_variance,
        "active": active,
        "active_units": int(active.sum()),
    }


def gradient_norms(model, x, seed=0):
    """Global L2 norms of ∇distortion and ∇(β·rate) on one batch.

    The "what does β do to gradient descent" view: the loss gradient is the
    sum of these two vectors, so β scales the second against the first.
    Terms are computed as in training (σ* of the batch for σ-optimal), with z
    drawn from the fixed `seed`: measuring changes no state of the model.
    """
    x = tf.convert_to_tensor(x, dtype="float32")
    norms = compiled.function(model, _gradient_norms)(x, tf.constant([seed, 0]))
    return {name: float(value) for name, value in norms.items()}


def _posterior_kl(model, x, seed):
    """KL(q(z_d|x) ‖ p(z_d)) per image and dimension, nats, and the posterior mean."""
    q = model.posterior_factors(x)
    z = q.loc + q.scale * compiled.standard_normal(tf.shape(q.loc), seed)
    return model.kl_per_dim(q, z), q.loc


def _gradient_norms(model, x, seed):
    with tf.GradientTape(persistent=True) as tape:
        terms = model.compute_terms(x, training=True, seed=seed)
        weighted_rate = terms["loss"] - terms["distortion"]
    weights = model.trainable_weights
    norms = {}
    for name, value in (("distortion", terms["distortion"]), ("beta_rate", weighted_rate)):
        grads = [g for g in tape.gradient(value, weights) if g is not None]
        norms[name] = tf.linalg.global_norm(grads) if grads else tf.constant(0.0)
    del tape
    return norms
