"""Input pipelines: `make_datasets` iterated alone, and keras-vae fed live
against cached batches."""

import time

import numpy as np

from benchmarks import timing, workloads
from keras_vae import data as data_lib


def pipeline_images_per_s(source, image_size, channels, batch_size=128, seconds=3.0):
    """Images per second of iterating `make_datasets`' training pipeline alone
    for about `seconds`."""
    train, _, _ = data_lib.make_datasets(source, image_size, channels, batch_size=batch_size)
    iterator = iter(train.repeat())
    next(iterator)  # Pipeline start-up is not throughput.
    images, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        images += int(next(iterator).shape[0])
    return images / (time.perf_counter() - start)


def live_over_cached(arch, batch_size, seconds, rounds):
    """keras-vae (automatic precision) trained on the live `make_datasets`
    pipeline and on cached batches in paired rounds: (live, cached) img/s,
    the medians of the blocks."""
    train, _, _ = data_lib.make_datasets(arch.source, arch.shape[0], arch.shape[-1], batch_size)
    images = workloads.cached_images(arch)
    variants = [
        timing.warm_up(arch, "keras-vae", "auto", batch_size, False, dataset, seconds)
        for dataset in (train.repeat(), workloads.cached_batches(images, batch_size))
    ]
    timing.time_rounds(variants, rounds, np.random.default_rng(0))
    live, cached = (float(np.median(v.wall)) for v in variants)
    return live, cached
