"""What is measured: the architectures, the variants, the run presets, and
the models and in-memory batches every measurement shares."""

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

import keras_vae
from benchmarks import reference
from keras_vae import data as data_lib
from keras_vae import precision as precision_lib


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A network and the data set it trains on.

    Attributes:
        name: "HxWxC", for the tables.
        shape: (H, W, C) of an image, pixels.
        filters: channel widths of the strided convolutions.
        latent_dim: size of z.
        likelihood: "bernoulli" or "gaussian" (σ = `reference.GAUSSIAN_SIGMA`).
        source: the embedded data set it trains on (`keras_vae.data`).
    """

    name: str
    shape: tuple
    filters: tuple
    latent_dim: int
    likelihood: str
    source: str


ARCHITECTURES = (
    Architecture("28x28x1", (28, 28, 1), (32, 64), 16, "bernoulli", "fashion-mnist"),
    Architecture("64x64x3", (64, 64, 3), (32, 64, 128), 32, "gaussian", "paintings"),
)
#: A network small enough to run every step of a preset in seconds (`tiny`).
TINY_ARCHITECTURE = Architecture("8x8x1", (8, 8, 1), (4, 8), 2, "bernoulli", "digits")
#: (implementation, precision setting): the plain loop is float32 only.
IMPLEMENTATIONS = (("plain", "float32"), ("keras-vae", "float32"), ("keras-vae", "auto"))
#: The embedded data sets whose input pipeline is timed: (source, size, channels).
PIPELINES = (("paintings", 64, 3), ("fashion-mnist", 28, 1), ("mnist5k", 28, 1))
CACHED_IMAGES = 1024  # Images of each data set held in memory for timing.


@dataclasses.dataclass(frozen=True)
class Settings:
    """One run's sizes.

    Attributes:
        architectures: the `Architecture`s measured.
        batch_sizes: images per step; the last is the one whose memory and
            live input pipeline are measured.
        xla: (architecture name, batch) pairs also timed with jit_compile=True.
        rounds: paired rounds: each round times every variant of one
            (architecture, batch) once, in a seeded random order.
        seconds: length of one timed block of steps, s (at least one step).
        elbo_steps: training steps before the validation ELBO (0: skip).
        elbo_batch_size: images per step of those runs.
        memory: measure the peak memory of fresh processes at the last batch.
        implementations: the (implementation, precision) variants.
        scored_in: precisions the float32-trained weights are also scored in.
        pipelines: (source, size, channels) of the input pipelines timed.
        name: the flags that chose these settings, for the report.
    """

    architectures: tuple
    batch_sizes: tuple
    xla: tuple
    rounds: int
    seconds: float
    elbo_steps: int
    elbo_batch_size: int
    memory: bool
    implementations: tuple = IMPLEMENTATIONS
    scored_in: tuple = ("auto",)
    pipelines: tuple = PIPELINES
    name: str = ""


FULL = Settings(ARCHITECTURES, (32, 128), (("28x28x1", 32), ("28x28x1", 128), ("64x64x3", 32)),
                10, 0.6, 200, 32, True)
QUICK = Settings(ARCHITECTURES[:1], (32,), (("28x28x1", 32),), 3, 0.3, 10, 32, False,
                 name="--quick")
#: For a GPU machine (a few minutes on one GPU): every architecture and batch
#: compiled and not, float16 with loss scaling beside the automatic choice,
#: and the same weights scored in each mixed precision.
GPU = Settings(ARCHITECTURES, (32, 256),
               tuple((a.name, b) for a in ARCHITECTURES for b in (32, 256)), 6, 0.5, 200, 32,
               False, IMPLEMENTATIONS + (("keras-vae", "mixed_float16"),),
               ("mixed_bfloat16", "mixed_float16"), name="--gpu")


def tiny(settings):
    """`settings` shrunk to seconds on a CPU, every kind of measurement kept:
    one 8×8×1 network at batch 8, XLA on and off, two short rounds, two
    ELBO steps, the digits pipeline."""
    arch = TINY_ARCHITECTURE
    return dataclasses.replace(
        settings, architectures=(arch,), batch_sizes=(8,), xla=((arch.name, 8),), rounds=2,
        seconds=0.01, elbo_steps=2, elbo_batch_size=8,
        pipelines=((arch.source,) + arch.shape[1:],), name=f"{settings.name} --tiny".strip())


def build_model(arch, implementation, precision, jit_compile):
    """A compiled keras-vae `VAE` or `reference.PlainVAE` of the same networks,
    Adam(1e-3), initial weights from seed 0."""
    keras.utils.set_random_seed(0)
    if implementation == "keras-vae":
        return keras_vae.build_model(spec(arch, precision, seed=0), jit_compile=jit_compile)
    model = reference.build(arch)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    return model


def spec(arch, precision, seed):
    """The `keras_vae.ModelSpec` of `arch` (β = 1) computing in `precision`."""
    return keras_vae.ModelSpec(arch.shape, arch.latent_dim, arch.likelihood, arch.filters,
                               precision=precision, seed=seed)


def policy_of(model):
    """The dtype policy the model's networks compute in."""
    return precision_lib.policy_name(model)


def training_flops(model):
    """FLOPs of one training step per image: 3 × forward (forward, then the
    gradients with respect to activations and to weights, each about one
    forward pass; an over-count by the first layer's unneeded input gradient)."""
    forward = 0
    for layer in model.encoder.layers + model.decoder.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            height, width, channels = layer.input.shape[1:]
            forward += 2 * height * width * channels * math.prod(layer.kernel_size) * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            height, width, _ = layer.output.shape[1:]
            channels = layer.input.shape[-1]
            forward += 2 * height * width * layer.filters * math.prod(layer.kernel_size) * channels
        elif isinstance(layer, keras.layers.Dense):
            forward += 2 * layer.input.shape[-1] * layer.units
    return 3 * forward


def cached_images(arch, count=CACHED_IMAGES, validation=False):
    """`count` training (or validation) images of the architecture's data set,
    float32 in [0, 1], as numpy [count, H, W, C]."""
    train, held_out, _ = data_lib.make_datasets(
        arch.source, arch.shape[0], arch.shape[-1], batch_size=256,
        validation_split=0.1 if validation else 0,
    )
    ds = held_out if validation else train
    images = np.concatenate([b.numpy() for b in ds.repeat().take(math.ceil(count / 256))])
    return images[:count]


def cached_batches(images, batch_size):
    """Batches of in-memory images, repeated forever: input costs nothing."""
    ds = tf.data.Dataset.from_tensor_slices(images).batch(batch_size, drop_remainder=True)
    return ds.cache().repeat().prefetch(tf.data.AUTOTUNE)


def architecture(name):
    """The `Architecture` called `name`, the tiny one included."""
    return next(a for a in ARCHITECTURES + (TINY_ARCHITECTURE,) if a.name == name)
