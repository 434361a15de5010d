"""The deterministic autoencoder: the β = 0 limit of a `VAE`, as a baseline.

`keras-vae evaluate` and `keras-vae compare` train it on the same networks
to show what the KL term costs and buys. Registered with Keras here, and
imported by `keras_vae`, so `keras.saving.load_model` reads a saved one
after `import keras_vae`.
"""

import keras
import tensorflow as tf

from keras_vae.architectures import build_conv_vae
from keras_vae.vae import VAE

_PACKAGE = "keras_vae"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Autoencoder(VAE):
    """A deterministic autoencoder: encoder -> posterior mean -> decoder.

    The β = 0 limit of a `VAE` with the same networks and likelihood: no
    sampling, no KL; the loss is the distortion −log p(x|ẑ), nats per image,
    with ẑ the first half of the encoder output. fit/evaluate log `loss`,
    `distortion` and `mse` (mean squared error per pixel, pixel units²).
    `sample` decodes z ~ N(0, I): the "samples" an autoencoder gives.

    Example:

    >>> import numpy as np
    >>> model = build_autoencoder((8, 8, 1), latent_dim=2, filters=(4, 8))
    >>> model.compile(optimizer="adam")
    >>> sorted(model.compute_terms(np.zeros((4, 8, 8, 1), "float32")))
    ['distortion', 'loss', 'mse']
    """

    metric_names = ("loss", "distortion", "mse")

    def __init__(self, encoder, decoder, likelihood="bernoulli", **kwargs):
        kwargs["beta"] = 0.0
        super().__init__(encoder, decoder, likelihood, **kwargs)

    def compute_terms(self, x, training=False, seed=None):
        loc, _ = self.posterior_params(x, training)
        params = self.decoder_params(loc, training)
        distortion = tf.reduce_mean(self.likelihood.nll(x, params, training=training))
        return {
            "loss": distortion,
            "distortion": distortion,
            "mse": tf.reduce_mean(tf.square(x - self.likelihood.mean(params))),
        }


def build_autoencoder(
    input_shape, latent_dim=16, likelihood="bernoulli", filters=(32, 64), kernel_size=4,
    precision="float32", architecture="conv",
):
    """An `Autoencoder` with the networks `build_conv_vae` builds for the same
    arguments, `precision` and `architecture` included (the encoder's
    log-variance half is left unused)."""
    vae = build_conv_vae(input_shape, latent_dim, likelihood, filters, kernel_size, precision,
                         architecture)
    return Autoencoder(vae.encoder, vae.decoder, vae.likelihood, name="autoencoder")
