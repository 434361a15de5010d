"""keras-vae: variational autoencoders whose β is explicit, scheduled and measured.

Rate (KL, nats per image) and distortion (negative log-likelihood, nats per
image) are reported separately; β weights the rate in the loss.

Importing the package imports no TensorFlow (PEP 562, as TFP's lazy loader):
its TensorFlow-free modules (`arrays`, `images`, `cache`, `files`, `glossary`,
`grids`, `schedules`, `controllers`) serve code that must start fast or run
without it, and the names below load their modules on first use.

Keras finds a saved class only if its module has run
`keras.saving.register_keras_serializable`, and imports no module outside
`keras*` to find one. So the modules of `SERIALIZABLE` are imported, and their
classes registered, as soon as Keras is there to register them with: at
`import keras_vae` if Keras is already imported, else as soon as Keras and
TensorFlow (which import each other) have both finished importing
(`_RegisterAfterKeras`), or at the first use of a class or function below
(`keras_vae.VAE`, `keras_vae.build_model`, ...), whichever comes first; a
module (`keras_vae.callbacks`) is imported alone. So `keras.saving.load_model`
reads a `.keras` file of ours whichever of `import keras` and
`import keras_vae` came first.
"""

import importlib
import importlib.abc
import importlib.machinery
import sys

__version__ = "0.1.0"

#: The modules whose classes a `.keras` file (or a callback's config) names:
#: imported together, before anything of ours is loaded by Keras.
SERIALIZABLE = ("keras_vae.vae", "keras_vae.autoencoder", "keras_vae.likelihoods",
                "keras_vae.logistic_mixture",
                "keras_vae.callbacks", "keras_vae.collapse")

#: {public name: the module that defines it}; a name equal to its module's
#: last part is the module itself.
_LAZY = {
    "Autoencoder": "keras_vae.autoencoder",
    "ModelSpec": "keras_vae.models",
    "VAE": "keras_vae.vae",
    "build_autoencoder": "keras_vae.autoencoder",
    "build_conv_vae": "keras_vae.architectures",
    "build_decoder": "keras_vae.architectures",
    "build_encoder": "keras_vae.architectures",
    "build_model": "keras_vae.models",
    "callbacks": "keras_vae.callbacks",
    "likelihoods": "keras_vae.likelihoods",
    "monitoring": "keras_vae.monitoring",
    "precision": "keras_vae.precision",
    "schedules": "keras_vae.schedules",
}

__all__ = [*_LAZY, "register_serializables"]


def register_serializables():
    """Imports the modules of `SERIALIZABLE` (and so TensorFlow and Keras),
    registering every class of ours that a saved file can name."""
    # Our imports of Keras must not start the post-import hook again.
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _RegisterAfterKeras)]
    for module in SERIALIZABLE:
        importlib.import_module(module)


def __getattr__(name):
    # PEP 562: called only for a name the module does not have yet. A module
    # name is imported alone: our own modules say `from keras_vae import
    # callbacks`, and registering from inside their imports would meet them
    # half-initialized. A class or function registers everything first.
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _LAZY[name] == f"{__name__}.{name}":
        return importlib.import_module(_LAZY[name])  # Import binds it here.
    register_serializables()
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_LAZY})


def _initializing(name):
    return getattr(getattr(sys.modules.get(name), "__spec__", None), "_initializing", False)


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """A post-import hook: once `keras` and `tensorflow` have both run, and
    no module of ours is half-imported, our classes are registered, before
    the user's next line can load a file.

    It watches Keras, TensorFlow and our own modules, and the import that
    ends last registers. Keras and TensorFlow import each other, and ours
    import Keras at their top (`import keras_vae.vae` first in a process):
    registering imports our other modules, which would meet the one whose
    `import keras` just ended half-initialized. The importer's re-entrant
    module lock lets registering import again what just executed."""

    PACKAGES = ("keras", "tensorflow")

    def find_spec(self, name, path=None, target=None):
        if name not in self.PACKAGES and not name.startswith(f"{__name__}."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            if self in sys.meta_path and _ready(finished=name):
                register_serializables()

        spec.loader.exec_module = exec_module
        return spec


def _ready(finished):
    """Keras and TensorFlow imported, and no module of ours half-imported,
    `finished` (whose execution just ended) aside."""
    packages = _RegisterAfterKeras.PACKAGES
    ours = [m for m in list(sys.modules) if m.startswith(f"{__name__}.")]
    return all(p in sys.modules for p in packages) and not any(
        _initializing(m) for m in [*packages, *ours] if m != finished)


if "keras" in sys.modules:  # Keras is paid for already: register now, as an eager import would.
    register_serializables()
elif not any(isinstance(f, _RegisterAfterKeras) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKeras())
