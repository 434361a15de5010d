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


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(0)
    np.random.seed(0)
