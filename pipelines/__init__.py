"""Pipelines around `keras_vae`: the `keras-vae` command, its config files and runs."""

import os
import sys
import tempfile


def _import_tensorflow_quietly():
    """Imports TensorFlow and finds its devices with stderr muted.

    TensorFlow 2.21 prints its start-up lines (oneDNN, CUDA probing) before
    its logging is configured, whatever TF_CPP_MIN_LOG_LEVEL says, so every
    one-line error of the CLI would sit under them. Set TF_CPP_MIN_LOG_LEVEL=0
    to see them.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0":
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            import tensorflow

            tensorflow.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


_import_tensorflow_quietly()
