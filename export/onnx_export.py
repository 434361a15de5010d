"""Endpoints as ONNX models, via tf2onnx, and their ONNX Runtime runner.

`tf2onnx.convert.from_function` converts the same `tf.function` that the
SavedModel serves (`from_keras` is fragile with Keras 3: tensorflow-onnx
issues 2329, 2348, 2448). The batch dimension stays dynamic, named "batch".
"""

import onnx
import onnxruntime
import tf2onnx

from export.common import ExportError
from export.common import UsageError
from export.common import one_line

BATCH_DIM = "batch"
#: The oldest opset tf2onnx tests (its README: 14 to 18); with older ones its
#: conversion fails with tracebacks logged, whatever --quiet says.
MIN_OPSET = 14
PROVIDERS = ["CPUExecutionProvider"]


def runtime_accepts(opset):
    """Whether the installed ONNX Runtime loads a model stamped with `opset`.

    ONNX Runtime refuses opsets newer than the ONNX release it was built
    against ("ValidateOpsetForDomain"), so a one-node model is the exact probe.
    """
    identity = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])],
        "probe",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    model = onnx.helper.make_model(
        identity,
        opset_imports=[onnx.helper.make_opsetid("", opset)],
        ir_version=tf2onnx.constants.OPSET_TO_IR_VERSION[opset],
    )
    try:
        onnxruntime.InferenceSession(model.SerializeToString(), providers=PROVIDERS)
    except Exception:  # ONNX Runtime raises its own unexported exception types.
        return False
    return True


def default_opset():
    """The newest opset that both tf2onnx and the installed ONNX Runtime support.

    tf2onnx's newest is the last key of `tf2onnx.constants.OPSET_TO_IR_VERSION`
    (18 for tf2onnx 1.17); ONNX Runtime 1.32 runs up to opset 28, so 18 it is.
    """
    for opset in sorted(tf2onnx.constants.OPSET_TO_IR_VERSION, reverse=True):
        if runtime_accepts(opset):
            return opset
    raise ExportError(
        f"ONNX Runtime {onnxruntime.__version__} loads none of the opsets tf2onnx "
        f"{tf2onnx.__version__} writes: install the versions pinned in setup.cfg"
    )


def check_opset(opset):
    """`opset` if tf2onnx writes it and ONNX Runtime runs it, else an `ExportError`."""
    supported = opset >= MIN_OPSET and opset in tf2onnx.constants.OPSET_TO_IR_VERSION
    if not supported or not runtime_accepts(opset):
        raise UsageError(
            f"--opset {opset} is not supported here: tf2onnx {tf2onnx.__version__} "
            f"writes opsets {MIN_OPSET} to {max(tf2onnx.constants.OPSET_TO_IR_VERSION)} and ONNX "
            f"Runtime {onnxruntime.__version__} must run it; leave --opset out for "
            f"the newest both support ({default_opset()})"
        )
    return opset


def convert(endpoint, path, opset, metadata):
    """Writes `endpoint` to the file `path` as ONNX with string `metadata` props."""
    model, _ = tf2onnx.convert.from_function(
        endpoint.function, input_signature=endpoint.function.input_signature, opset=opset
    )
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM
    # tf2onnx orders a dict's outputs by name; consumers that unpack
    # `session.run(None, ...)` rely on the documented order.
    outputs = {value.name: value for value in model.graph.output}
    if sorted(outputs) != sorted(endpoint.output_names):
        raise ExportError(
            f"the ONNX {endpoint.part} outputs {sorted(outputs)}, not "
            f"{list(endpoint.output_names)}: report it"
        )
    ordered = [outputs[name] for name in endpoint.output_names]
    del model.graph.output[:]
    model.graph.output.extend(ordered)
    onnx.helper.set_model_props(model, metadata)
    onnx.save(model, str(path))


def check(path):
    """Raises an `ExportError` unless the file at `path` passes the full ONNX checker."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as error:  # ValidationError, or protobuf's DecodeError.
        raise ExportError(
            f"{path.name} fails the ONNX checker ({one_line(error)}): the "
            "conversion wrote an invalid model; try another --opset or report it"
        ) from error


def load(path):
    """A runner (dict of arrays -> dict of arrays) on ONNX Runtime's CPU provider."""
    session = onnxruntime.InferenceSession(str(path), providers=PROVIDERS)
    names = [output.name for output in session.get_outputs()]

    def run(inputs):
        return dict(zip(names, session.run(names, inputs)))

    return run

