"""The export stage: a trained VAE's decoder as verified SavedModel, ONNX and
LiteRT files, and a web page that decodes it in the browser.

`export_run(run_dir, ...)` writes `RUN_DIR/export/` (see `export.exporter`).
Importing this package does not import TensorFlow, so that the TF-free
consumer `export.sample_onnx` stays light; `export_run` loads it on first use.
"""

from export.common import ExportError

__all__ = ["ExportError", "export_run"]


def __getattr__(name):
    # PEP 562: import the TensorFlow-dependent exporter only when it is asked for.
    if name == "export_run":
        from export.exporter import export_run

        return export_run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
