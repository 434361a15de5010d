"""Decoder likelihoods p(x|z): what "reconstruction error" means, in nats.

The decoder outputs one real number per pixel and channel; a `Likelihood` turns
that tensor into a TensorFlow Probability distribution over the image, gives its
negative log-likelihood (the *distortion*, nats per image, summed over pixels and
channels) and its mean (the reconstruction, in the data's range [0, 1]).

Why β and the likelihood are one question
-----------------------------------------
For a Gaussian decoder with a fixed scale σ on D pixel values,

    −log p(x|z) = ‖x − x̂‖² / (2σ²) + D·log(σ·√(2π)).

Multiply the β = 1 ELBO loss `−log p(x|z) + KL` by 2σ² and drop the constant:

    2σ²·(−log p(x|z) + KL) = ‖x − x̂‖² + 2σ²·KL + const.

So the popular loss `‖x − x̂‖² + β·KL` *is* the ELBO of a Gaussian decoder with
σ² = β/2, up to a positive scale (which only rescales the learning rate) and a
constant. The plain `‖x − x̂‖² + KL` (β = 1) silently assumes σ = √(1/2) ≈ 0.71
on [0, 1] pixels: it tells the model that a reconstruction off by 0.7 *on every
pixel* is typical, so the KL term wins and reconstructions blur to the mean.
With β = 0.1 the assumed σ is √0.05 ≈ 0.22, a far more honest noise level for
images, and reconstructions come back. Worked number, 64×64×3 (D = 12288) with
an error of 0.1 per pixel: ‖x − x̂‖² = 122.9; under σ = 0.71 that costs
122.9 nats of "distortion" against the KL, under σ = 0.22 it costs 1229 nats, so
the same KL is ten times cheaper relative to reconstruction. Weighting the KL is
therefore sound: it is choosing the observation noise. `Gaussian(sigma="learned")`
(σ-VAE, Rybkin et al. 2021) lets the data choose it instead.
"""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

_PACKAGE = "keras_vae"


class Likelihood(keras.layers.Layer):
    """Base class: maps decoder outputs to p(x|z) over a batch of images.

    Subclasses implement `distribution(params)`; `nll` and `mean` follow.
    A likelihood is a layer so that learned parameters (σ) are trained and
    saved with the model.
    """

    #: Range the data must lie in, checked before training (inclusive).
    value_range = (0.0, 1.0)

    def distribution(self, params):
        """p(x|z) as a TFP distribution with event shape [H, W, C]."""
        raise NotImplementedError

    def nll(self, x, params, training=False):
        """Negative log-likelihood, nats per image, shape [batch].

        `training` lets a likelihood fit its own parameters to the batch
        (`Gaussian(sigma="optimal")`); evaluation then uses the fitted values.
        """
        return -self.distribution(params).log_prob(x)

    def mean(self, params):
        """The reconstruction: E[x|z], in the data's range."""
        return self.distribution(params).mean()

    def call(self, params):
        return self.mean(params)

    def check_data(self, low, high):
        """Raises a one-line ValueError if data in [low, high] lies outside the support."""
        lo, hi = self.value_range
        if low < lo or high > hi:
            raise ValueError(
                f"{type(self).__name__} likelihood expects pixel values in "
                f"[{lo:g}, {hi:g}], got values in [{low:.4g}, {high:.4g}]: "
                "scale images to [0, 1] (e.g. divide uint8 images by 255)."
            )


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Bernoulli(Likelihood):
    """Bernoulli per pixel; the decoder outputs logits.

    The standard choice for (near-)binary images such as MNIST. On continuous
    pixel values in [0, 1] its log-likelihood is the binary cross-entropy, which
    is not a normalised density; prefer a Gaussian for photographs and paintings.
    """

    def distribution(self, params):
        return tfd.Independent(
            tfd.Bernoulli(logits=params, dtype=params.dtype),
            reinterpreted_batch_ndims=3,
        )

    def nll(self, x, params, training=False):
        # Binary cross-entropy summed over pixels; identical to −log_prob but
        # valid for fractional targets without TFP's integer cast.
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=params)
        return tf.reduce_sum(bce, axis=[1, 2, 3])

    def mean(self, params):
        return tf.sigmoid(params)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Gaussian(Likelihood):
    """Gaussian per pixel with mean sigmoid(decoder output) and one shared σ.

    Args:
        sigma: the observation noise σ in pixel units ([0, 1] images):
            a float for a fixed σ; `"learned"` for one trainable scalar
            (σ-VAE, Rybkin et al. 2021); `"optimal"` for the σ-VAE analytic
            optimum σ² = mean squared error of the batch.
        min_log_sigma: lower clip on log σ (σ ≥ e^−6 ≈ 0.0025) so the NLL stays
            finite when reconstructions become exact (as in σ-VAE).
    """

    def __init__(self, sigma=0.1, min_log_sigma=-6.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(sigma, str):
            if sigma not in ("learned", "optimal"):
                raise ValueError(
                    f"Gaussian sigma must be a positive number, 'learned' or "
                    f"'optimal'; got {sigma!r}."
                )
        elif not sigma > 0:
            raise ValueError(f"Gaussian sigma must be > 0, got {sigma!r}.")
        self.sigma = sigma
        self.min_log_sigma = float(min_log_sigma)
        if sigma in ("learned", "optimal"):
            # Learned: trained by gradient descent from σ = 1. Optimal: holds
            # the last training batch's σ*, used outside training.
            self.log_sigma = self.add_weight(
                shape=(),
                initializer="zeros",
                trainable=sigma == "learned",
                name="log_sigma",
            )

    @classmethod
    def from_mse_weight(cls, beta):
        """The fixed-σ Gaussian whose ELBO is `‖x − x̂‖² + β·KL`: σ = √(β/2)."""
        return cls(sigma=math.sqrt(beta / 2.0))

    def scale(self, x=None, params=None):
        """σ, a scalar tensor (pixel units); with `x`, "optimal" fits it to the batch."""
        if isinstance(self.sigma, float | int):
            return tf.constant(self.sigma, dtype="float32")
        log_sigma = self.log_sigma
        if self.sigma == "optimal" and x is not None:
            # σ*² = MSE over the whole batch: the maximum-likelihood shared
            # variance (Rybkin et al. 2021, eq. 5). At the optimum ∂NLL/∂σ = 0,
            # so gradients through σ* need no stop_gradient.
            mse = tf.reduce_mean(tf.square(x - tf.sigmoid(params)))
            log_sigma = 0.5 * tf.math.log(mse + 1e-12)
            self.log_sigma.assign(tf.stop_gradient(log_sigma))
        return tf.exp(tf.maximum(log_sigma, self.min_log_sigma))

    def distribution(self, params, x=None):
        return tfd.Independent(
            tfd.Normal(loc=tf.sigmoid(params), scale=self.scale(x, params)),
            reinterpreted_batch_ndims=3,
        )

    def nll(self, x, params, training=False):
        # Only training fits σ*: evaluating with the last training batch's σ*
        # keeps each image's NLL independent of the others in its batch.
        return -self.distribution(params, x if training else None).log_prob(x)

    def mean(self, params):
        return tf.sigmoid(params)

    def get_config(self):
        config = super().get_config()
        config.update(sigma=self.sigma, min_log_sigma=self.min_log_sigma)
        return config


_NAMES = {
    "bernoulli": lambda: Bernoulli(),
    "gaussian": lambda: Gaussian(sigma=0.1),
    "gaussian_learned": lambda: Gaussian(sigma="learned"),
    "gaussian_optimal": lambda: Gaussian(sigma="optimal"),
}


def get(identifier):
    """A `Likelihood` from an instance, a name or a serialized config.

    Names: "bernoulli", "gaussian" (σ = 0.1), "gaussian_learned",
    "gaussian_optimal", or "gaussian:<sigma>" for a fixed σ.
    """
    if isinstance(identifier, Likelihood):
        return identifier
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, str):
        name, _, sigma = identifier.lower().partition(":")
        name = name.replace("-", "_")
        if not sigma and name in _NAMES:
            return _NAMES[name]()
        if name == "gaussian" and sigma:
            try:
                return Gaussian(sigma=float(sigma))
            except ValueError:
                pass
    raise ValueError(
        f"Unknown likelihood {identifier!r}: use one of {sorted(_NAMES)} "
        "or 'gaussian:<sigma>'."
    )
