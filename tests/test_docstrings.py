"""The `Example:` blocks of the docstrings run as written (docs and code tell one story)."""

import doctest
import importlib

import pytest

MODULES = (
    "keras_vae.autoencoder", "keras_vae.callbacks", "keras_vae.glossary", "keras_vae.models",
    "keras_vae.schedules", "keras_vae.vae",
    "pipelines.beta", "pipelines.config", "pipelines.datasets", "pipelines.flags",
    "pipelines.markdown", "export.runfolder", "pipelines.schema",
)


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0


def test_a_saved_autoencoder_loads_after_importing_the_package(tmp_path):
    """Registered in a module `keras_vae` imports: loading needs no other import."""
    import subprocess
    import sys

    import keras_vae

    path = tmp_path / "ae.keras"
    keras_vae.build_autoencoder((8, 8, 1), latent_dim=2, filters=(4, 8)).save(path)
    script = ("import keras, keras_vae, sys; "
              "print(type(keras.saving.load_model(sys.argv[1])).__name__)")
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                            text=True, timeout=120)
    assert result.stdout.strip() == "Autoencoder", result.stderr[-2000:]
