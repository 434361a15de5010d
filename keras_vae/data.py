"""Image data for the VAE as `tf.data` pipelines: a folder, an array or an embedded set.

A folder is listed (`keras_vae.images.scan`), prepared once into a cache of
decoded uint8 pictures (`keras_vae.cache`) and streamed from it: a run holds
the batches in flight, not the folder. Without a cache (`cache=False`, or
one that cannot be written) pictures are decoded as they are needed. Arrays
and the embedded array sets are held in memory. The pipelines cut square
views out of the pictures (the center square, or random squares at several
scales), resize them to `image_size` and yield float32 batches
(N, H, W, C) in [0, 1]: images only, no labels.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from keras_vae import cache as cache_lib
from keras_vae import images as images_lib
from keras_vae.arrays import ARRAY_SETS, DATASETS_DIR, EMBEDDED, DataError  # noqa: F401
from keras_vae.arrays import as_uint8_images, read_idx  # noqa: F401
from keras_vae.images import IMAGE_EXTENSIONS, image_files, load_image  # noqa: F401
from keras_vae.images import load_image_folder  # noqa: F401

SMALL_FOLDER = 100  # Folders with fewer image files default to random crops.
MAX_SIDE = 256  # px; least cap on the longer side of pictures kept whole.
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


@dataclasses.dataclass(frozen=True)
class _Pictures:
    """A source's pictures: `read(indices)` gives their uint8 records
    (k, H, W, C) as a tensor, each padded to the largest; `sizes` (N, 2) their
    (height, width) in px. A folder streamed uncached has `decode` instead,
    (index) -> (square, usable?), since a broken file shows only then."""

    name: str
    sizes: np.ndarray
    random_crops: bool
    read: object = None
    decode: object = None
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


def _in_memory(name, images, sizes, random_crops):
    """`_Pictures` of a uint8 array (N, H, W, C): whole for random crops,
    else their center squares."""
    if not random_crops:
        height, width = images.shape[1:3]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        images = images[:, top : top + side, left : left + side]
    pictures = tf.constant(images)
    return _Pictures(name, sizes, random_crops, read=lambda i: tf.gather(pictures, i))


def _cached(name, prepared, random_crops):
    """`_Pictures` read from a prepared folder, a batch of records per call."""
    shape = (None, *prepared.record_shape)

    def read(i):
        records = tf.numpy_function(prepared.read, [i], tf.uint8, stateful=False)
        return tf.ensure_shape(records, shape)

    if prepared.skipped:  # Found when the folder was prepared; said once by every run.
        images_lib.warn_once(images_lib.skip_message(name, prepared.skipped))
    return _Pictures(name, prepared.sizes, random_crops, read=read, cache=str(prepared.path))


def _streamed(name, listing, image_size, channels):
    """`_Pictures` of a folder's center squares decoded as they are needed."""
    shape = (image_size, image_size, channels)

    def decode(i):
        file = listing.files[int(i)]
        picture, reason = images_lib.try_load(file, image_size, channels)
        if picture is None:
            images_lib.warn_once(
                f"Skipped unreadable image file {str(file)!r} ({reason}) while streaming "
                f"{name!r} uncached; other unreadable files are skipped without a message")
            return np.zeros(shape, np.uint8), np.array(False)
        return picture, np.array(True)

    def decode_tensor(i):
        square, usable = tf.numpy_function(decode, [i], (tf.uint8, tf.bool), stateful=False)
        return tf.ensure_shape(square, shape), tf.ensure_shape(usable, ())

    sizes = np.full((len(listing.files), 2), image_size, np.int32)
    return _Pictures(name, sizes, False, decode=decode_tensor)


_decoded = {}  # The last uncached folder decoded whole: (key) -> _Pictures.


def _folder(source, image_size, channels, random_crops, cache, cache_dir):
    """`_Pictures` of a folder (or "paintings"): from its prepared cache,
    else decoded whole (random crops: a small folder) or streamed."""
    name = str(source)
    folder = DATASETS_DIR / "paintings" if source == "paintings" else source
    listing = images_lib.scan(folder)
    images_lib.warn_unreadable_folders(listing)
    if not listing.files:
        raise images_lib.no_images(folder)
    if random_crops is None:
        random_crops = source == "paintings" or len(listing.files) < SMALL_FOLDER
    spec = cache_lib.Spec(None if random_crops else image_size,
                          max(MAX_SIDE, 2 * image_size), channels)
    prepared = cache_lib.open_or_prepare(listing, spec, cache_dir) if cache else None
    if prepared is not None:
        return _cached(name, prepared, random_crops)
    if not random_crops:
        return _streamed(name, listing, image_size, channels)
    key = spec.key(listing)  # Decoded once per process: runs read the views twice.
    if key not in _decoded:
        images, sizes, _ = images_lib.load_image_folder(folder, None, channels, spec.max_side)
        _decoded.clear()
        _decoded[key] = _in_memory(name, images, sizes, True)
    return _decoded[key]


def _pictures(source, image_size, channels, random_crops, cache=True, cache_dir=None):
    """The `_Pictures` of any source, `random_crops` resolved."""
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    if isinstance(source, np.ndarray) or source in ARRAY_SETS:
        name = "array" if isinstance(source, np.ndarray) else source
        images = as_uint8_images(source if name == "array" else ARRAY_SETS[source]())
        sizes = np.tile(np.int32(images.shape[1:3]), (len(images), 1))
        return _in_memory(name, images, sizes, bool(random_crops))
    return _folder(source, image_size, channels, random_crops, cache, cache_dir)


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

    if pictures.random_crops:
        crops_per_image = crops_per_image or math.ceil(EPOCH_VIEWS / len(train))
        boxes = _random_boxes(mine, pictures.sizes, crops_per_image, seed)
        train_ds = _crops(pictures, boxes, *args)
        val_ds = _fixed_views(pictures, val, *args)
        train_samples = len(train) * crops_per_image
        val_samples = len(val) * FIXED_VIEWS
    else:
        train_ds = _batches(pictures, mine, *args, seed=seed)
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
