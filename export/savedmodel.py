"""Endpoints as TensorFlow SavedModels, and the two ways such a folder is loaded.

The SavedModel is written by Keras's own `keras.export.ExportArchive`, which
tracks every variable explicitly. (A bare `tf.Module` holding a Keras 3 model
saves and loads in `tf.saved_model.load`, but the session-based loader that
TensorFlow Serving and `saved_model_cli run` use then fails with "Could not
find variable ...": hence both loaders are verified.)
"""

import keras
import tensorflow as tf

SIGNATURE = "serving_default"
TAG = "serve"


def save(endpoint, path):
    """Writes `endpoint` to the folder `path` as the signature `serving_default`."""
    archive = keras.export.ExportArchive()
    archive.track(endpoint.layer)
    archive.add_endpoint(SIGNATURE, endpoint.function)
    archive.write_out(str(path), verbose=False)


def load(path):
    """A runner (dict of arrays -> dict of arrays) via `tf.saved_model.load`."""
    loaded = tf.saved_model.load(str(path))

    def run(inputs):
        # Looked up per call so that `loaded`, which owns the variables, stays alive.
        signature = loaded.signatures[SIGNATURE]
        outputs = signature(**{name: tf.constant(value) for name, value in inputs.items()})
        return {name: value.numpy() for name, value in outputs.items()}

    return run


def load_session(path):
    """A runner via the TF1 session loader, the way TensorFlow Serving loads it."""
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    # This TF1 loader is deprecated for Python users (who should use `load`)
    # but is what Serving runs; keep its deprecation warning off the console.
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        with graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(session, [TAG], str(path))
    finally:
        logger.setLevel(level)
    signature = meta_graph.signature_def[SIGNATURE]

    def run(inputs):
        feeds = {signature.inputs[name].name: value for name, value in inputs.items()}
        names = list(signature.outputs)
        values = session.run([signature.outputs[name].name for name in names], feeds)
        return dict(zip(names, values))

    return run
