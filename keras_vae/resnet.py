"""Residual encoder/decoder pairs: the `architecture="resnet"` networks.

Each stage is one pre-activation residual block (He et al. 2016: norm,
swish, 3×3 convolution, twice, plus the input, through a 1×1 convolution
when the width changes) at the stage's width from `filters`, with a
stride-2 convolution after it (encoder) or a stride-2 transposed
convolution before it (decoder): one halving or doubling of H and W per
entry of `filters`, as in `architectures.build_encoder`. The encoder ends
in a dense layer to 2·latent_dim, the decoder begins with one, like the
strided design; the residual stages are what is added (as in the σ-VAE's
and NVAE's networks, without their hierarchy of latents).

Normalisation is `GroupNormalization`: statistics per image, so a batch of
one (the exported decoder, the web page) is normalised exactly as in
training, and no running averages to drift. Its layers compute in float32
whatever the networks' policy: a variance of bfloat16 activations has
3 significant digits, too few for the division by it.
"""

import math

import keras

#: The most groups of a GroupNormalization (Wu & He 2018 use 32).
MAX_GROUPS = 32


def _norm_act(x, name, dtype):
    """GroupNormalization (float32) then swish (in `dtype`)."""
    groups = math.gcd(x.shape[-1], MAX_GROUPS)
    x = keras.layers.GroupNormalization(groups, epsilon=1e-5, dtype="float32",
                                        name=f"{name}_norm")(x)
    return keras.layers.Activation("silu", name=f"{name}_act", dtype=dtype)(x)


def residual_block(x, width, name, dtype=None):
    """x + f(x), f = (norm, swish, 3×3 convolution) twice; a 1×1 projection
    of x when its width is not `width`. H and W unchanged."""
    skip = x
    if x.shape[-1] != width:
        skip = keras.layers.Conv2D(width, 1, name=f"{name}_skip", dtype=dtype)(x)
    h = keras.layers.Conv2D(width, 3, padding="same", name=f"{name}_conv1",
                            dtype=dtype)(_norm_act(x, f"{name}_1", dtype))
    h = keras.layers.Conv2D(width, 3, padding="same", name=f"{name}_conv2",
                            dtype=dtype)(_norm_act(h, f"{name}_2", dtype))
    return keras.layers.Add(name=f"{name}_add", dtype=dtype)([skip, h])


def build_encoder(input_shape, latent_dim, filters, kernel_size=4, name="encoder",
                  dtype=None):
    """Images [B, H, W, C] -> [B, 2·latent_dim]: a 3×3 stem, then per width
    a residual block and a stride-2 `kernel_size` convolution; norm, swish,
    dense."""
    x = inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = keras.layers.Conv2D(filters[0], 3, padding="same", name="stem", dtype=dtype)(x)
    for index, width in enumerate(filters):
        x = residual_block(x, width, f"down{index}", dtype)
        x = keras.layers.Conv2D(width, kernel_size, strides=2, padding="same",
                                name=f"down{index}_stride", dtype=dtype)(x)
    x = keras.layers.Flatten(dtype=dtype)(_norm_act(x, "head", dtype))
    outputs = keras.layers.Dense(2 * latent_dim, name="posterior_params", dtype=dtype)(x)
    return keras.Model(inputs, outputs, name=name)


def build_decoder(params_shape, latent_dim, filters, kernel_size=4, name="decoder",
                  dtype=None):
    """z [B, latent_dim] -> likelihood parameters [B, *params_shape]: dense,
    then per width (widest first) a stride-2 transposed convolution and a
    residual block; norm, swish, a 3×3 convolution to the parameters."""
    height, width, channels = params_shape
    factor = 2 ** len(filters)
    x = inputs = keras.Input(shape=(latent_dim,), name="z")
    x = keras.layers.Dense(height // factor * (width // factor) * filters[-1],
                           activation="relu", dtype=dtype)(x)
    x = keras.layers.Reshape((height // factor, width // factor, filters[-1]), dtype=dtype)(x)
    for index, width_ in enumerate(reversed(filters)):
        x = keras.layers.Conv2DTranspose(width_, kernel_size, strides=2, padding="same",
                                         name=f"up{index}_stride", dtype=dtype)(x)
        x = residual_block(x, width_, f"up{index}", dtype)
    outputs = keras.layers.Conv2D(channels, 3, padding="same", name="likelihood_params",
                                  dtype=dtype)(_norm_act(x, "tail", dtype))
    return keras.Model(inputs, outputs, name=name)
