"""Image data for the VAE as `tf.data` pipelines: a folder, an array or an embedded set.

A folder is listed (`keras_vae.images.scan`), prepared once into a cache of
decoded uint8 pictures (`keras_vae.cache`) and streamed from it, a batch of
records at a time: a run holds the batches in flight, not the folder.
`keras_vae.sources` says where each source's pictures come from. The
pipelines here cut square views out of them (the center square, or random
squares at several scales), resize them to `image_size` and yield float32
batches (N, H, W, C) in [0, 1]: images only, no labels.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

# The names this module offered before decoding moved out of it.
from keras_vae.arrays import DATASETS_DIR, EMBEDDED, DataError, read_idx  # noqa: F401
from keras_vae.images import IMAGE_EXTENSIONS, image_files, load_image  # noqa: F401
from keras_vae.images import load_image_folder  # noqa: F401
from keras_vae.sources import MAX_SIDE, SMALL_FOLDER, pictures as _pictures  # noqa: F401

EPOCH_VIEWS = 1024  # Random crops per epoch when `crops_per_image` is None.
CROP_SCALES = (0.25, 1.0)  # Random crop side / the picture's shorter side.
FIXED_VIEWS = 5  # Squares per picture in the fixed views (see `_fixed_boxes`).


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What `make_datasets` built.

    `num_train`/`num_val` count source pictures; `train_samples`/`val_samples`
    count the images yielded per epoch (more with random crops, whose use
    `random_crops` says), over all workers. `cache` is the prepared folder
    read (`keras_vae.cache`), None for arrays and uncached folders.
    """

    name: str
    num_train: int
    num_val: int
    train_samples: int
    val_samples: int
    image_shape: tuple
    value_range: tuple = (0.0, 1.0)
    random_crops: bool = False
    cache: str | None = None


def split_indices(n, validation_split=0.1, seed=0):
    """Splits range(n) into (train, validation) indices, fixed by seed.

    The validation count is rounded up: any positive split holds out one.
    Validation indices keep their random order, so the first few validation
    images (the ones grids show) are a fair sample even of sorted data.
    """
    if not 0 <= validation_split < 1:
        raise DataError(
            f"validation_split must be in [0, 1), got {validation_split}"
        )
    num_val = math.ceil(n * validation_split)
    if num_val >= n:
        raise DataError(
            f"{n} image(s) are too few to hold out a validation set: "
            "add images or pass validation_split=0"
        )
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[num_val:]), order[:num_val]


def _finish(x, image_size, channels):
    """Square pictures (B, s, s, c) in 0..255 → float32 (B, image_size,
    image_size, channels) in [0, 1]."""
    x = tf.cast(x, "float32")
    if x.shape[1] != image_size:
        x = tf.image.resize(x, (image_size, image_size), antialias=True)
    if x.shape[-1] != channels:
        if channels == 3:
            x = tf.image.grayscale_to_rgb(x)
        else:
            x = tf.image.rgb_to_grayscale(x)
    return tf.clip_by_value(x / 255.0, 0.0, 1.0)


def _batches(pictures, indices, image_size, channels, batch_size, seed=None):
    """Batches of the squares `indices`, shuffled by `seed` unless None.

    Only indices are shuffled (a full shuffle of N int64s): pictures are read
    a batch at a time, so memory holds the batches in flight. Streamed
    uncached, unreadable pictures are dropped as they show up."""
    ds = tf.data.Dataset.from_tensor_slices(indices)
    if seed is not None:
        ds = ds.shuffle(len(indices), seed=seed)
    if pictures.decode is not None:
        ds = ds.map(pictures.decode, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.filter(lambda _, usable: usable)
        ds = ds.map(lambda square, _: square).batch(batch_size)
    else:
        ds = ds.batch(batch_size).map(pictures.read, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.map(lambda x: _finish(x, image_size, channels),
                  num_parallel_calls=tf.data.AUTOTUNE)


def _fixed_boxes(indices, sizes):
    """Five squares (index, top, left, side) per picture: its whole center
    square, and the four corner squares of half that side."""
    boxes = []
    for i in indices:
        height, width = sizes[i]
        side = min(height, width)
        half = max(1, side // 2)
        boxes += [
            (i, (height - side) // 2, (width - side) // 2, side),
            (i, 0, 0, half),
            (i, 0, width - half, half),
            (i, height - half, 0, half),
            (i, height - half, width - half, half),
        ]
    return np.array(boxes, np.int32).reshape(-1, 4)


def _random_box(i, key, sizes):
    """A square (index, top, left, side) in picture i, its side CROP_SCALES
    of the shorter side, drawn from the stateless seed `key`."""
    height, width = sizes[i][0], sizes[i][1]
    u = tf.random.stateless_uniform([3], key)
    low, high = CROP_SCALES
    shorter = tf.cast(tf.minimum(height, width), "float32")
    side = tf.maximum(
        1, tf.cast(shorter * (low + (high - low) * u[0]), "int32")
    )
    top = tf.cast(u[1] * tf.cast(height - side + 1, "float32"), "int32")
    left = tf.cast(u[2] * tf.cast(width - side + 1, "float32"), "int32")
    return tf.stack([tf.cast(i, "int32"), top, left, side])


def _random_boxes(indices, sizes, crops_per_image, seed):
    """`crops_per_image` random squares of each picture, shuffled; new ones
    each time the dataset is iterated, the same sequence for the same seed."""
    sizes = tf.constant(sizes)
    indices = np.tile(indices, crops_per_image)
    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip(
        tf.data.Dataset.from_tensor_slices(indices).shuffle(
            len(indices), seed=seed
        ),
        keys.batch(2),
    ).map(lambda i, key: _random_box(i, key, sizes))


def _crops(pictures, boxes, image_size, channels, batch_size):
    """Batches of the squares `boxes` (index, top, left, side) cut out of
    the pictures and resized to image_size."""

    def cut(box):
        i, top, left, side = tf.unstack(box)
        picture = pictures.read(i[None])[0]
        square = picture[top : top + side, left : left + side]
        return tf.image.resize(square, (image_size, image_size), antialias=True)

    return (
        boxes.map(cut, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .map(lambda x: _finish(x, image_size, channels))
    )


def _fixed_views(pictures, indices, image_size, channels, batch_size):
    """Batches of the `_fixed_boxes` of pictures `indices`, in order."""
    boxes = tf.data.Dataset.from_tensor_slices(_fixed_boxes(indices, pictures.sizes))
    return _crops(pictures, boxes, image_size, channels, batch_size)


def training_views(
    source, image_size=64, channels=3, batch_size=32, validation_split=0.1, seed=0,
    random_crops=None, cache=True, cache_dir=None,
):
    """The training pictures seen as validation sees the held-out ones.

    With random crops, the five fixed squares per picture that validation
    uses (`_fixed_boxes`); otherwise their center squares; in order, not
    shuffled. So reconstruction on training data and on held-out data can
    be compared view for view. Arguments as for `make_datasets`; a folder's
    cache prepared by `make_datasets` is read, not prepared again.
    """
    pictures = _pictures(source, image_size, channels, random_crops, cache, cache_dir)
    train, _ = split_indices(len(pictures.sizes), validation_split, seed)
    if pictures.random_crops:
        return _fixed_views(pictures, train, image_size, channels, batch_size)
    return _batches(pictures, train, image_size, channels, batch_size)


def make_datasets(
    source,
    image_size=64,
    channels=3,
    batch_size=32,
    validation_split=0.1,
    seed=0,
    random_crops=None,
    crops_per_image=None,
    cache=True,
    cache_dir=None,
    num_workers=1,
    worker_index=0,
    shuffle_seed=None,
):
    """Builds training and validation pipelines of image batches.

    Both yield float32 batches (N, image_size, image_size, channels) in
    [0, 1]. Pictures are split into training and validation by `seed`.

    Args:
        source: a folder of images (searched recursively, symlinks
            followed), the name of an embedded set (`EMBEDDED`), or an array
            (N, H, W[, C]) of uint8 in 0..255 or floats in [0, 1].
        image_size: side of the square images yielded, in px.
        channels: 1 (grayscale) or 3 (RGB).
        batch_size: images per batch.
        validation_split: fraction of the pictures held out (rounded up),
            0 for none.
        seed: fixes the split, the shuffling and the random crops.
        shuffle_seed: fixes the shuffling and the random crops instead, the
            split staying `seed`'s (several training seeds on one split);
            None: `seed`.
        random_crops: train on random squares of each picture, at scales
            `CROP_SCALES` of its shorter side, rather than on its center
            square; validation then uses five fixed squares per held-out
            picture (see `_fixed_boxes`). Pictures are kept whole, their
            longer side capped at max(MAX_SIDE, 2 * image_size) px. Defaults
            to True for `paintings` and folders of under SMALL_FOLDER files.
        crops_per_image: random crops per training picture per epoch;
            defaults to about EPOCH_VIEWS crops in all.
        cache: prepare a folder once into a cache of decoded pictures and
            read it (`keras_vae.cache`); False decodes every epoch. A
            folder streamed uncached is split over its files, the unreadable
            ones dropped when met; cached, over its usable pictures.
        cache_dir: where prepared folders are kept; default
            `keras_vae.cache.default_dir()`.
        num_workers, worker_index: this worker's part of the training
            pictures (every num_workers-th from worker_index), disjoint from
            the other workers'; the dataset then carries auto-sharding OFF.
            Validation is not divided.

    Returns:
        `(train_ds, val_ds, info)`: `val_ds` is None without validation
        pictures; `info` is a `DataInfo`.
    """
    if not 0 <= worker_index < num_workers:
        raise DataError(f"worker_index must be in [0, {num_workers}), got {worker_index}")
    pictures = _pictures(source, image_size, channels, random_crops, cache, cache_dir)
    train, val = split_indices(len(pictures.sizes), validation_split, seed)
    if len(train) < num_workers:
        raise DataError(f"{len(train)} training picture(s) cannot be divided among "
                        f"{num_workers} workers: add pictures or use fewer workers")
    mine = train[worker_index::num_workers]
    args = (image_size, channels, batch_size)
    order_seed = seed if shuffle_seed is None else shuffle_seed

    if pictures.random_crops:
        crops_per_image = crops_per_image or math.ceil(EPOCH_VIEWS / len(train))
        boxes = _random_boxes(mine, pictures.sizes, crops_per_image, order_seed)
        train_ds = _crops(pictures, boxes, *args)
        val_ds = _fixed_views(pictures, val, *args)
        train_samples = len(train) * crops_per_image
        val_samples = len(val) * FIXED_VIEWS
    else:
        train_ds = _batches(pictures, mine, *args, seed=order_seed)
        val_ds = _batches(pictures, val, *args)
        train_samples, val_samples = len(train), len(val)
    if num_workers > 1:  # Already divided: tf.distribute must not shard it again.
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF)
        train_ds = train_ds.with_options(options)

    info = DataInfo(
        name=pictures.name,
        num_train=len(train),
        num_val=len(val),
        train_samples=train_samples,
        val_samples=val_samples,
        image_shape=(image_size, image_size, channels),
        random_crops=pictures.random_crops,
        cache=pictures.cache,
    )
    val_ds = val_ds.prefetch(tf.data.AUTOTUNE) if len(val) else None
    return train_ds.prefetch(tf.data.AUTOTUNE), val_ds, info
