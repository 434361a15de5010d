"""`tf.distribute` for the pipelines: strategies by name, the chief, sharding.

    keras-vae train --strategy mirrored        # every GPU of this machine
    TF_CONFIG=... keras-vae train --strategy multiworker

Under MultiWorkerMirroredStrategy only the chief writes the run folder; the
other workers train in a private folder of their own.
"""

import json
import os
import pathlib
import tempfile

import keras
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker")
#: Keras versions whose private `reduce_per_replica` the multi-worker fix
#: below was checked against (tensorflow/tensorflow#72388).
PATCHED_KERAS = ("3.15.",)


def make_strategy(name):
    """A `tf.distribute` strategy by name; "multiworker" reads TF_CONFIG."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        _reduce_scalar_logs_across_workers()
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}")


def _reduce_scalar_logs_across_workers():
    """Works around tensorflow/tensorflow#72388 in Keras 3's TF trainer.

    Under MultiWorkerMirroredStrategy, Keras reduces `fit`'s logs with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on the scalar logs
    that every model returns ("Invalid reduction dimension 0 for input with 0
    dimensions"). Scalars are reduced across replicas only (axis=None); all
    other values go through Keras's reduction unchanged. The wrapped function
    is private: other Keras versions raise a one-line error instead of a
    silent change of behaviour.
    """
    if not keras.__version__.startswith(PATCHED_KERAS):
        raise ValueError(
            f"--strategy multiworker relies on a fix checked with Keras "
            f"{', '.join(v + 'x' for v in PATCHED_KERAS)}, not {keras.__version__}: install "
            "the pinned versions (setup.cfg), or check pipelines.distribution against "
            "this Keras and add it to PATCHED_KERAS"
        )
    from keras.src.backend.tensorflow import trainer  # The function to wrap.

    keras_reduce = trainer.reduce_per_replica
    if getattr(keras_reduce, "_reduces_scalars", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tf.nest.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None)
                if v.shape.rank == 0 else keras_reduce(v, strategy, reduction),
                values,
            )
        return keras_reduce(values, strategy, reduction)

    reduce_per_replica._reduces_scalars = True
    trainer.reduce_per_replica = reduce_per_replica


def is_chief(strategy):
    """True unless this process is a non-chief worker of a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_dir(strategy, name):
    """A non-chief worker's private folder: the same one on every restart, so
    the worker resumes too, and outside the run folder the chief owns."""
    resolver = strategy.cluster_resolver
    worker = f"keras-vae-{resolver.task_type}-{resolver.task_id}"
    return pathlib.Path(tempfile.gettempdir()) / worker / name


def input_shard():
    """(number of workers, this worker's index) of the cluster in TF_CONFIG,
    the chief first; (1, 0) without one. Each worker reads the training
    pictures `keras_vae.data.make_datasets` gives that index, a disjoint part."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    cluster, task = config.get("cluster", {}), config.get("task", {})
    chiefs, workers = len(cluster.get("chief", [])), len(cluster.get("worker", []))
    if not workers + chiefs or task.get("type") not in ("chief", "worker"):
        return 1, 0
    index = int(task.get("index", 0)) + (chiefs if task["type"] == "worker" else 0)
    return chiefs + workers, index


def distribute(ds, strategy):
    """Repeats `ds` (steps are counted explicitly) and, across workers, shards
    its batches, unless `make_datasets` already gave each worker its own
    pictures (its auto-shard policy is then OFF)."""
    ds = ds.repeat()
    already = tf.data.experimental.AutoShardPolicy.OFF
    if (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and ds.options().experimental_distribute.auto_shard_policy != already):
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        ds = ds.with_options(options)
    return ds
