"""The reference: the Keras documentation's VAE training loop, on keras-vae's networks.

What keras-vae is measured against: `PlainVAE` is the VAE of
keras.io/examples/generative/vae (a `Sampling` layer, the loss written by
hand in `train_step`), in float32, on the networks of
`keras_vae.build_encoder`/`build_decoder`.
"""

import keras
import tensorflow as tf

import keras_vae

GAUSSIAN_SIGMA = 0.1  # σ of likelihoods.get("gaussian"), pixel units.


class Sampling(keras.layers.Layer):
    """z = mean + exp(log_var / 2)·ε, ε ~ N(0, I)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(0)

    def call(self, inputs):
        mean, log_var = inputs
        eps = keras.random.normal(keras.ops.shape(mean), seed=self.seed_generator)
        return mean + keras.ops.exp(0.5 * log_var) * eps


class PlainVAE(keras.Model):
    """The VAE of keras.io/examples/generative/vae, loss written by hand.

    Bernoulli: binary cross-entropy summed over pixels; Gaussian: squared
    error / (2σ²), the same gradients as keras-vae's Gaussian(σ).
    """

    def __init__(self, encoder, decoder, sigma=None, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder, self.sigma = encoder, decoder, sigma
        self.sampling = Sampling()
        self.trackers = [keras.metrics.Mean(name=n) for n in ("loss", "reconstruction", "kl")]

    def train_step(self, data):
        ops = keras.ops
        with tf.GradientTape() as tape:
            mean, log_var = ops.split(self.encoder(data, training=True), 2, axis=-1)
            out = self.decoder(self.sampling([mean, log_var]), training=True)
            if self.sigma is None:
                pixel_loss = ops.binary_crossentropy(data, out, from_logits=True)
            else:
                pixel_loss = ops.square(data - ops.sigmoid(out)) / (2 * self.sigma**2)
            reconstruction = ops.mean(ops.sum(pixel_loss, axis=(1, 2, 3)))
            kl = -0.5 * (1 + log_var - ops.square(mean) - ops.exp(log_var))
            kl = ops.mean(ops.sum(kl, axis=1))
            loss = reconstruction + kl
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        for tracker, value in zip(self.trackers, (loss, reconstruction, kl)):
            tracker.update_state(value)
        return {t.name: t.result() for t in self.trackers}

    @property
    def metrics(self):
        return self.trackers


def build(arch):
    """A float32 `PlainVAE` of the architecture's networks (not compiled)."""
    sigma = None if arch.likelihood == "bernoulli" else GAUSSIAN_SIGMA
    return PlainVAE(
        keras_vae.build_encoder(arch.shape, arch.latent_dim, arch.filters),
        keras_vae.build_decoder(arch.shape, arch.latent_dim, arch.filters),
        sigma,
    )
