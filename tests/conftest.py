"""Shared fixtures: small data that ships with the installed packages."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 1,797 8×8 digits as float32 [N, 8, 8, 1] in [0, 1]."""
    from sklearn.datasets import load_digits

    return (load_digits().images[..., None] / 16.0).astype("float32")


@pytest.fixture(scope="session", autouse=True)
def _private_cache_home(tmp_path_factory):
    """Folders that tests (and the commands they start) prepare go into a
    cache of the session's own, never the user's ~/.cache/keras-vae."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if before is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(0)
    np.random.seed(0)



@pytest.fixture
def small_disk(tmp_path):
    """`small_disk(megabytes, free=None)`: a fresh tmpfs of that size (a full
    disk on demand: with `free`, a ballast file leaves only that many bytes
    free), unmounted after the test. Needs root, as in CI; skips otherwise."""
    import shutil
    import subprocess

    mounted = []

    def mount(megabytes, free=None):
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)],
            capture_output=True, text=True,
        )
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs to fill ({result.stderr.strip() or 'not root'})")
        mounted.append(folder)
        if free is not None:
            with open(folder / "ballast", "wb") as f:
                f.write(b"\0" * max(0, shutil.disk_usage(folder).free - free))
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def read_only_dir(small_disk):
    """An empty folder on a read-only file system (root ignores chmod)."""
    import subprocess

    folder = small_disk(1)
    if subprocess.run(["mount", "-o", "remount,ro", str(folder)]).returncode:
        pytest.skip("cannot remount a tmpfs read-only")
    return folder
