"""Atomic file writes: a crash leaves the old file or the new one, never half of one."""

import os
import pathlib
import tempfile


def write_atomically(path, write):
    """Calls `write(temp_path)` for a temporary file beside `path`, then renames
    it onto `path` (creating parent folders); returns `path`."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        os.remove(temp)
        raise
    return path


def write_text(path, text):
    """Writes `text` (UTF-8) to `path` atomically; returns `path`."""
    return write_atomically(path, lambda temp: pathlib.Path(temp).write_text(text, encoding="utf-8"))
