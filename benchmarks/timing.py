"""Paired, interleaved timing of training steps on a shared, noisy machine.

The variants of one (architecture, batch) are timed in rounds: each round
trains every variant for one block of steps (about `Settings.seconds` long),
in a seeded random order, so that what other processes do to the cores falls
on all of them alike. A ratio between two variants is taken per round and
its median reported with its quartiles; one slow block moves one ratio, not
the verdict. Each block is timed in wall-clock and in process CPU time (all
threads), the second being what other processes on the cores change least.
"""

import dataclasses
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

import keras_vae
from benchmarks import workloads
from benchmarks.results import Spread

MATMUL_SIZE = 2048
#: Dtype of the matmul peak each policy is measured against.
PEAK_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


class _Span(keras.callbacks.Callback):
    """perf_counter and process_time at the start and end of `fit`'s training
    loop (after `fit`'s set-up, the same for every variant), and when each
    batch ends; no batch hook, so Keras keeps dispatching callbacks off the
    step loop as it does for any model."""

    def on_train_begin(self, logs=None):
        self.start = (time.perf_counter(), time.process_time())

    def on_train_end(self, logs=None):
        self.end = (time.perf_counter(), time.process_time())

    @property
    def seconds(self):
        """(wall, CPU) seconds of the training loop."""
        return self.end[0] - self.start[0], self.end[1] - self.start[1]


class _FirstStep(keras.callbacks.Callback):
    """When the first batch ends (perf_counter)."""

    def on_train_batch_end(self, batch, logs=None):
        if batch == 0:
            self.end = time.perf_counter()


@dataclasses.dataclass
class Variant:
    """One model trained on one data set: built and warmed up by `warm_up`,
    then timed block by block (`time_block`).

    Attributes:
        steps: training steps of one timed block.
        first_step_s: from building the model to the end of its first step, s.
        wall, cpu: img/s of each timed block, by wall clock and by process
            CPU time.
    """

    arch: workloads.Architecture
    implementation: str
    precision: str
    batch_size: int
    jit_compile: bool
    model: keras.Model
    dataset: tf.data.Dataset
    first_step_s: float
    steps: int = 1
    wall: list = dataclasses.field(default_factory=list)
    cpu: list = dataclasses.field(default_factory=list)

    @property
    def label(self):
        return f"{self.arch.name} {self.implementation} {self.precision} batch {self.batch_size}" \
               f" xla={self.jit_compile}"

    @property
    def policy(self):
        return workloads.policy_of(self.model)

    def fit(self, steps):
        """Trains `steps` steps; (wall, CPU) seconds of the training loop."""
        span = _Span()
        self.model.fit(self.dataset, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0,
                       callbacks=[span])
        return span.seconds

    def time_block(self):
        """Trains one block of `steps` steps and records its rates."""
        wall, cpu = self.fit(self.steps)
        self.wall.append(self.steps * self.batch_size / wall)
        self.cpu.append(self.steps * self.batch_size / cpu)


def warm_up(arch, implementation, precision, batch_size, jit_compile, dataset, seconds):
    """A `Variant`, built, its first step timed (building is part of it:
    resolving "auto" and the per-layer policies cost what they cost), then
    its block length set to about `seconds` from a few more steps."""
    first = _FirstStep()
    start = time.perf_counter()
    model = workloads.build_model(arch, implementation, precision, jit_compile)
    model.fit(dataset, epochs=1, steps_per_epoch=2, shuffle=False, verbose=0, callbacks=[first])
    variant = Variant(arch, implementation, precision, batch_size, jit_compile, model, dataset,
                      first_step_s=first.end - start)
    calibration = 3
    wall, _ = variant.fit(calibration)
    variant.steps = max(1, round(seconds / (wall / calibration)))
    return variant


def time_rounds(variants, rounds, rng, after_round=lambda: None):
    """Times every variant once per round, in an order drawn from `rng` (a
    numpy Generator) each round; calls `after_round()` after each."""
    for _ in range(rounds):
        for index in rng.permutation(len(variants)):
            variants[index].time_block()
        after_round()


def paired(ours, base, cpu=False):
    """The `Spread` of `ours`' rate over `base`'s, one ratio per round."""
    a, b = (ours.cpu, base.cpu) if cpu else (ours.wall, base.wall)
    return Spread.of([x / y for x, y in zip(a, b, strict=True)])


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
