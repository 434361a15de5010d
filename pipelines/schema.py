"""The config's tables, declared once: every key with its default, help
(units included), command-line flag and allowed range.

`pipelines.config` derives the defaults, the checks and the written TOML
from these dataclasses, `pipelines.flags` the command-line flags. No
TensorFlow here.

Example:

    >>> Train().batch_size, dataclasses.fields(Train)[1].metadata["help"]
    (32, 'global batch size, split across replicas and workers')
"""

import dataclasses


def option(default, help, *, flag=None, check=None):
    """A config field: `help` (with units), `flag` (default `--<key>`), and
    `check`, a (test, "what the message says") pair for non-None values."""
    metadata = {"help": help, "flag": flag, "check": check}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def at_least(low):
    return (lambda v: v >= low), f">= {low:g}"


def above(low):
    return (lambda v: v > low), f"> {low:g}"


def one_of(*values):
    return (lambda v: v in values), " or ".join(values)


@dataclasses.dataclass
class Data:
    """[data]: what the model trains on."""

    source: str = option("paintings", "a folder of images or an embedded set: paintings, "
                         "fashion-mnist, mnist5k, digits", flag="--data")
    image_size: int = option(64, "side of the square images, px", check=at_least(1))
    channels: int = option(3, "1 (grayscale) or 3 (RGB)", check=((lambda v: v in (1, 3)), "1 or 3"))
    validation_split: float = option(0.1, "fraction of the pictures held out",
                                     check=((lambda v: 0 <= v < 1), "in [0, 1)"))
    seed: int = option(0, "seed of the split, shuffling and crops", flag="--data-seed",
                       check=at_least(0))
    random_crops: bool | None = option(None, "train on random crops (true/false); "
                                       "default: paintings and folders of < 100 images")
    crops_per_image: int | None = option(None, "random crops per picture per epoch",
                                         check=at_least(1))
    # keras_vae.cache: a folder's pictures decoded once, reused by every later command.
    cache: bool = option(True, "prepare a folder once into a cache of decoded pictures and "
                         "reuse it (false: decode every epoch)")
    cache_dir: str | None = option(None, "where prepared folders are kept, about "
                                   "side² × channels bytes per picture; default "
                                   "$XDG_CACHE_HOME/keras-vae or ~/.cache/keras-vae; delete "
                                   "it to free the space")


@dataclasses.dataclass
class Model:
    """[model]: the networks and the objective."""

    latent_dim: int = option(16, "size of z", check=at_least(1))
    filters: list[int] = option([32, 64, 128], "widths of the stages, one halving of H and W "
                                "each, e.g. 32,64,128", check=(
                                    (lambda v: len(v) > 0 and all(
                                        isinstance(f, int) and f >= 1 for f in v)),
                                    "a non-empty list of widths >= 1, e.g. 32,64,128"))
    kernel_size: int = option(4, "kernel size of the strided convolutions", check=at_least(1))
    architecture: str = option("conv", "conv (strided convolutions) or resnet (a residual "
                               "block per stage, group normalisation)",
                               check=one_of("conv", "resnet"))
    likelihood: str = option("gaussian_learned", "bernoulli, gaussian, gaussian_learned, "
                             "gaussian_optimal, gaussian:<sigma> or "
                             "discretized_logistic_mixture[:<K>]")
    kl: str = option("auto", "analytic, mc or auto")
    free_bits: float = option(0.0, "KL floor per latent dimension, nats", check=at_least(0))


@dataclasses.dataclass
class Beta:
    """The parameters of every β schedule and controller; each entry of
    `pipelines.beta.REGISTRY` takes some of them."""

    schedule: str = option("linear", "constant, linear, cyclical, sigmoid (schedules of the "
                           "step), kl_target or geco (controllers)", flag="--beta-schedule")
    value: float = option(1.0, "β of the constant schedule", flag="--beta", check=at_least(0))
    start: float = option(0.0, "β at step 0 (linear, cyclical, sigmoid)", flag="--beta-start",
                          check=at_least(0))
    stop: float = option(1.0, "final β (linear, cyclical, sigmoid)", flag="--beta-stop",
                         check=at_least(0))
    warmup_steps: int = option(1000, "linear ramp length, steps", check=at_least(1))
    delay_steps: int = option(0, "steps at the start value before the ramp", check=at_least(0))
    period: int = option(1000, "cyclical period, steps", check=at_least(1))
    ratio: float = option(0.5, "cyclical: fraction of the period spent rising",
                          check=((lambda v: 0 < v <= 1), "in (0, 1]"))
    midpoint_steps: int = option(1000, "sigmoid: step where β is half-way", check=at_least(0))
    width_steps: int = option(100, "sigmoid: steepness, steps", check=above(0))
    update_freq: str = option("batch", "schedules: set β per batch (step) or per epoch",
                              flag="--beta-update",
                              check=((lambda v: v in ("batch", "epoch")), "batch or epoch"))
    target_rate: float | None = option(None, "kl_target: rate set point, nats per image",
                                       check=at_least(0))
    kp: float = option(0.01, "kl_target: proportional gain", check=at_least(0))
    ki: float = option(0.0001, "kl_target: integral gain", check=at_least(0))
    tolerance: float | None = option(None, "geco: distortion bound, nats per image",
                                     check=((lambda v: True), "finite"))
    alpha: float = option(0.99, "geco: moving-average factor",
                          check=((lambda v: 0 <= v < 1), "in [0, 1)"))
    step_size: float = option(0.001, "geco: multiplier step size", check=above(0))
    beta_min: float | None = option(None, "controllers: lowest β (default: the controller's)",
                                    check=at_least(0))
    beta_max: float | None = option(None, "controllers: highest β", check=at_least(0))


@dataclasses.dataclass
class Train:
    """[train]: the optimisation and where the run goes."""

    epochs: int = option(10, "epochs to train (raise it to train a run further)",
                         check=at_least(1))
    batch_size: int = option(32, "global batch size, split across replicas and workers",
                             check=at_least(1))
    learning_rate: float = option(0.001, "Adam's learning rate", check=above(0))
    seed: int = option(0, "seed of the weights and of z", check=at_least(0))
    steps_per_epoch: int | None = option(None, "default: one pass over the training data",
                                         check=at_least(1))
    run_name: str | None = option(None, "default: derived from the config (see "
                                  "pipelines.config.run_name)")
    output_dir: str = option("saved_models", "folder of the run folders")
    strategy: str = option("default", "default, mirrored or multiworker (reads TF_CONFIG)")
    # What the networks compute in (keras_vae.precision.PRECISIONS); the loss
    # terms are float32 whatever it is. auto: bfloat16 where the CPU or GPU has it.
    precision: str = option("auto", "auto, float32, mixed_bfloat16 or mixed_float16",
                            check=one_of("auto", "float32", "mixed_bfloat16", "mixed_float16"))
    image_every: int = option(1, "epochs between TensorBoard images (0: none)",
                              check=at_least(0))
    update_freq: int = option(50, "steps between per-step TensorBoard summaries (0: none)",
                              check=at_least(0))
    # The posterior-collapse alarm (keras_vae.monitoring.CollapseAlarm); 0 and 0 turn it off.
    collapse_active_units: int = option(1, "posterior-collapse alarm: fewest active latent "
                                        "dimensions (0: off)", check=at_least(0))
    collapse_rate_per_unit: float = option(0.1, "posterior-collapse alarm: fewest nats per "
                                           "active dimension (0: off)", check=at_least(0))


@dataclasses.dataclass
class Compare:
    """[compare]: how `keras-vae compare` repeats and watches its runs; no
    other command reads it, and it is no part of a run's identity."""

    seeds: int = option(3, "seeds per objective (weights, z, crop order), paired across "
                        "objectives; intervals need >= 2", check=at_least(1))
    curve_points: int = option(10, "points of the learning curves (PSNR measured every "
                               "steps / curve_points steps)", check=at_least(1))


#: Table name -> its dataclass.
TABLES = {"data": Data, "model": Model, "beta": Beta, "train": Train, "compare": Compare}
#: The tables every command reads; the others only the command they are named for.
RUN_TABLES = ("data", "model", "beta", "train")
