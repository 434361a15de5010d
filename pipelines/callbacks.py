"""Deprecated, removed in the next release: `pipelines.runcallbacks`.

The module was renamed so that `keras_vae.callbacks` is the one module
called callbacks, and its `StopOnNaN` is `StopOnNonFinite` (it stops on
±inf too). The old names still work, with a `DeprecationWarning`.
"""

import importlib
import warnings

#: {old name: its name in `pipelines.runcallbacks`}.
RENAMED = {"StopOnNaN": "StopOnNonFinite", "CollapseAlarm": "CollapseAlarm",
           "SaveRun": "SaveRun"}


def __getattr__(name):
    if name not in RENAMED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    new = f"pipelines.runcallbacks.{RENAMED[name]}"
    warnings.warn(f"pipelines.callbacks.{name} is deprecated and goes in the next release: "
                  f"use {new}", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module("pipelines.runcallbacks"), RENAMED[name])
