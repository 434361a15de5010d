"""A benchmark run, one step per measurement: training speed in paired
rounds (`timing`), FLOP/s against measured matmul peaks, first step, memory
(`memory`), the ELBO after a fixed number of steps (`quality`) and the
input pipelines (`input_pipeline`); `run` returns them as typed `Results`.

The presets (`FULL`, `QUICK`, `GPU`, `tiny`) live in `workloads` and are
named here too, as `python -m benchmarks` chooses them.
"""

import datetime
import os
import platform

import keras
import numpy as np
import tensorflow as tf

from benchmarks import input_pipeline, memory, quality, timing, workloads
from benchmarks.results import LiveRate, Results, Row, Spread
from benchmarks.workloads import FULL, GPU, QUICK, tiny
from keras_vae import precision as precision_lib

__all__ = ["FULL", "GPU", "QUICK", "tiny", "run", "load_average", "machine"]


def run(settings, log=print):
    """Measures everything `settings` asks for; returns `Results`."""
    results = Results(rows=[], matmul_gflops={}, load_averages=[load_average()])
    timing.warm_up_tensorflow()
    rng = np.random.default_rng(0)
    for arch in settings.architectures:
        images = workloads.cached_images(arch)
        for batch_size in settings.batch_sizes:
            variants = _warm_up(arch, batch_size, images, settings, log)
            _time(variants, settings, rng, results, log)
            results.rows += _rows(variants)
    for row in results.rows:
        dtype_peak = results.peak(row.peak_dtype)
        row.percent_of_peak = round(100 * row.gflops_per_image * row.images_per_s.median
                                    / dtype_peak, 1)
    if settings.memory:
        _measure_memory(results.rows, settings, log)
    if settings.elbo_steps:
        arch = settings.architectures[-1]
        log(f"validation ELBO after {settings.elbo_steps} steps, {arch.name}")
        results.elbo = quality.elbo_runs(arch, settings.elbo_steps, settings.elbo_batch_size,
                                         scored_in=settings.scored_in)
        results.load_averages.append(load_average())
    _input_pipelines(settings, results, log)
    results.load_averages.append(load_average())
    return results


def _warm_up(arch, batch_size, images, settings, log):
    """The variants of one architecture and batch, built and warmed up:
    every implementation uncompiled, and compiled where `settings.xla` says."""
    dataset = workloads.cached_batches(images, batch_size)
    compiled = (False, True) if (arch.name, batch_size) in settings.xla else (False,)
    variants = []
    for jit_compile in compiled:
        for implementation, precision in settings.implementations:
            log(f"warming up {arch.name} {implementation} {precision} batch {batch_size} "
                f"xla={jit_compile}")
            variants.append(timing.warm_up(arch, implementation, precision, batch_size,
                                           jit_compile, dataset, settings.seconds))
    return variants


def _time(variants, settings, rng, results, log):
    """`settings.rounds` paired rounds of `variants`, each followed by the
    matmul peak of every dtype and the load average."""
    dtypes = sorted({timing.PEAK_DTYPES[v.policy] for v in variants} | {"float32", "bfloat16"})
    count = iter(range(1, settings.rounds + 1))

    def after_round():
        for dtype in dtypes:
            results.matmul_gflops.setdefault(dtype, []).append(timing.matmul_gflops(dtype))
        results.load_averages.append(load_average())
        log(f"  round {next(count)}/{settings.rounds}: load {results.load_averages[-1]:.1f}")

    log(f"timing {len(variants)} variants, {settings.rounds} rounds of "
        f"~{settings.seconds:g} s each")
    timing.time_rounds(variants, settings.rounds, rng, after_round)


def _rows(variants):
    """A `Row` per variant, its ratios paired with the plain loop of the
    same compilation and, compiled, with itself uncompiled; then the models
    are let go (percent_of_peak is filled once every peak is measured)."""
    by_key = {(v.implementation, v.precision, v.jit_compile): v for v in variants}
    rows = []
    for v in variants:
        plain = by_key.get(("plain", "float32", v.jit_compile))
        uncompiled = by_key.get((v.implementation, v.precision, False))
        paired = plain is not None and plain is not v
        rows.append(Row(
            v.arch.name, v.implementation, v.precision, v.policy, v.batch_size, v.jit_compile,
            images_per_s=Spread.of(v.wall), images_per_cpu_s=Spread.of(v.cpu),
            rounds=len(v.wall),
            gflops_per_image=round(workloads.training_flops(v.model) / 1e9, 4),
            peak_dtype=timing.PEAK_DTYPES[v.policy], percent_of_peak=None,
            first_step_s=round(v.first_step_s, 2),
            vs_plain=timing.paired(v, plain) if paired else None,
            vs_plain_cpu=timing.paired(v, plain, cpu=True) if paired else None,
            vs_uncompiled=timing.paired(v, uncompiled) if v.jit_compile and uncompiled else None,
        ))
    for v in variants:
        v.model = None
    return rows


def _measure_memory(rows, settings, log):
    """Fills `peak_mib` and `before_fit_mib` of the rows at the largest batch,
    uncompiled, from fresh training processes (`memory.peak_memory`)."""
    measured = [row for row in rows if row.batch_size == settings.batch_sizes[-1] and not row.xla]
    log(f"peak memory of {len(measured)} training processes")
    jobs = [(workloads.architecture(row.architecture), row.implementation, row.precision,
             row.batch_size, row.xla) for row in measured]
    for row, result in zip(measured, memory.peak_memory(jobs)):
        row.peak_mib = round(result["peak_mib"])
        row.before_fit_mib = round(result["before_fit_mib"])


def _input_pipelines(settings, results, log):
    """Each input pipeline of `settings.pipelines` alone, then each
    architecture's live pipeline against cached batches, at the last batch."""
    log("input pipelines")
    results.pipelines = [
        (source, size, channels, input_pipeline.pipeline_images_per_s(
            source, size, channels, seconds=max(settings.seconds, 0.1)))
        for source, size, channels in settings.pipelines
    ]
    batch_size = settings.batch_sizes[-1]
    for arch in settings.architectures:
        log(f"live pipeline {arch.name} batch {batch_size}")
        live, cached = input_pipeline.live_over_cached(arch, batch_size, settings.seconds,
                                                       settings.rounds)
        results.live.append(LiveRate(arch.name, batch_size, live, cached))


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
