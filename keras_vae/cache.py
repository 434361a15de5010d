"""A folder prepared once: its pictures decoded, resized and stored as uint8; no TensorFlow.

A prepared folder is a folder `<cache_dir>/<key>/` of two files:
`pixels.u8`, one fixed-size record (H, W, C) of uint8 per usable picture in
the listing's order, raw (so `np.memmap(path, np.uint8, "r")` reads it), and
`index.json`: the record shape, each picture's file and (height, width) in
px, the skipped files and why. The key is `<source>-<content>`: `source`
hashes the folder's path and how pictures are decoded (image size, channels,
crop policy), `content` every file's path, size and mtime; so a changed
folder is prepared again (replacing its older preparation) and an unchanged
one is reused by every later run. Records are read with `pread`
(`Prepared.read`), not mapped: a run's memory holds only the batches in
flight, whatever the folder's size.

Preparing writes into a hidden temporary folder `.<key>.<host>.<pid>.tmp`,
syncs it and renames it into place: a killed preparation leaves no folder
named by a key, and the next preparation deletes what a dead process left.
"""

import dataclasses
import errno
import hashlib
import json
import os
import pathlib
import shutil
import socket
import sys
import time
import weakref

import numpy as np

from keras_vae import files as files_lib
from keras_vae import images

FORMAT = 1  # Raised when the layout or the decoding changes: old caches are ignored.
INDEX = "index.json"
PIXELS = "pixels.u8"
MARGIN_BYTES = 64 * 2**20  # Left free on the disk beyond the cache's own size.
PROGRESS_FILES = 200  # Show a progress bar when preparing more files.
#: Bytes written between syncs; each synced part leaves the page cache, so
#: preparing 20 GB neither piles up dirty pages nor evicts everything else
#: (TensorFlow's libraries, which the next run would read from disk again).
SYNC_BYTES = 256 * 2**20


def default_dir():
    """`$XDG_CACHE_HOME/keras-vae`, else `~/.cache/keras-vae`."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # The XDG spec ignores relative paths.
        base = pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "keras-vae"


@dataclasses.dataclass(frozen=True)
class Spec:
    """How pictures are decoded: center squares of `image_size` px, or (with
    `image_size` None) whole, their longer side capped at `max_side` px and
    padded to max_side × max_side; `channels` 1 or 3."""

    image_size: int | None
    max_side: int
    channels: int

    @property
    def record_shape(self):
        side = self.image_size or self.max_side
        return (side, side, self.channels)

    def key(self, listing):
        """`<source>-<content>`: hex digests of the folder with this spec, and
        of what its pixels depend on (every file's path, size and mtime)."""
        source = {"format": FORMAT, **dataclasses.asdict(self),
                  "folder": str(listing.folder.absolute())}
        content = [source, listing.names, listing.stats]
        return f"{_digest(source)[:16]}-{_digest(content)[:16]}"


def _digest(value):
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()


class Prepared:
    """A prepared folder open for reading: `count` pictures, `sizes` (N, 2)
    in px, `files` (paths relative to the folder), `skipped` [(path, reason)],
    `record_shape` (H, W, C); `read(indices)` reads records."""

    def __init__(self, path, index):
        self.path = pathlib.Path(path)
        self.count = index["count"]
        self.record_shape = tuple(index["record_shape"])
        self.sizes = np.array(index["sizes"], np.int32).reshape(-1, 2)
        self.files = index["files"]
        self.skipped = [tuple(s) for s in index["skipped"]]
        self._record = int(np.prod(self.record_shape))
        self._fd = os.open(self.path / PIXELS, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)

    def read(self, indices):
        """uint8 records (len(indices), H, W, C) of the pictures `indices`."""
        indices = np.asarray(indices).reshape(-1)
        out = np.empty((len(indices), *self.record_shape), np.uint8)
        for row, i in zip(out, indices):
            got = os.preadv(self._fd, [row], int(i) * self._record)
            if got != self._record:
                raise OSError(errno.EIO, f"{str(self.path / PIXELS)!r} is shorter than its "
                              "index says: delete the folder and rerun")
        return out


def open_or_prepare(listing, spec, cache_dir=None):
    """The `Prepared` cache of `listing` decoded as `spec`, prepared now unless
    a trusted one exists under `cache_dir` (default `default_dir()`).

    Returns None, after one warning line, when the cache cannot be written
    (a full disk, a read-only folder): the caller then streams the folder
    uncached; nothing half-written is kept. Raises `DataError` when no file
    of the folder is a usable picture.
    """
    root = pathlib.Path(cache_dir) if cache_dir else default_dir()
    key = spec.key(listing)
    prepared = _open(root / key, key)
    if prepared is not None:
        return prepared
    try:
        _prepare(root, key, listing, spec)
    except OSError as error:
        images.warn_once(
            f"Not caching the decoded pictures ({files_lib.describe(error)}): streaming the "
            "folder uncached, decoding every epoch (pass `cache_dir` to cache elsewhere, "
            "`cache=False` to stop trying)")
        return None
    return _open(root / key, key)


def _prepare(root, key, listing, spec):
    """Writes the prepared folder `root/key` (temporary folder, sync, rename)
    and deletes the folder's older preparations; an OSError leaves nothing."""
    root.mkdir(parents=True, exist_ok=True)
    _remove_dead_temps(root)
    files_lib.check_space(root, int(np.prod(spec.record_shape)) * len(listing.names)
                          + MARGIN_BYTES, f"the prepared pictures of {str(listing.folder)!r}",
                          remedy="free some space")
    temp = root / f".{key}.{socket.gethostname()}.{os.getpid()}.tmp"
    try:
        _write(temp, listing, spec, key)
        try:
            os.rename(temp, root / key)
        except OSError:  # Another process prepared the same folder first.
            shutil.rmtree(temp, ignore_errors=True)
        files_lib.sync(root)
    except BaseException as error:
        shutil.rmtree(temp, ignore_errors=True)
        files_lib.raise_write_error(error, root)
        raise
    for older in root.glob(key.split("-")[0] + "-*"):  # The folder as it was before.
        if older.name != key:  # A run still reading it keeps its open file.
            shutil.rmtree(older, ignore_errors=True)


def _open(path, key):
    """The prepared folder at `path` if its index and size check out; an
    untrustworthy one (format, key or size wrong) is deleted."""
    try:
        index = json.loads((path / INDEX).read_text())
        record = int(np.prod(index["record_shape"]))
        trusted = (index["format"] == FORMAT and index["key"] == key
                   and len(index["sizes"]) == len(index["files"]) == index["count"]
                   and (path / PIXELS).stat().st_size == record * index["count"])
    except (OSError, ValueError, KeyError, TypeError):
        trusted = False
    if not trusted:
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
        return None
    return Prepared(path, index)


def _write(temp, listing, spec, key):
    """Decodes the listing into the folder `temp`: pixels.u8, then index.json."""
    temp.mkdir()
    sizes, kept, skipped = [], [], []
    record = np.zeros(spec.record_shape, np.uint8)
    progress = _Progress(len(listing.names), listing.folder, temp.parent, spec,
                         quiet=len(listing.names) < PROGRESS_FILES)
    with open(temp / PIXELS, "wb") as out:
        synced = 0
        paths = (listing.path(i) for i in range(len(listing.names)))
        decoded = images.decode_files(paths, spec.image_size, spec.channels, spec.max_side)
        for name, (picture, reason) in zip(listing.names, decoded):
            if picture is None:
                skipped.append((name, reason))
            else:
                height, width = picture.shape[:2]
                if picture.shape != record.shape:
                    record[:] = 0
                    record[:height, :width] = picture
                    picture = record
                out.write(np.ascontiguousarray(picture).data)
                sizes.append((height, width))
                kept.append(name)
                if out.tell() - synced >= SYNC_BYTES:
                    synced = _sync_and_drop(out)
            progress.step()
        out.flush()
        os.fsync(out.fileno())
    progress.done()
    if not kept:
        raise images.no_images(listing.folder)
    files_lib.write_json(temp / INDEX, {
        "format": FORMAT, "key": key, "folder": str(listing.folder.absolute()),
        "record_shape": list(spec.record_shape), "count": len(kept), "files": kept,
        "sizes": sizes, "skipped": skipped, "seconds": round(progress.elapsed(), 3),
    }, indent=None)


def _sync_and_drop(out):
    """Syncs what `out` holds so far and drops it from the page cache; returns
    its size, bytes."""
    out.flush()
    os.fdatasync(out.fileno())
    if hasattr(os, "posix_fadvise"):  # Not on macOS: the pages then stay cached.
        os.posix_fadvise(out.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return out.tell()


def _remove_dead_temps(root):
    """Deletes the temporary folders of this host's preparations whose process
    is gone (killed); another host's, or a live process's, are left alone."""
    host = socket.gethostname()
    for temp in root.glob(".*.tmp"):
        parts = temp.name.split(".")  # "", key, host..., pid, "tmp"
        if len(parts) < 5 or ".".join(parts[2:-2]) != host or not parts[-2].isdigit():
            continue
        try:
            os.kill(int(parts[-2]), 0)
        except ProcessLookupError:
            shutil.rmtree(temp, ignore_errors=True)
        except OSError:  # Alive, another user's.
            pass


class _Progress:
    """A one-line progress bar with the rate and an ETA on stderr: redrawn on
    a terminal, a line every LOG_SECONDS otherwise."""

    LOG_SECONDS = 10

    def __init__(self, total, folder, root, spec, quiet):
        self.total, self.count, self.quiet = total, 0, quiet
        self.start = self.shown = time.monotonic()
        self.tty = sys.stderr.isatty()
        size = total * int(np.prod(spec.record_shape))
        self._print(f"Preparing {total:,} pictures of {str(folder)!r} once "
                    f"({spec.record_shape[0]} px, up to {size / 1e6:,.0f} MB in {str(root)!r}; "
                    "later runs reuse them)\n")

    def elapsed(self):
        return time.monotonic() - self.start

    def step(self):
        self.count += 1
        now = time.monotonic()
        if now - self.shown >= (0.5 if self.tty else self.LOG_SECONDS):
            self.shown = now
            self._print(self._line() + ("\r" if self.tty else "\n"))

    def done(self):
        self._print(self._line() + "\n")

    def _line(self):
        rate = self.count / max(self.elapsed(), 1e-9)
        left = (self.total - self.count) / rate if rate else 0
        filled = int(30 * self.count / max(self.total, 1))
        return (f"[{'=' * filled}{'.' * (30 - filled)}] {self.count:,}/{self.total:,} "
                f"{rate:,.0f} img/s, " + (f"ETA {left:.0f} s" if self.count < self.total
                                          else f"{self.elapsed():.1f} s")).ljust(60)

    def _print(self, text):
        if not self.quiet:
            sys.stderr.write(text)
            sys.stderr.flush()
