"""Atomic file writes: a crash leaves the old file or the new one, never half of one.

Each file or folder is written under a temporary name beside its destination,
flushed to disk (fsync), given the permissions a plain `open`/`mkdir` would
give under the user's umask (`tempfile` makes 0600/0700), renamed into place,
and its parent folder synced so the rename itself survives a power cut.
"""

import contextlib
import errno
import json
import math
import os
import pathlib
import shutil
import tempfile


def umask():
    """The process's umask: from /proc on Linux, else by setting it and back
    (which another thread creating a file at that instant could notice)."""
    with contextlib.suppress(OSError, ValueError):
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomically(path, write):
    """Calls `write(temp_path)` for a temporary file beside `path`, then syncs
    it and renames it onto `path` (creating parent folders); returns `path`.

    The temporary name keeps the destination's suffixes (`.keras`,
    `.weights.h5`), which Keras's savers check.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".tmp" + "".join(path.suffixes[-2:])
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(temp)
        sync(temp)
        os.chmod(temp, 0o666 & ~umask())
        os.replace(temp, path)
    except BaseException as error:
        written = _size(temp)
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp)
        _raise_with_path(error, path, written)
        raise
    sync(path.parent)
    return path


def write_folder(path, write):
    """Calls `write(temp_folder)` for a new folder beside `path`, syncs every
    file in it and renames it to `path`, replacing an existing `path` only once
    the new one is complete; returns `path`."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = pathlib.Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        write(temp)
        for item in sorted(temp.rglob("*")):
            if item.is_file():
                sync(item)
                os.chmod(item, 0o666 & ~umask())
        os.chmod(temp, 0o777 & ~umask())
        sync(temp)
        if os.path.lexists(path):
            old = temp.with_name(temp.name + ".old")
            os.replace(path, old)
            os.replace(temp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temp, path)
    except BaseException as error:
        written = sum(_size(p) for p in temp.rglob("*")) if temp.exists() else 0
        shutil.rmtree(temp, ignore_errors=True)
        _raise_with_path(error, path, written)
        raise
    sync(path.parent)
    return path


#: Temporary names a killed write leaves: this module's `.<name>.<random>.tmp...`,
#: and the `.export-tmp-<random>` folders of keras-vae's exports before 2026-12.
LEFTOVERS = (".*.tmp*", ".export-tmp-*")


def remove_leftovers(folder):
    """Deletes the temporary files and folders that a killed write left in
    `folder` (`LEFTOVERS`); call it only while no other process writes there
    (`export.lock.hold` calls it)."""
    for item in (p for pattern in LEFTOVERS for p in pathlib.Path(folder).glob(pattern)):
        if item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                item.unlink()


def write_text(path, text):
    """Writes `text` (UTF-8) to `path` atomically; returns `path`."""
    return write_atomically(path, lambda temp: pathlib.Path(temp).write_text(text, encoding="utf-8"))


def write_json(path, value, indent=2):
    """Writes `value` atomically as strict JSON, a non-finite float as null
    (JSON has no NaN or Infinity; most parsers reject Python's); returns `path`."""
    return write_text(path, to_json(value, indent))


def to_json(value, indent=None):
    """`value` as strict JSON text, non-finite floats as null."""
    return json.dumps(_finite(value), indent=indent, allow_nan=False) + ("\n" if indent else "")


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def check_writable(folder, what="output folder"):
    """Raises a one-line OSError unless a file can be created in `folder`, or
    in its nearest existing parent if it does not exist yet (nothing is left
    behind): before hours of work, not after."""
    folder = pathlib.Path(folder)
    existing = _existing(folder)
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise OSError(
            error.errno, f"cannot write in the {what} {str(folder)!r}: "
            f"{error.strerror or error}; pass a writable folder"
        ) from None


def _existing(folder):
    """`folder`, or its nearest parent that exists."""
    folder = pathlib.Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_space(folder, needed, what, remedy="free some space or write elsewhere"):
    """Raises OSError(ENOSPC) with a one-line message ending in `remedy`
    unless `folder` has `needed` bytes free for `what` (`folder` need not
    exist yet)."""
    free = shutil.disk_usage(_existing(folder)).free
    if free < needed:
        raise OSError(
            errno.ENOSPC, f"not enough space in {str(folder)!r} for {what}: needs about "
            f"{_megabytes(needed)}, {_megabytes(free)} free; {remedy}"
        )


def describe(error):
    """One line for an OSError: its message, with the path where it has one."""
    message = error.strerror or str(error)
    if error.filename and str(error.filename) not in message:
        message = f"{str(error.filename)!r}: {message}"
    return message


#: errno values that say the disk, not the program, is at fault.
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO)


def write_error(error):
    """The errno of a failed write hidden in any exception (h5py and TensorFlow
    raise their own types whose message carries the OS's text), or None."""
    if isinstance(error, OSError) and error.errno in WRITE_ERRORS:
        return error.errno
    text = str(error)
    for code in WRITE_ERRORS:
        if os.strerror(code) in text or f"errno = {code}" in text:
            return code
    return None


def _raise_with_path(error, path, written):
    """Re-raises a failed write's OS error as one OSError naming `path` and,
    for a full disk, how much was written and how much is free."""
    code = write_error(error)
    if code is None:
        return
    message = f"cannot write {str(path)!r}: {os.strerror(code)}"
    if code in (errno.ENOSPC, errno.EDQUOT):
        free = shutil.disk_usage(path.parent).free
        message += (
            f" ({_megabytes(written)} written when the disk filled, {_megabytes(free)} "
            "free); free some space and rerun"
        )
    raise OSError(code, message) from error


def raise_write_error(error, folder):
    """Re-raises `error` (any type: TensorFlow's summary writer raises its
    own) as one OSError naming `folder` if a full disk or a permission
    caused it, with the bytes written to `folder`; returns otherwise."""
    folder = pathlib.Path(folder)
    written = sum(_size(p) for p in folder.glob("*")) if folder.is_dir() else 0
    _raise_with_path(error, folder, written)


def _megabytes(size):
    return f"{size / 1e6:.1f} MB"


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def sync(path):
    """fsync a file or a folder (a folder's entry list holds its renames)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
