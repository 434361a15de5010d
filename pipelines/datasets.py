"""The data of a config: `keras_vae.data` called with its [data] table.

Example:

    >>> from pipelines import config as config_lib
    >>> config = config_lib.load_config(overrides={
    ...     "data.source": "digits", "data.image_size": 8, "data.channels": 1,
    ...     "model.filters": [4, 8]})
    >>> train_ds, val_ds, info = from_config(config)
    >>> info.image_shape
    (8, 8, 1)
"""

import numpy as np

from keras_vae import data as data_lib
from pipelines import distribution


def from_config(config, source=None, batch_size=None, shuffle_seed=None):
    """`keras_vae.data.make_datasets` for the [data] table of `config`:
    (train_ds, val_ds, info). `source` and `batch_size` override the config's;
    `shuffle_seed` changes the training crops and their order, not the split.
    Under `--strategy multiworker` each worker gets its own part of the
    training pictures (`distribution.input_shard`)."""
    d = config["data"]
    num_workers, worker_index = 1, 0
    if config["train"]["strategy"] == "multiworker":
        num_workers, worker_index = distribution.input_shard()
    return data_lib.make_datasets(
        source or d["source"], image_size=d["image_size"], channels=d["channels"],
        batch_size=batch_size or config["train"]["batch_size"],
        validation_split=d["validation_split"], seed=d["seed"],
        random_crops=d["random_crops"], crops_per_image=d["crops_per_image"],
        cache=d["cache"], cache_dir=d["cache_dir"],
        num_workers=num_workers, worker_index=worker_index, shuffle_seed=shuffle_seed,
    )


def training_views(config):
    """`keras_vae.data.training_views` for the [data] table of `config`: the
    training pictures seen as validation sees the held-out ones."""
    d = config["data"]
    return data_lib.training_views(
        d["source"], d["image_size"], d["channels"], config["train"]["batch_size"],
        d["validation_split"], d["seed"], d["random_crops"], d["cache"], d["cache_dir"],
    )


def first_images(ds, limit):
    """The first `limit` images of a batched dataset, one numpy array."""
    batches, count = [], 0
    for batch in ds:
        batches.append(batch.numpy())
        count += len(batches[-1])
        if count >= limit:
            break
    return np.concatenate(batches)[:limit]
