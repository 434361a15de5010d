"""What a trained VAE does with its latent space and its gradients.

Measured over data, outside the train step (these are per-epoch quantities):
per-dimension KL (nats), active units (Burda et al. 2016) and the separate
gradient norms of the distortion and β·rate terms.
"""

import numpy as np
import tensorflow as tf

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
        q = model.posterior_factors(x)
        kls.append(model.kl_per_dim(q, q.sample(seed=[i, 0])).numpy())
        locs.append(q.loc.numpy())
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
    with tf.GradientTape(persistent=True) as tape:
        terms = model.compute_terms(x, training=True, seed=seed)
        weighted_rate = terms["loss"] - terms["distortion"]
    weights = model.trainable_weights
    norms = {}
    for name, value in (("distortion", terms["distortion"]), ("beta_rate", weighted_rate)):
        grads = [g for g in tape.gradient(value, weights) if g is not None]
        norms[name] = float(tf.linalg.global_norm(grads)) if grads else 0.0
    del tape
    return norms
