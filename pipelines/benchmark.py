"""Training speed of keras-vae against a plain Keras VAE loop, on this machine.

    python -m pipelines.benchmark [--quick] [--output-dir DIR]

For two architectures (28×28×1 Bernoulli and 64×64×3 Gaussian, the
networks of `build_encoder`/`build_decoder`), at several batch sizes, with
and without XLA, it measures in one run:

- training images per second of `VAE.fit` and of `PlainVAE.fit`, the Keras
  documentation's VAE example (Sampling layer, loss written by hand in
  `train_step`) on the same networks and the same cached batches. Variants
  are interleaved and timed over several rounds in shuffled order; the
  tables give medians, because the machine is shared and noisy;
- achieved FLOP/s, counted analytically (3 × the forward FLOPs of the
  convolutions and dense layers), against this machine's float32 matmul
  peak, measured in every round;
- time to first step: from the `fit` call to the end of the first batch
  (tracing, and compilation with XLA);
- peak resident memory of a fresh training process per variant, at the
  largest batch (`VmHWM` of a subprocess);
- input-pipeline throughput of `keras_vae.data.make_datasets` alone, and
  keras-vae training fed live by that pipeline against cached batches:
  whether the model ever waits on its input.

It prints the tables and writes `BENCHMARKS.md` and `benchmarks.csv`.
"""

import argparse
import csv
import dataclasses
import datetime
import io
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
from keras_vae import data as data_lib
from keras_vae import files


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
IMPLEMENTATIONS = ("keras-vae", "plain")
GAUSSIAN_SIGMA = 0.1  # σ of likelihoods.get("gaussian"), pixel units.
MATMUL_SIZE = 2048
CACHED_IMAGES = 1024  # Images of each data set held in memory for timing.


@dataclasses.dataclass(frozen=True)
class Settings:
    architectures: tuple
    batch_sizes: tuple
    rounds: int  # Timed repetitions of every variant, interleaved.
    seconds: float  # Target length of one timing (at least one step).
    steps_per_execution: int  # The extra keras-vae variant (1: none).
    memory_implementations: tuple  # Whose peak memory to measure.


FULL = Settings(ARCHITECTURES, (64, 128, 256), 4, 1.5, 16, IMPLEMENTATIONS)
QUICK = Settings(ARCHITECTURES[:1], (64,), 1, 0.5, 4, ("keras-vae",))
MEMORY_WORKERS = 4  # Peak-memory subprocesses run at once (memory, not time).


# -- The plain loop: the Keras documentation's VAE, on our networks ----------


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


def build_model(arch, implementation, jit_compile, steps_per_execution=1):
    """A compiled keras-vae `VAE` or `PlainVAE` of the same networks."""
    keras.utils.set_random_seed(0)
    if implementation == "keras-vae":
        model = keras_vae.build_conv_vae(
            arch.shape, arch.latent_dim, arch.likelihood, arch.filters, seed=0
        )
    else:
        sigma = None if arch.likelihood == "bernoulli" else GAUSSIAN_SIGMA
        model = PlainVAE(
            keras_vae.build_encoder(arch.shape, arch.latent_dim, arch.filters),
            keras_vae.build_decoder(arch.shape, arch.latent_dim, arch.filters),
            sigma,
        )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


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


# -- Measurements ------------------------------------------------------------


class _StepClock(keras.callbacks.Callback):
    """Records when each executed batch ends (step index, perf_counter)."""

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append((batch, time.perf_counter()))


def cached_images(arch, count=CACHED_IMAGES):
    """`count` training images of the architecture's data set, as numpy."""
    train, _, _ = data_lib.make_datasets(
        arch.source, arch.shape[0], arch.shape[-1], batch_size=256, validation_split=0
    )
    images = np.concatenate([b.numpy() for b in train.repeat().take(math.ceil(count / 256))])
    return images[:count]


def cached_batches(images, batch_size):
    """Batches of in-memory images, repeated forever: input costs nothing."""
    ds = tf.data.Dataset.from_tensor_slices(images).batch(batch_size, drop_remainder=True)
    return ds.cache().repeat().prefetch(tf.data.AUTOTUNE)


class Variant:
    """One model trained on one data set; warmed up once, then timed."""

    def __init__(self, arch, implementation, batch_size, jit_compile, dataset, spe=1):
        self.arch, self.implementation = arch, implementation
        self.batch_size, self.jit_compile, self.spe = batch_size, jit_compile, spe
        self.model = build_model(arch, implementation, jit_compile, spe)
        self.dataset = dataset
        self.rates = []
        clock = _StepClock()
        start = time.perf_counter()
        self.model.fit(
            dataset, epochs=1, steps_per_epoch=2 * spe, shuffle=False, verbose=0,
            callbacks=[clock],
        )
        self.first_step_s = clock.ends[0][1] - start
        self.step_s = (clock.ends[-1][1] - clock.ends[-2][1]) / spe

    def time(self, seconds):
        """Images per second over about `seconds` (at least one execution).

        Times a whole `fit` call: its set-up (tens of ms, the same for every
        variant) is part of what a user waits for, and leaving out its first
        step would waste the seconds a slow step takes.
        """
        steps = self.spe * max(1, round(seconds / self.step_s / self.spe))
        start = time.perf_counter()
        self.model.fit(self.dataset, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
        elapsed = time.perf_counter() - start
        self.rates.append(steps * self.batch_size / elapsed)
        self.step_s = elapsed / steps
        return self.rates[-1]

    @property
    def images_per_s(self):
        return statistics.median(self.rates)


def matmul_gflops(size=MATMUL_SIZE, repeats=5):
    """Median GFLOP/s of a float32 size×size matmul (2·n³ FLOPs)."""
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    matmul().numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul().numpy()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def pipeline_images_per_s(source, image_size, channels, batch_size=128, seconds=3.0):
    """Images per second of iterating `make_datasets`' training pipeline alone."""
    train, _, _ = data_lib.make_datasets(source, image_size, channels, batch_size=batch_size)
    iterator = iter(train.repeat())
    next(iterator)  # Pipeline start-up is not throughput.
    images, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        images += int(next(iterator).shape[0])
    return images / (time.perf_counter() - start)


def live_over_cached(arch, batch_size, jit_compile, seconds, rounds):
    """keras-vae trained on the live `make_datasets` pipeline vs cached batches."""
    train, _, _ = data_lib.make_datasets(arch.source, arch.shape[0], arch.shape[-1], batch_size)
    live = Variant(arch, "keras-vae", batch_size, jit_compile, train.repeat())
    cached = Variant(
        arch, "keras-vae", batch_size, jit_compile,
        cached_batches(cached_images(arch), batch_size),
    )
    for _ in range(rounds):
        live.time(seconds)
        cached.time(seconds)
    return live.images_per_s, cached.images_per_s


def peak_memory(jobs, steps=2, workers=MEMORY_WORKERS):
    """Peak resident memory of a fresh process training each variant.

    `jobs` are (architecture, implementation, batch_size, jit_compile);
    returns one dict per job: `peak_mib` and `before_fit_mib` (MiB). The
    subprocesses run `workers` at a time: memory does not mind sharing cores.
    """
    commands = [
        [sys.executable, "-m", "pipelines.benchmark", "--memory-worker",
         arch.name, implementation, str(batch_size), str(int(jit_compile)), str(steps)]
        for arch, implementation, batch_size, jit_compile in jobs
    ]
    results = []
    for start in range(0, len(commands), workers):
        running = [
            subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for c in commands[start : start + workers]
        ]
        for command, process in zip(commands[start:], running):
            stdout, stderr = process.communicate()
            if process.returncode:
                tail = (stderr.strip().splitlines() or ["no output"])[-1]
                raise RuntimeError(f"memory worker {command[4:]} failed: {tail}")
            results.append(json.loads(stdout.strip().splitlines()[-1]))
    return results


def _memory_worker(arch_name, implementation, batch_size, jit_compile, steps):
    arch = next(a for a in ARCHITECTURES if a.name == arch_name)
    images = cached_images(arch, CACHED_IMAGES)
    before = _status_mib("VmRSS")
    model = build_model(arch, implementation, bool(int(jit_compile)))
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
    """CPU model, core count, TensorFlow and Keras versions, date."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1 (default)"),
        "date": datetime.date.today().isoformat(),
    }


def run(settings, log=print):
    """Measures everything; returns (rows, extras) for the tables."""
    rng = np.random.default_rng(0)
    loads = [load_average()]
    peaks = [matmul_gflops()]
    log(f"float32 matmul {MATMUL_SIZE}²: {peaks[0]:.1f} GFLOP/s")

    variants = []
    for arch in settings.architectures:
        images = cached_images(arch)
        for batch_size in settings.batch_sizes:
            dataset = cached_batches(images, batch_size)
            for jit_compile in (False, True):
                for implementation in IMPLEMENTATIONS:
                    log(f"warming up {arch.name} {implementation} batch {batch_size} "
                        f"xla={jit_compile}")
                    variants.append(Variant(arch, implementation, batch_size, jit_compile, dataset))
                if settings.steps_per_execution > 1 and batch_size == settings.batch_sizes[0]:
                    variants.append(
                        Variant(arch, "keras-vae", batch_size, jit_compile, dataset,
                                settings.steps_per_execution)
                    )

    for round_ in range(settings.rounds):
        log(f"round {round_ + 1}/{settings.rounds}")
        for index in rng.permutation(len(variants)):
            variants[index].time(settings.seconds)
        peaks.append(matmul_gflops())
        loads.append(load_average())
    peak = statistics.median(peaks)

    rows = []
    for v in variants:
        flops = training_flops(v.model)
        rows.append({
            "architecture": v.arch.name,
            "implementation": v.implementation + (f" spe={v.spe}" if v.spe > 1 else ""),
            "batch_size": v.batch_size,
            "xla": v.jit_compile,
            "images_per_s": round(v.images_per_s, 1),
            "images_per_s_min": round(min(v.rates), 1),
            "images_per_s_max": round(max(v.rates), 1),
            "gflops_per_image": round(flops / 1e9, 4),
            "achieved_gflops": round(flops * v.images_per_s / 1e9, 2),
            "percent_of_peak": round(100 * flops * v.images_per_s / 1e9 / peak, 1),
            "first_step_s": round(v.first_step_s, 2),
            "peak_mib": None,
            "before_fit_mib": None,
        })

    measured = [
        (row, v.arch)
        for row, v in zip(rows, variants)
        if v.batch_size == settings.batch_sizes[-1]
        and v.spe == 1
        and v.implementation in settings.memory_implementations
    ]
    log(f"peak memory of {len(measured)} training processes")
    jobs = [(arch, row["implementation"], row["batch_size"], row["xla"]) for row, arch in measured]
    for (row, _), memory in zip(measured, peak_memory(jobs)):
        row["peak_mib"] = round(memory["peak_mib"])
        row["before_fit_mib"] = round(memory["before_fit_mib"])

    log("input pipelines")
    pipelines = [
        (source, size, channels,
         pipeline_images_per_s(source, size, channels, seconds=settings.seconds))
        for source, size, channels in (("paintings", 64, 3), ("fashion-mnist", 28, 1),
                                       ("mnist5k", 28, 1))
    ]
    live = []
    batch_size = settings.batch_sizes[len(settings.batch_sizes) // 2]
    for arch in settings.architectures:
        log(f"live pipeline {arch.name} batch {batch_size}")
        live.append((arch.name, batch_size) + live_over_cached(
            arch, batch_size, False, settings.seconds, settings.rounds
        ))
    extras = {"matmul_gflops": peak, "matmul_all": peaks, "pipelines": pipelines, "live": live}
    return rows, extras | {"load_averages": loads + [load_average()]}


# -- Reports -----------------------------------------------------------------


def ratio_table(rows):
    """Markdown: per architecture, batch and XLA, keras-vae vs plain."""
    lookup = {(r["architecture"], r["implementation"], r["batch_size"], r["xla"]): r for r in rows}
    lines = [
        "| architecture | batch | XLA | keras-vae img/s | plain img/s | keras-vae / plain "
        "| keras-vae GFLOP/s (% of peak) | first step keras-vae / plain (s) "
        "| peak RSS keras-vae / plain (MiB) |",
        "|---|---:|:-:|---:|---:|---:|---:|---:|---:|",
    ]
    for (arch, impl, batch, xla), ours in lookup.items():
        if impl != "keras-vae":
            continue
        plain = lookup[(arch, "plain", batch, xla)]
        memory = " / ".join(
            "–" if r["peak_mib"] is None else str(r["peak_mib"]) for r in (ours, plain)
        )
        lines.append(
            f"| {arch} | {batch} | {'on' if xla else 'off'} | {ours['images_per_s']:.0f} "
            f"| {plain['images_per_s']:.0f} | {ours['images_per_s'] / plain['images_per_s']:.2f} "
            f"| {ours['achieved_gflops']:.1f} ({ours['percent_of_peak']:.0f} %) "
            f"| {ours['first_step_s']:.1f} / {plain['first_step_s']:.1f} | {memory} |"
        )
    return "\n".join(lines)


def steps_per_execution_table(rows):
    lookup = {(r["architecture"], r["implementation"], r["batch_size"], r["xla"]): r for r in rows}
    lines = [
        "| architecture | batch | XLA | steps_per_execution | img/s | vs 1 step |",
        "|---|---:|:-:|---:|---:|---:|",
    ]
    for (arch, impl, batch, xla), row in lookup.items():
        if impl.startswith("keras-vae spe="):
            base = lookup[(arch, "keras-vae", batch, xla)]
            lines.append(
                f"| {arch} | {batch} | {'on' if xla else 'off'} | {impl.split('=')[1]} "
                f"| {row['images_per_s']:.0f} | {row['images_per_s'] / base['images_per_s']:.2f} |"
            )
    return "\n".join(lines) if len(lines) > 2 else ""


def pipeline_table(extras, rows):
    best = {}
    for r in rows:
        best[r["architecture"]] = max(best.get(r["architecture"], 0), r["images_per_s"])
    lines = [
        "| data set (make_datasets, training pipeline) | image | pipeline alone img/s |",
        "|---|---|---:|",
    ]
    for source, size, channels, rate in extras["pipelines"]:
        lines.append(f"| {source} | {size}×{size}×{channels} | {rate:.0f} |")
    lines += [
        "",
        "| architecture | batch | keras-vae on the live pipeline img/s "
        "| on cached batches img/s | live / cached |",
        "|---|---:|---:|---:|---:|",
    ]
    for arch, batch, live, cached in extras["live"]:
        lines.append(f"| {arch} | {batch} | {live:.0f} | {cached:.0f} | {live / cached:.2f} |")
    return "\n".join(lines)


def write_csv(rows, path):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(path, buffer.getvalue())


def write_markdown(rows, extras, info, settings, path, elapsed_s):
    flops = {r["architecture"]: r["gflops_per_image"] for r in rows}
    spe = steps_per_execution_table(rows)
    text = f"""# Benchmarks

Generated by `python -m pipelines.benchmark{' --quick' if settings == QUICK else ''}` \
in {elapsed_s / 60:.1f} min on {info['date']}: {info['cpu']}, {info['cores']} cores, \
TensorFlow {info['tensorflow']}, Keras {info['keras']}, oneDNN \
(TF_ENABLE_ONEDNN_OPTS) {info['onednn']}. The 1-minute load average, sampled
at the start, after each round and at the end, was
{', '.join(f'{v:.1f}' for v in extras['load_averages'])} (the benchmark itself accounts for
about {info['cores']}; above that, other processes competed for the cores and
the rates are underestimates). Re-run it to measure your machine.

**Method.** Training images per second of keras-vae's `VAE.fit` against a plain
Keras loop (the Keras documentation's VAE example: a `Sampling` layer and a
hand-written BCE or squared-error + KL `train_step`) on the same networks
(`build_encoder`/`build_decoder`), the same optimizer (Adam) and the same
in-memory batches. Every variant is warmed up, then timed {settings.rounds}×
for about {settings.seconds:g} s in shuffled order; the tables give the median
(min–max in `benchmarks.csv`). FLOPs are counted analytically: 3 × the forward
FLOPs of the convolutions and dense layers ({', '.join(f'{k}: {v:.3f} GFLOP' for k, v in flops.items())}
per image and training step). Peak: a float32 {MATMUL_SIZE}×{MATMUL_SIZE}
`tf.matmul`, median {extras['matmul_gflops']:.1f} GFLOP/s over the run
(min {min(extras['matmul_all']):.1f}, max {max(extras['matmul_all']):.1f}).
First step: from the `fit` call to the end of batch 1 (tracing, XLA
compilation). Peak RSS: `VmHWM` of a fresh process training that variant at
batch {settings.batch_sizes[-1]} (the process holds TensorFlow itself, about
the "before fit" column of the CSV).

Architectures: 28×28×1, filters (32, 64), latent 16, Bernoulli, Fashion-MNIST;
64×64×3, filters (32, 64, 128), latent 32, Gaussian σ = {GAUSSIAN_SIGMA},
paintings (random crops).

## keras-vae against the plain Keras loop

{ratio_table(rows)}
{f'''
## steps_per_execution (keras-vae)

{spe}
''' if spe else ''}
## Input pipeline

{pipeline_table(extras, rows)}
"""
    files.write_text(path, text)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.benchmark", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a ~1-minute smoke run")
    parser.add_argument(
        "--output-dir", default=".", help="where BENCHMARKS.md and benchmarks.csv go"
    )
    parser.add_argument("--memory-worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker:
        _memory_worker(*args.memory_worker)
        return 0
    output = pathlib.Path(args.output_dir)
    if not output.is_dir():
        print(f"error: --output-dir {str(output)!r} is not a folder: create it first",
              file=sys.stderr)
        return 2
    settings = QUICK if args.quick else FULL
    start = time.perf_counter()
    rows, extras = run(settings)
    info = machine()
    elapsed = time.perf_counter() - start
    write_csv(rows, output / "benchmarks.csv")
    write_markdown(rows, extras, info, settings, output / "BENCHMARKS.md", elapsed)
    print()
    print(ratio_table(rows))
    print()
    print(steps_per_execution_table(rows))
    print()
    print(pipeline_table(extras, rows))
    print(f"\nwrote {output / 'BENCHMARKS.md'} and {output / 'benchmarks.csv'} "
          f"in {elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
