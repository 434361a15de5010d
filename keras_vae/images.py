"""Image files decoded with Pillow into uint8 NumPy arrays; no TensorFlow.

`scan` lists a folder (recursively, symlinked subfolders followed, hidden
names left out); `load_image` decodes one file whatever its mode or bit
depth; `decode_files` decodes many in parallel threads, in order, holding
only a bounded number at a time. `keras_vae.cache` prepares a folder once
with them and `keras_vae.data` turns the pictures into `tf.data` pipelines.
"""

import concurrent.futures
import dataclasses
import logging
import os
import pathlib
import warnings

import numpy as np
from PIL import Image
from PIL import ImageOps

from keras_vae.arrays import DataError, WHAT_TO_DO

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
#: Most pixels a picture may decode to (after JPEG's reduced-size decoding):
#: a 144-Mpx PNG of 168 KB would take 1.6 GB. 64 Mpx is over 8K video
#: (33 Mpx) and 50-Mpx camera sensors; larger files are skipped with a reason.
MAX_PIXELS = 64_000_000
SHOW_SKIPPED = 5  # Skipped files named in the warning; the rest are counted.
#: Decodes in flight per thread in `decode_files`: enough to keep the threads
#: busy, few enough that memory does not grow with the folder.
IN_FLIGHT_PER_THREAD = 8

# Pillow warns (DecompressionBombWarning) from 89 Mpx; MAX_PIXELS replaces
# that warning with a skip and its reason in the one skip warning.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

logger = logging.getLogger("keras_vae.data")
_warned = set()


@dataclasses.dataclass(frozen=True)
class Listing:
    """What `scan` found: the image files as `names` relative to `folder`
    ("/"-separated, sorted as `pathlib` sorts their paths), each one's
    (bytes, mtime in ns) in `stats`, and the subfolders it could not open
    (`unreadable`). Names are strings: 100,000 of them cost milliseconds."""

    folder: pathlib.Path
    names: list
    stats: list
    unreadable: list

    @property
    def files(self):
        """Each file's path, a `pathlib.Path`, in the order of `names`."""
        return [self.folder / name for name in self.names]

    def path(self, i):
        """The path of file `i`, a string."""
        return os.path.join(self.folder, self.names[i])


def scan(path):
    """Lists the image files under `path` (a `Listing`), searched recursively.

    Symlinked files and subfolders are followed; a folder reached twice (a
    symlink loop, or two links to one folder) is read once. Hidden names (a
    file or folder starting with ".", such as macOS's ._photo.jpg or
    .thumbnails/) are left out. Subfolders that cannot be opened are named
    in `unreadable`, not fatal.
    """
    folder = pathlib.Path(path)
    if not folder.is_dir():
        what = "is neither a folder nor an embedded data set"
        if folder.exists():
            what = "is a file, not a folder"
        raise DataError(f"{str(path)!r} {what}: {WHAT_TO_DO}")
    listing = Listing(folder, [], [], [])
    _walk(str(folder), "", listing, set())
    return listing


def _walk(current, prefix, listing, seen):
    """Adds the image files under the folder `current` (their names starting
    with `prefix`) to `listing`, in pathlib's order without a global sort:
    each folder's entries sorted by name, a subfolder's files where its name
    sorts. `seen` holds the (device, inode) of the folders already read."""
    try:
        status = os.stat(current)
        if (status.st_dev, status.st_ino) in seen:
            return
        seen.add((status.st_dev, status.st_ino))
        with os.scandir(current) as entries:
            entries = sorted(entries, key=lambda entry: entry.name)
    except OSError:
        if not prefix:
            raise DataError(f"cannot open the folder {current!r}: check its permissions "
                            "or pass another folder as `source`") from None
        listing.unreadable.append(prefix.rstrip("/"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir():
                _walk(entry.path, prefix + entry.name + "/", listing, seen)
            elif entry.name.lower().endswith(IMAGE_EXTENSIONS) and entry.is_file():
                stat = entry.stat()  # Follows a symlink to the file it names.
                listing.names.append(prefix + entry.name)
                listing.stats.append((stat.st_size, stat.st_mtime_ns))
        except OSError:  # A broken symlink, or removed since listed.
            continue


def image_files(path):
    """The image files under `path`, sorted: `scan(path).files`."""
    return scan(path).files


def warn_unreadable_folders(listing):
    """One warning naming the subfolders `scan` could not open (once per process)."""
    if listing.unreadable:
        names = ", ".join(listing.unreadable[:SHOW_SKIPPED])
        more = len(listing.unreadable) - SHOW_SKIPPED
        warn_once(
            f"Could not open {len(listing.unreadable)} subfolder(s) of {str(listing.folder)!r}: "
            f"{names}{f' and {more} more' if more > 0 else ''}; their images are left out "
            "(check their permissions)"
        )


def warn_once(message):
    """Logs `message` as a warning unless this process already did: the
    training pipeline and the training views read one folder, one warning."""
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


class TooLarge(ValueError):
    """A picture over `MAX_PIXELS`; the message is the skip reason."""


def load_image(path, image_size=None, channels=3, max_side=None):
    """Decodes an image file with Pillow into uint8 (H, W, channels).

    Any mode or bit depth is accepted: 16-bit grayscale is scaled to 8 bits,
    transparency is composited on white and animations give their first
    frame; EXIF orientation is applied, so phone photos stand as every
    viewer shows them. With `image_size`, the shorter side is resized to
    `image_size` px and the center square is kept; else with `max_side`, the
    picture is shrunk (never enlarged) so that its longer side is at most
    `max_side` px. Raises `TooLarge` for a picture over `MAX_PIXELS` (checked
    from the header, before decoding) and Pillow's errors for broken files.
    """
    target = image_size or max_side
    with Image.open(path) as image:
        if target:
            image.draft(None, (target, target))  # JPEG: decode at 1/2..1/8.
        if image.width * image.height > MAX_PIXELS:
            raise TooLarge(f"{image.width}×{image.height} px, over the limit of "
                           f"{MAX_PIXELS:,} pixels")
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


def try_load(path, image_size=None, channels=3, max_side=None):
    """`(picture, None)`, or `(None, reason)` for a file that cannot be used:
    a user's broken file is skipped, never fatal."""
    try:
        return load_image(path, image_size, channels, max_side), None
    except (TooLarge, Image.DecompressionBombError) as error:  # Pillow's: over 179 Mpx.
        return None, str(error)
    except Exception as error:  # Pillow raises many types for broken files.
        return None, f"unreadable: {error}"


def decode_files(files, image_size=None, channels=3, max_side=None, threads=None):
    """Yields `try_load` of each file, in order, decoded in parallel threads
    (Pillow decodes and resizes without holding the GIL); at most
    IN_FLIGHT_PER_THREAD pictures per thread wait to be consumed."""
    threads = threads or os.cpu_count() or 1
    window = threads * IN_FLIGHT_PER_THREAD
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        pending = []
        for file in files:
            pending.append(pool.submit(try_load, file, image_size, channels, max_side))
            if len(pending) >= window:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


def skip_message(folder, skipped):
    """The one warning for skipped files: `skipped` is [(name, reason)], each
    name relative to `folder`; the first SHOW_SKIPPED are named (with the
    reason when it is not plain unreadability), the rest counted."""
    shown = [name if reason.startswith("unreadable") else f"{name} ({reason})"
             for name, reason in skipped[:SHOW_SKIPPED]]
    more = len(skipped) - SHOW_SKIPPED
    return (f"Skipped {len(skipped)} unreadable image file(s) in {str(folder)!r}: "
            f"{', '.join(shown)}{f' and {more} more' if more > 0 else ''}")


def no_images(folder):
    """The DataError for a folder without one usable picture."""
    return DataError(
        f"No usable images in {str(folder)!r} (searched recursively for "
        f"{', '.join(IMAGE_EXTENSIONS)}): {WHAT_TO_DO}"
    )


def load_image_folder(path, image_size=None, channels=3, max_side=None):
    """Decodes every image file under `path` into memory, in parallel threads.

    Arguments are those of `load_image`. Unreadable files are skipped with
    one warning. Returns `(images, sizes, files)`: uint8 images
    (N, H, W, channels), each padded at the bottom and right to the largest;
    each picture's (height, width) in px; and the files they came from.
    Memory grows with the folder: `keras_vae.cache.prepare` streams instead.
    """
    listing = scan(path)
    warn_unreadable_folders(listing)
    pictures, used, skipped = [], [], []
    files = listing.files
    for name, file, (picture, reason) in zip(
            listing.names, files, decode_files(files, image_size, channels, max_side)):
        if picture is None:
            skipped.append((name, reason))
        else:
            pictures.append(picture)
            used.append(file)
    if not pictures:
        raise no_images(path)
    if skipped:
        logger.warning(skip_message(listing.folder, skipped))
    sizes = np.array([p.shape[:2] for p in pictures], np.int32)
    images = np.zeros((len(pictures), *sizes.max(axis=0), channels), np.uint8)
    for image, picture in zip(images, pictures):
        image[: picture.shape[0], : picture.shape[1]] = picture
    return images, sizes, used
