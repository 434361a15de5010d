"""One model from one description: networks, objective, precision and optimizer.

Training, evaluation's autoencoder baseline, the objective comparison and the
benchmarks all build their models here, so that "the same networks, trained
alike" holds by construction rather than by five call sites agreeing.

Example:

    >>> spec = ModelSpec((8, 8, 1), latent_dim=2, filters=(4, 8), beta=0.5)
    >>> model = build_model(spec, learning_rate=1e-3)
    >>> type(model).__name__, float(model.beta.numpy()), model.precision
    ('VAE', 0.5, 'float32')
    >>> type(build_model(dataclasses.replace(spec, autoencoder=True))).__name__
    'Autoencoder'
"""

import dataclasses

import keras

from keras_vae.architectures import build_conv_vae
from keras_vae.autoencoder import build_autoencoder


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What a model is built from.

    Attributes:
        image_shape: (H, W, C), C = 1 or 3, H and W divisible by 2**len(filters).
        latent_dim: size of z.
        likelihood: a `Likelihood` or its name (`likelihoods.get`).
        filters: channel widths of the stages, one halving each.
        kernel_size: kernel size of the strided convolutions, pixels.
        architecture: "conv" (strided convolutions) or "resnet" (residual
            stages, group normalisation), `architectures.ARCHITECTURES`.
        precision: the networks' dtype policy: "float32", "mixed_bfloat16",
            "mixed_float16" or "auto" (`keras_vae.precision`); the loss terms
            are float32 whatever it is.
        beta: the initial weight of the rate (KL, nats per image) in the loss.
        free_bits: nats per latent dimension below which its KL is not
            penalised (Kingma et al. 2016); 0 for none.
        kl: "analytic", "mc" or "auto" (`VAE`).
        autoencoder: an `Autoencoder` (the β = 0 limit: no sampling, no KL;
            beta, free_bits, kl and seed are then unused) instead of a `VAE`.
        seed: the seed of the VAE's z draws; None for unseeded.
    """

    image_shape: tuple
    latent_dim: int = 16
    likelihood: object = "bernoulli"
    filters: tuple = (32, 64)
    kernel_size: int = 4
    architecture: str = "conv"
    precision: str = "float32"
    beta: float = 1.0
    free_bits: float = 0.0
    kl: str = "auto"
    autoencoder: bool = False
    seed: int | None = None


def build_model(spec, learning_rate=1e-3, jit_compile="auto"):
    """The model of `spec`, compiled with Adam(`learning_rate`).

    The weights are initialised from Keras's global seed: call
    `keras.utils.set_random_seed` first for the same initial weights.
    `jit_compile` is Keras's (`Model.compile`).
    """
    networks = (spec.image_shape, spec.latent_dim, spec.likelihood, spec.filters,
                spec.kernel_size, spec.precision, spec.architecture)
    if spec.autoencoder:
        model = build_autoencoder(*networks)
    else:
        model = build_conv_vae(*networks, beta=spec.beta,
                               free_bits=spec.free_bits, kl=spec.kl, seed=spec.seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), jit_compile=jit_compile)
    return model
