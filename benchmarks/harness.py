"""Measurements: training speed, FLOP/s against measured peaks, first step,
memory, input pipelines and the ELBO after a fixed number of steps.

Variants are interleaved and timed over several rounds in shuffled order,
and the matmul peaks are measured in every round, because the machine is
shared and noisy: ratios measured side by side are what the report trusts.
"""

import dataclasses
import datetime
import json
import math
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import keras
import numpy as np
import tensorflow as tf

import keras_vae
from benchmarks import reference
from keras_vae import data as data_lib
from keras_vae import precision as precision_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Architecture:
    name: str
    shape: tuple
    filters: tuple
    latent_dim: int
    likelihood: str
    source: str  # The embedded data set it trains on.


ARCHITECTURES = (
    Architecture("28x28x1", (28, 28, 1), (32, 64), 16, "bernoulli", "fashion-mnist"),
    Architecture("64x64x3", (64, 64, 3), (32, 64, 128), 32, "gaussian", "paintings"),
)
#: (implementation, precision setting): the plain loop is float32 only.
IMPLEMENTATIONS = (("plain", "float32"), ("keras-vae", "float32"), ("keras-vae", "auto"))
MATMUL_SIZE = 2048
CACHED_IMAGES = 1024  # Images of each data set held in memory for timing.
#: Dtype of the matmul peak each policy is measured against.
PEAK_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


@dataclasses.dataclass(frozen=True)
class Settings:
    architectures: tuple
    batch_sizes: tuple
    xla: tuple  # (architecture name, batch) pairs also timed with jit_compile=True.
    rounds: int  # Timed repetitions of every variant, interleaved.
    seconds: float  # Target length of one timing (at least one step).
    elbo_steps: int  # Training steps before the validation ELBO (0: skip).
    elbo_batch_size: int
    memory: bool  # Peak memory of fresh processes at the largest batch.
    implementations: tuple = IMPLEMENTATIONS
    #: Precisions the float32-trained weights are also scored in.
    scored_in: tuple = ("auto",)
    name: str = ""  # The flag that chose these settings, for the report.


FULL = Settings(ARCHITECTURES, (32, 128), (("28x28x1", 32), ("28x28x1", 128), ("64x64x3", 32)),
                4, 1.5, 200, 32, True)
QUICK = Settings(ARCHITECTURES[:1], (32,), (("28x28x1", 32),), 1, 0.5, 10, 32, False,
                 name="--quick")
#: For a GPU machine (a few minutes on one GPU): every architecture and batch
#: compiled and not, float16 with loss scaling beside the automatic choice,
#: and the same weights scored in each mixed precision.
GPU = Settings(ARCHITECTURES, (32, 256),
               tuple((a.name, b) for a in ARCHITECTURES for b in (32, 256)), 3, 1.0, 200, 32,
               False, IMPLEMENTATIONS + (("keras-vae", "mixed_float16"),),
               ("mixed_bfloat16", "mixed_float16"), name="--gpu")
#: A variant whose warm-up step took longer than this many timing lengths is
#: not timed in the rounds: its rate is its second warm-up step's.
SLOW_STEPS = 4
MEMORY_WORKERS = 3  # Peak-memory subprocesses run at once (memory, not time).


def build_model(arch, implementation, precision, jit_compile):
    """A compiled keras-vae `VAE` or `reference.PlainVAE` of the same networks."""
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


# -- Timing ------------------------------------------------------------------


class _StepClock(keras.callbacks.Callback):
    """Records when each executed batch ends (perf_counter)."""

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def cached_images(arch, count=CACHED_IMAGES, validation=False):
    """`count` training (or validation) images of the architecture's data set, as numpy."""
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


class Variant:
    """One model trained on one data set; warmed up once, then timed."""

    def __init__(self, arch, implementation, precision, batch_size, jit_compile, dataset):
        self.arch, self.implementation, self.precision = arch, implementation, precision
        self.batch_size, self.jit_compile = batch_size, jit_compile
        self.dataset = dataset
        self.rates = []
        clock = _StepClock()
        start = time.perf_counter()
        # Building is part of the first step: resolving "auto" and the
        # per-layer policies cost what they cost.
        self.model = build_model(arch, implementation, precision, jit_compile)
        self.model.fit(
            dataset, epochs=1, steps_per_epoch=2, shuffle=False, verbose=0, callbacks=[clock]
        )
        self.first_step_s = clock.ends[0] - start
        self.step_s = clock.ends[1] - clock.ends[0]
        self.policy = policy_of(self.model)

    @property
    def label(self):
        return f"{self.implementation} {self.precision}"

    def time(self, seconds):
        """Images per second over about `seconds` (at least one step).

        Times a whole `fit` call: its set-up (tens of ms, the same for every
        variant) is part of what a user waits for.
        """
        steps = max(1, round(seconds / self.step_s))
        start = time.perf_counter()
        self.model.fit(self.dataset, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
        elapsed = time.perf_counter() - start
        self.rates.append(steps * self.batch_size / elapsed)
        self.step_s = elapsed / steps
        return self.rates[-1]

    @property
    def images_per_s(self):
        return statistics.median(self.rates)


def matmul_gflops(dtype="float32", size=MATMUL_SIZE, repeats=5):
    """Median GFLOP/s of a size×size matmul in `dtype` (2·n³ FLOPs)."""
    a = tf.cast(tf.random.normal((size, size)), dtype)
    b = tf.cast(tf.random.normal((size, size)), dtype)
    matmul = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), "float32")))
    matmul().numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul().numpy()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def warm_up_tensorflow():
    """One tiny training step, so one-time TensorFlow start-up (kernel
    registration, the first tf.function) is charged to no variant."""
    model = keras_vae.build_model(keras_vae.ModelSpec((8, 8, 1), 2, filters=(4,)))
    model.fit(np.zeros((8, 8, 8, 1), "float32"), epochs=1, batch_size=8, verbose=0)


# -- Input pipeline ----------------------------------------------------------


def pipeline_images_per_s(source, image_size, channels, batch_size=128, seconds=3.0):
    """Images per second of iterating `make_datasets`' training pipeline alone."""
    train, _, _ = data_lib.make_datasets(source, image_size, channels, batch_size=batch_size)
    iterator = iter(train.repeat())
    next(iterator)  # Pipeline start-up is not throughput.
    images, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        images += int(next(iterator).shape[0])
    return images / (time.perf_counter() - start)


def live_over_cached(arch, batch_size, seconds, rounds):
    """keras-vae (automatic precision) trained on the live `make_datasets`
    pipeline vs on cached batches: (live, cached) images per second."""
    train, _, _ = data_lib.make_datasets(arch.source, arch.shape[0], arch.shape[-1], batch_size)
    live = Variant(arch, "keras-vae", "auto", batch_size, False, train.repeat())
    cached = Variant(
        arch, "keras-vae", "auto", batch_size, False,
        cached_batches(cached_images(arch), batch_size),
    )
    for _ in range(rounds):
        live.time(seconds)
        cached.time(seconds)
    return live.images_per_s, cached.images_per_s


# -- Quality: the ELBO after a fixed number of steps -------------------------


def validation_elbo(arch, precision, steps, batch_size, train_images, validation_images, seed=0,
                    scored_in=("auto",)):
    """keras-vae trained `steps` steps from seed `seed`, then its validation
    ELBO (nats per image, β = 1, one z sample per image, seeded) and seconds;
    float32-trained weights are also scored in each precision of `scored_in`."""
    keras.utils.set_random_seed(seed)
    model = keras_vae.build_model(spec(arch, precision, seed))
    start = time.perf_counter()
    model.fit(cached_batches(train_images, batch_size), epochs=1, steps_per_epoch=steps,
              shuffle=False, verbose=0)
    seconds = time.perf_counter() - start
    result = {"architecture": arch.name, "precision": precision, "policy": policy_of(model),
              "seed": seed, "steps": steps, "batch_size": batch_size,
              "validation_elbo": _elbo(model, validation_images), "train_s": seconds,
              "same_weights_elbo": {}}
    if result["policy"] != "float32":
        return result
    # The same trained weights scored by networks in another precision:
    # what the precision alone does to the reported ELBO.
    for other in scored_in:
        mixed = keras_vae.build_model(spec(arch, other, seed))
        if policy_of(mixed) != "float32":
            mixed.set_weights(model.get_weights())
            result["same_weights_elbo"][policy_of(mixed)] = _elbo(mixed, validation_images)
    return result


def _elbo(model, images):
    """Mean validation ELBO, nats per image, one seeded z sample per image."""
    x = tf.constant(images)
    return float(np.mean([float(model.compute_terms(x[i : i + 256], seed=i)["elbo"])
                          for i in range(0, len(images), 256)]))


def elbo_runs(arch, steps, batch_size, seeds=(0, 1), scored_in=("auto",)):
    """float32 and the automatic precision, each trained `steps` steps from
    each seed's initial weights on the same batches: the precision's effect
    beside how far two seeds land apart by chance."""
    train_images = cached_images(arch)
    validation_images = cached_images(arch, 512, validation=True)
    return [
        validation_elbo(arch, precision, steps, batch_size, train_images, validation_images, seed,
                        scored_in)
        for seed in seeds for precision in ("float32", "auto")
    ]


# -- Memory ------------------------------------------------------------------


def peak_memory(jobs, steps=2, workers=MEMORY_WORKERS):
    """Peak resident memory of a fresh process training each variant.

    `jobs` are (architecture, implementation, precision, batch_size,
    jit_compile); returns one dict per job: `peak_mib` and `before_fit_mib`
    (MiB). The subprocesses run `workers` at a time.
    """
    commands = [
        [sys.executable, "-m", "benchmarks", "--memory-worker",
         arch.name, implementation, precision, str(batch_size), str(int(jit_compile)), str(steps)]
        for arch, implementation, precision, batch_size, jit_compile in jobs
    ]
    results = []
    for start in range(0, len(commands), workers):
        running = [
            subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
            for c in commands[start : start + workers]
        ]
        for command, process in zip(commands[start:], running):
            stdout, stderr = process.communicate()
            if process.returncode:
                tail = (stderr.strip().splitlines() or ["no output"])[-1]
                raise RuntimeError(f"memory worker {command[4:]} failed: {tail}")
            results.append(json.loads(stdout.strip().splitlines()[-1]))
    return results


def memory_worker(arch_name, implementation, precision, batch_size, jit_compile, steps):
    arch = next(a for a in ARCHITECTURES if a.name == arch_name)
    images = cached_images(arch, CACHED_IMAGES)
    before = _status_mib("VmRSS")
    model = build_model(arch, implementation, precision, bool(int(jit_compile)))
    model.fit(
        cached_batches(images, int(batch_size)), epochs=1, steps_per_epoch=int(steps),
        shuffle=False, verbose=0,
    )
    print(json.dumps({"peak_mib": _status_mib("VmHWM"), "before_fit_mib": before}))


def _status_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


# -- The run -----------------------------------------------------------------


def load_average():
    """The 1-minute load average: how many processes compete for the cores."""
    return os.getloadavg()[0]


def machine():
    """CPU model, core count, what `auto` resolved to and why, versions, date."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "precision": precision_lib.resolve("auto").as_dict(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1 (default)"),
        "gpus": [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
                 for gpu in tf.config.list_physical_devices("GPU")],
        "date": datetime.date.today().isoformat(),
    }


def run(settings, log=print):
    """Measures everything; returns (rows, extras) for the report: one row
    per variant (`_row`), and the matmul peaks, the validation ELBOs, the
    input pipelines and the load averages."""
    loads = [load_average()]
    warm_up_tensorflow()
    variants = _warm_up(settings, log)
    timed, peaks = _time(variants, settings, log, loads)
    peak = {dtype: statistics.median(values) for dtype, values in peaks.items()}
    rows = [_row(v, peak, len(v.rates) if v in timed else 0) for v in variants]
    if settings.memory:
        _measure_memory(rows, variants, settings, log)
    elbos = []
    if settings.elbo_steps:
        arch = settings.architectures[-1]
        log(f"validation ELBO after {settings.elbo_steps} steps, {arch.name}")
        elbos = elbo_runs(arch, settings.elbo_steps, settings.elbo_batch_size,
                          scored_in=settings.scored_in)
        loads.append(load_average())
    pipelines, live = _input_pipelines(settings, log)
    extras = {"matmul_gflops": peak, "matmul_all": peaks, "pipelines": pipelines, "live": live,
              "elbo": elbos}
    return rows, extras | {"load_averages": loads + [load_average()]}


def _warm_up(settings, log):
    """Every variant of `settings`, built and warmed up (its first steps
    timed); a variant slower than SLOW_STEPS timing lengths a step keeps its
    warm-up rate and is not timed in the rounds."""
    variants = []
    for arch in settings.architectures:
        images = cached_images(arch)
        for batch_size in settings.batch_sizes:
            dataset = cached_batches(images, batch_size)
            for jit_compile in (False, True):
                if jit_compile and (arch.name, batch_size) not in settings.xla:
                    continue
                for implementation, precision in settings.implementations:
                    log(f"warming up {arch.name} {implementation} {precision} batch {batch_size} "
                        f"xla={jit_compile}")
                    variants.append(
                        Variant(arch, implementation, precision, batch_size, jit_compile, dataset)
                    )
    for v in variants:
        if v.step_s > SLOW_STEPS * settings.seconds:
            log(f"{v.arch.name} {v.label} batch {v.batch_size} xla={v.jit_compile}: "
                f"{v.step_s:.1f} s a step, timed by its warm-up only")
            v.rates.append(v.batch_size / v.step_s)
    return variants


def _time(variants, settings, log, loads):
    """(the variants timed, {dtype: [matmul GFLOP/s of each round]}): each
    round times every variant once in a seeded random order, then the matmul
    peak of each dtype; `loads` gets the load average after each round."""
    rng = np.random.default_rng(0)
    timed = [v for v in variants if not v.rates]
    dtypes = sorted({PEAK_DTYPES[v.policy] for v in variants} | {"float32", "bfloat16"})
    peaks = {dtype: [] for dtype in dtypes}
    for round_ in range(settings.rounds):
        log(f"round {round_ + 1}/{settings.rounds}")
        for index in rng.permutation(len(timed)):
            timed[index].time(settings.seconds)
        for dtype in dtypes:
            peaks[dtype].append(matmul_gflops(dtype))
        loads.append(load_average())
    return timed, peaks


def _row(v, peak, timed_rounds):
    """The report's row of variant `v`: images/s (median, min, max), FLOPs
    and the share of the matmul `peak` of its dtype (GFLOP/s), first step."""
    flops = training_flops(v.model)
    dtype = PEAK_DTYPES[v.policy]
    return {
        "architecture": v.arch.name,
        "implementation": v.implementation,
        "precision": v.precision,
        "policy": v.policy,
        "batch_size": v.batch_size,
        "xla": v.jit_compile,
        "images_per_s": round(v.images_per_s, 1),
        "images_per_s_min": round(min(v.rates), 1),
        "images_per_s_max": round(max(v.rates), 1),
        "gflops_per_image": round(flops / 1e9, 4),
        "achieved_gflops": round(flops * v.images_per_s / 1e9, 2),
        "peak_dtype": dtype,
        "percent_of_peak": round(100 * flops * v.images_per_s / 1e9 / peak[dtype], 1),
        "first_step_s": round(v.first_step_s, 2),
        "timed_rounds": timed_rounds,
        "peak_mib": None,
        "before_fit_mib": None,
    }


def _measure_memory(rows, variants, settings, log):
    """Fills "peak_mib" and "before_fit_mib" of the rows at the largest batch,
    uncompiled, from fresh training processes (`peak_memory`)."""
    measured = [
        (row, v.arch) for row, v in zip(rows, variants)
        if v.batch_size == settings.batch_sizes[-1] and not v.jit_compile
    ]
    log(f"peak memory of {len(measured)} training processes")
    jobs = [(arch, row["implementation"], row["precision"], row["batch_size"], row["xla"])
            for row, arch in measured]
    for (row, _), memory in zip(measured, peak_memory(jobs)):
        row["peak_mib"] = round(memory["peak_mib"])
        row["before_fit_mib"] = round(memory["before_fit_mib"])


def _input_pipelines(settings, log):
    """(images/s of each embedded set's input pipeline alone, the live
    pipeline against cached batches of each architecture)."""
    log("input pipelines")
    pipelines = [
        (source, size, channels,
         pipeline_images_per_s(source, size, channels, seconds=settings.seconds))
        for source, size, channels in (("paintings", 64, 3), ("fashion-mnist", 28, 1),
                                       ("mnist5k", 28, 1))
    ]
    live = []
    batch_size = settings.batch_sizes[-1]
    for arch in settings.architectures:
        log(f"live pipeline {arch.name} batch {batch_size}")
        live.append((arch.name, batch_size) + live_over_cached(
            arch, batch_size, settings.seconds, settings.rounds
        ))
    return pipelines, live
