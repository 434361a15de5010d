"""The discretised logistic mixture likelihood of 8-bit pixels (PixelCNN++).

Each pixel value, each channel independently given z, is a mixture of K
logistics discretised to the 256 levels of 8-bit data with edge bins to ±∞
(Salimans et al. 2017, eq. 2; `keras_vae.discretized`):

    P(x_c | z) = Σ_k π_k · [F((x_c + 1/510 − μ_k) / s_k) − F((x_c − 1/510 − μ_k) / s_k)],

F the logistic CDF σ. The decoder outputs 3K numbers per pixel value: the
K mixture logits, the K locations (through a sigmoid, as the Gaussian's
mean: μ_k in (0, 1)) and the K log-scales (soft-clipped below at
`min_log_scale`). Unlike PixelCNN++, channels are not coupled to each other
(each channel's mixture is its own): p(x|z) factorises over pixels and
channels, like every likelihood of keras-vae.

It is a probability mass function: its NLL is ≥ 0 nats, and −ELBO/(D·ln 2)
is exactly bits/dim of 8-bit data, with no dequantisation.

What β means for it: the scales s_k are the decoder's own, per pixel, so
there is no σ for β to stand for as σ² = β/2 does for a fixed Gaussian;
β = 1 is the ELBO, and β ≠ 1 weighs the rate against this fitted pmf (the
ELBO of the tempered likelihood P(x|z)^(1/β)). Train it at β = 1, as the
calibrated σ-VAE.
"""

import keras
import tensorflow as tf

from keras_vae import discretized
from keras_vae import likelihoods
from keras_vae.likelihoods import Likelihood, soft_clip

_PACKAGE = "keras_vae"
#: The name `likelihoods.get` reads, with ":<K>" for K components.
NAME = "discretized_logistic_mixture"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DiscretizedLogisticMixture(Likelihood):
    """A mixture of `components` discretised logistics per pixel value.

    Args:
        components: K, the mixture size (PixelCNN++ uses 5 to 10).
        min_log_scale: the lower bound of log s_k, s in [0, 1] pixel units
            (soft-clipped, `likelihoods.soft_clip`); −7 is s ≥ 0.0009, a
            quarter of a level's width, sharp enough for one level.
    """

    eight_bit = True

    def __init__(self, components=5, min_log_scale=-7.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(components, bool) or not isinstance(components, int) or components < 1:
            raise ValueError(
                f"{NAME} needs a whole number of components >= 1, got {components!r} "
                f"(e.g. '{NAME}:5')."
            )
        self.components = components
        self.min_log_scale = float(min_log_scale)

    def params_shape(self, image_shape):
        """(H, W, C·3K): logits, locations and log-scales per pixel value."""
        height, width, channels = image_shape
        return (height, width, channels * 3 * self.components)

    def distribution(self, params):
        raise NotImplementedError(
            "DiscretizedLogisticMixture is a pmf over the 8-bit levels without a TFP "
            "distribution here: use its nll, log_mass and mean."
        )

    def _split(self, params):
        """(log π, μ, s), each [B, H, W, C, K], float32."""
        params = tf.cast(params, "float32")
        shape = tf.concat([tf.shape(params)[:-1], [-1, 3 * self.components]], 0)
        logits, loc, log_scale = tf.split(tf.reshape(params, shape), 3, axis=-1)
        log_scale = soft_clip(log_scale, self.min_log_scale)
        return tf.nn.log_softmax(logits, axis=-1), tf.sigmoid(loc), tf.exp(log_scale)

    def log_mass(self, x, params):
        """log P(x's 8-bit level | z) per pixel value, nats, [B, H, W, C]."""
        log_weights, loc, scale = self._split(params)
        log_mass = discretized.log_level_mass(
            x[..., None], loc, scale, discretized.log_logistic_cdf,
            discretized.log_logistic_pdf)
        return tf.reduce_logsumexp(log_weights + log_mass, axis=-1)

    def nll(self, x, params, training=False):
        """−log P(x|z), nats per image, [batch]: exact for 8-bit data."""
        return -tf.reduce_sum(self.log_mass(x, params), axis=[1, 2, 3])

    def level_nll(self, x, params):
        return self.nll(x, params)

    def mean(self, params):
        """E[x|z] of the mixture of logistics clamped to [0, 1], [B, H, W, C]:

            E[clip(μ + s·T, 0, 1)] = s·(softplus(μ/s) − softplus((μ − 1)/s)),

        within half a level (1/510) of the discretised mixture's own mean
        (the same integral by the midpoint rule), in closed form and cheap
        enough for every training step and the exported decoder.
        """
        log_weights, loc, scale = self._split(params)
        clamped = scale * (tf.nn.softplus(loc / scale) - tf.nn.softplus((loc - 1.0) / scale))
        return tf.reduce_sum(tf.exp(log_weights) * clamped, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(components=self.components, min_log_scale=self.min_log_scale)
        return config


def from_name(suffix):
    """The mixture of `likelihoods.get`'s "discretized_logistic_mixture[:K]"."""
    if not suffix:
        return DiscretizedLogisticMixture()
    try:
        components = int(suffix)
    except ValueError:
        components = suffix
    return DiscretizedLogisticMixture(components)


likelihoods.register(NAME, from_name, f"{NAME}[:<K>]")
