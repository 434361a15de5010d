"""Where a source's pictures come from, as `tf.data` building blocks.

An array is held in memory; a folder is read from its prepared cache
(`keras_vae.cache`, a batch of records per call), or, uncached, decoded
whole into memory (random crops: a small folder) or decoded as needed.
`keras_vae.data` cuts views out of the pictures.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_vae import cache as cache_lib
from keras_vae import images as images_lib
from keras_vae.arrays import ARRAY_SETS, DATASETS_DIR, DataError, as_uint8_images

SMALL_FOLDER = 100  # Folders with fewer image files default to random crops.
MAX_SIDE = 256  # px; least cap on the longer side of pictures kept whole.


@dataclasses.dataclass(frozen=True)
class Pictures:
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


def _in_memory(name, images, sizes, random_crops):
    """`Pictures` of a uint8 array (N, H, W, C): whole for random crops,
    else their center squares."""
    if not random_crops:
        height, width = images.shape[1:3]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        images = images[:, top : top + side, left : left + side]
    pictures = tf.constant(images)
    return Pictures(name, sizes, random_crops, read=lambda i: tf.gather(pictures, i))


def _cached(name, prepared, random_crops):
    """`Pictures` read from a prepared folder, a batch of records per call."""
    shape = (None, *prepared.record_shape)

    def read(i):
        records = tf.numpy_function(prepared.read, [i], tf.uint8, stateful=False)
        return tf.ensure_shape(records, shape)

    if prepared.skipped:  # Found when the folder was prepared; said once by every run.
        images_lib.warn_once(images_lib.skip_message(name, prepared.skipped))
    return Pictures(name, prepared.sizes, random_crops, read=read, cache=str(prepared.path))


def _streamed(name, listing, image_size, channels):
    """`Pictures` of a folder's center squares decoded as they are needed."""
    shape = (image_size, image_size, channels)

    def decode(i):
        file = listing.path(int(i))
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

    sizes = np.full((len(listing.names), 2), image_size, np.int32)
    return Pictures(name, sizes, False, decode=decode_tensor)


_decoded = {}  # The last uncached folder decoded whole: {key: Pictures}.


def _folder(source, image_size, channels, random_crops, cache, cache_dir):
    """`Pictures` of a folder (or "paintings"): from its prepared cache,
    else decoded whole (random crops: a small folder) or streamed."""
    name = str(source)
    folder = DATASETS_DIR / "paintings" if source == "paintings" else source
    listing = images_lib.scan(folder)
    images_lib.warn_unreadable_folders(listing)
    if not listing.names:
        raise images_lib.no_images(folder)
    if random_crops is None:
        random_crops = source == "paintings" or len(listing.names) < SMALL_FOLDER
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


def pictures(source, image_size, channels, random_crops, cache=True, cache_dir=None):
    """The `Pictures` of any source, `random_crops` resolved."""
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    if isinstance(source, np.ndarray) or source in ARRAY_SETS:
        name = "array" if isinstance(source, np.ndarray) else source
        images = as_uint8_images(source if name == "array" else ARRAY_SETS[source]())
        sizes = np.tile(np.int32(images.shape[1:3]), (len(images), 1))
        return _in_memory(name, images, sizes, bool(random_crops))
    return _folder(source, image_size, channels, random_crops, cache, cache_dir)
