"""One run folder, one writer: an advisory lock held for a command's life.

Every command that writes into a run folder (`train`, `evaluate`, `export`,
and `sweep`/`demo` through them) holds `RUN/.lock` (`fcntl.flock`, exclusive)
while it runs; `sweep` and `compare` also hold their own folder's. The file
holds the holder's pid, command and start time, so a second command is
refused in one line naming it; it is removed when the command ends. The
kernel drops the lock when its holder dies, even by kill -9, so a stale lock
file (its holder gone) is taken over, with a note.
Once it holds the lock, a command deletes the temporary files and folders
that a killed command left in the run (see `keras_vae.files.remove_leftovers`):
no one else writes there.

An advisory lock binds only the processes that take it: keras-vae commands.
On a network file system without flock support, `fcntl.flock` may lock
nothing (NFS emulates it with POSIX locks since Linux 2.6.12).

Importing this module does not import TensorFlow.

Example:

    >>> with hold(folder, "keras-vae train"):
    ...     pass  # Write into folder: no other keras-vae command does.
"""

import contextlib
import fcntl
import json
import os
import pathlib
import shlex
import sys
import time

from keras_vae import files

LOCK = ".lock"


class RunLockedError(ValueError):
    """Another command holds the run folder (exit 2); the message names it."""


@contextlib.contextmanager
def hold(folder, command, subfolders=True):
    """Holds `folder`'s lock while the block runs; creates `folder` if needed.

    Raises RunLockedError, naming the holder, if another process holds it.
    On entry, removes what interrupted writes left in the folder, and below
    it unless `subfolders` is False (a sweep's folder: its runs below have
    locks of their own, held by whichever command trains them).
    """
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = _lock(folder)
    try:
        _note_stale(folder, _read(fd))
        _write(fd, {"pid": os.getpid(), "command": command,
                    "argv": shlex.join(sys.argv)[:500],
                    "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")})
        _remove_leftovers(folder, subfolders)
        yield folder
    finally:
        # Unlinked while held: a command that opened this file meanwhile
        # sees, once it gets the lock, that it is no longer the folder's.
        with contextlib.suppress(OSError):
            os.unlink(folder / LOCK)
        os.close(fd)  # Closing the last descriptor releases the lock.


def tidy(folder, command):
    """Deletes what killed commands left in `folder`, if its lock is free and
    the folder writable; else leaves it to the next command (for commands
    that write nothing themselves, such as `train` of a finished run)."""
    with contextlib.suppress(RunLockedError, OSError), hold(folder, command):
        pass


def _lock(folder):
    """A descriptor of `folder/.lock`, exclusively locked; raises
    RunLockedError, naming the holder, if another process holds it."""
    path = folder / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            record = _holder(fd)
            os.close(fd)
            raise RunLockedError(_refusal(folder, record)) from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        os.close(fd)  # Its holder removed it before we locked it: again.


def _holder(fd):
    """The record of the process holding the lock on `fd`: it writes it just
    after locking, so an empty file is read again for up to a second."""
    for _ in range(10):
        record = _read(fd)
        if record.get("pid"):
            return record
        time.sleep(0.1)
    return {}


def _refusal(folder, record):
    who = (f"{record.get('command', 'a keras-vae command')} (pid {record['pid']}, "
           f"started {record.get('started', '?')})" if record.get("pid")
           else "another keras-vae command")
    return (f"{folder} is in use by {who}: wait for it to finish or stop it, then rerun; "
            "one keras-vae command at a time writes into a folder")


def _note_stale(folder, record):
    """Says so when the lock file still names a holder: a command that ends
    removes the file, so its holder died (kill -9, a crash, a power cut)."""
    if record.get("pid"):
        print(f"keras-vae: note: {folder} was left locked by "
              f"{record.get('command', 'a command')} (pid {record['pid']}), which is no "
              "longer running: taking over", file=sys.stderr)


def _read(fd):
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _write(fd, record):
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode() + b"\n", 0)


def _remove_leftovers(folder, subfolders):
    """Temporary names of interrupted writes, in `folder` (and below)."""
    def visible(path):
        return not any(part.startswith(".") for part in path.relative_to(folder).parts)

    below = (p for p in folder.rglob("*") if p.is_dir() and visible(p)) if subfolders else ()
    for where in [folder, *below]:
        files.remove_leftovers(where)
