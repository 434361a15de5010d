"""Convolutional encoder/decoder pairs for images of any H×W×C.

Two designs, chosen by `architecture` (`ARCHITECTURES`): "conv", strided
convolutions and one dense layer (this module), and "resnet", residual
stages with group normalisation (`keras_vae.resnet`). Both halve H and W
once per entry of `filters`, at that entry's width.
"""

import keras

from keras_vae import likelihoods as likelihoods_lib
from keras_vae import precision as precision_lib
from keras_vae import resnet
from keras_vae.vae import VAE


def _check_image_shape(input_shape, depth):
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise ValueError(
            f"input_shape must be (height, width, channels) with 1 or 3 channels, "
            f"got {tuple(input_shape)}."
        )
    _check_sides(input_shape, depth)


def _check_sides(shape, depth):
    factor = 2**depth
    bad = [side for side in shape[:2] if side % factor or side < factor]
    if bad:
        side = bad[0]
        lower = max(factor, side - side % factor)
        raise ValueError(
            f"Image side {side} is not divisible by 2**{depth} = {factor} (one halving "
            f"per entry of filters): use a size such as {lower} or {lower + factor}, "
            "or pass fewer filters."
        )


def build_encoder(
    input_shape, latent_dim, filters=(32, 64), kernel_size=4, name="encoder", dtype=None
):
    """Strided convolutions, each halving H and W, then a dense layer to 2·latent_dim.

    `dtype`: the layers' dtype policy (None: Keras's global policy), e.g.
    `precision.policy("mixed_bfloat16")`.
    """
    _check_image_shape(input_shape, len(filters))
    x = inputs = keras.Input(shape=tuple(input_shape), name="image")
    for width in filters:
        x = keras.layers.Conv2D(
            width, kernel_size, strides=2, padding="same", activation="relu", dtype=dtype
        )(x)
    x = keras.layers.Flatten(dtype=dtype)(x)
    outputs = keras.layers.Dense(2 * latent_dim, name="posterior_params", dtype=dtype)(x)
    return keras.Model(inputs, outputs, name=name)


def build_decoder(
    output_shape, latent_dim, filters=(32, 64), kernel_size=4, name="decoder", dtype=None
):
    """The encoder's mirror image: dense, then transposed convolutions doubling H and W.

    `output_shape`: (H, W, channels of the likelihood's parameters,
    `Likelihood.params_shape`). `dtype`: the layers' dtype policy, as for
    `build_encoder`.
    """
    _check_sides(output_shape, len(filters))
    height, width, channels = output_shape
    factor = 2 ** len(filters)
    x = inputs = keras.Input(shape=(latent_dim,), name="z")
    x = keras.layers.Dense(
        height // factor * (width // factor) * filters[-1], activation="relu", dtype=dtype
    )(x)
    x = keras.layers.Reshape((height // factor, width // factor, filters[-1]), dtype=dtype)(x)
    for width_ in reversed(filters):
        x = keras.layers.Conv2DTranspose(
            width_, kernel_size, strides=2, padding="same", activation="relu", dtype=dtype
        )(x)
    outputs = keras.layers.Conv2D(
        channels, 3, padding="same", name="likelihood_params", dtype=dtype
    )(x)
    return keras.Model(inputs, outputs, name=name)


#: architecture name -> (build_encoder, build_decoder).
ARCHITECTURES = {
    "conv": (build_encoder, build_decoder),
    "resnet": (resnet.build_encoder, resnet.build_decoder),
}


def build_conv_vae(
    input_shape,
    latent_dim=16,
    likelihood="bernoulli",
    filters=(32, 64),
    kernel_size=4,
    precision="float32",
    architecture="conv",
    **vae_kwargs,
):
    """A `VAE` with a symmetric convolutional encoder and decoder.

    Args:
        input_shape: (H, W, C) with C = 1 or 3 and H, W divisible by
            2**len(filters).
        latent_dim: size of z.
        likelihood: a `Likelihood` or its name (see `likelihoods.get`).
        filters: channel widths of the stages, one halving each.
        kernel_size: kernel size of the strided (down/upsampling) convolutions.
        precision: "float32", "mixed_bfloat16", "mixed_float16" or "auto"
            (see `keras_vae.precision`): the encoder's and decoder's dtype
            policy, set on their layers only (Keras's global policy is left
            alone). The loss terms are float32 whatever it is.
        architecture: "conv" (strided convolutions) or "resnet" (a residual
            block per stage, group normalisation; `keras_vae.resnet`).
        **vae_kwargs: passed to `VAE` (beta, prior, kl, free_bits, ...).
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"Unknown architecture {architecture!r}: use one of {', '.join(ARCHITECTURES)}."
        )
    input_shape = tuple(int(s) for s in input_shape)
    filters = tuple(int(f) for f in filters)
    _check_image_shape(input_shape, len(filters))
    dtype = precision_lib.policy(precision)
    likelihood = likelihoods_lib.get(likelihood)
    encode, decode = ARCHITECTURES[architecture]
    encoder = encode(input_shape, latent_dim, filters, kernel_size, dtype=dtype)
    decoder = decode(likelihood.params_shape(input_shape), latent_dim, filters, kernel_size,
                     dtype=dtype)
    return VAE(encoder, decoder, likelihood, **vae_kwargs)
