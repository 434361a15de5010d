"""Endpoints as LiteRT (`.tflite`) flatbuffers, and their LiteRT interpreter runner.

TensorFlow's `TFLiteConverter` converts the endpoint's SavedModel (written by
`export.savedmodel.save` to a scratch folder): `from_concrete_functions` on a
Keras 3 `tf.function` drops the variables, and the file it writes runs but
returns NaN. The `serving_default` signature keeps the names `z` -> `image`
and a dynamic batch. Files are checked in the `ai-edge-litert` interpreter,
the runtime that phones and embedded boards ship.

Precisions (inputs and outputs stay float32 in all three):

    float32   the weights as trained; verified to 1e-4 like every format
    float16   weights stored as float16, about half the size
    int8      dynamic-range quantization: int8 weights, float activations,
              about a quarter of the size
"""

import contextlib
import os
import shutil
import sys

import numpy as np
import tensorflow as tf
from ai_edge_litert import interpreter as litert

from export import savedmodel

PRECISIONS = ("float32", "float16", "int8")


def file_name(part, precision):
    """`decoder.tflite` for float32, `decoder_float16.tflite` otherwise."""
    return f"{part}.tflite" if precision == "float32" else f"{part}_{precision}.tflite"


def convert(endpoint, path, precision="float32"):
    """Writes `endpoint` to the file `path` as a `.tflite` model of `precision`."""
    scratch = path.with_name(f".{path.name}.savedmodel")
    try:
        savedmodel.save(endpoint, scratch)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            str(scratch), signature_keys=[savedmodel.SIGNATURE]
        )
        if precision != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if precision == "float16":
            converter.target_spec.supported_types = [tf.float16]
        path.write_bytes(converter.convert())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def _quiet_stderr():
    """Mutes file descriptor 2: LiteRT's C++ logs "INFO: Created TensorFlow Lite
    XNNPACK delegate for CPU." on the first run, amid the export's progress lines.
    Errors still arrive as Python exceptions."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def load(path):
    """A runner (dict of arrays -> dict of arrays) on the LiteRT interpreter."""
    interpreter = litert.Interpreter(model_path=str(path))
    signature = interpreter.get_signature_runner(savedmodel.SIGNATURE)
    with _quiet_stderr():  # A first run at batch 1: the delegate is made here.
        signature(**{
            name: np.zeros([1, *detail["shape_signature"][1:]], detail["dtype"])
            for name, detail in signature.get_input_details().items()
        })

    def run(inputs):
        # The signature runner resizes the input tensor for each batch size;
        # the outputs are views of the interpreter's buffers, hence the copies.
        return {name: value.copy() for name, value in signature(**inputs).items()}

    return run
