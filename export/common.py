"""What the export stage shares and can check without importing TensorFlow.

The export folder's layout, the error type and the cheap checks live here
(the run folder's are `export.runfolder`'s), so that
`keras-vae export` refuses a wrong folder or format with a one-line error
before paying the seconds that importing TensorFlow takes.
"""

import contextlib
import json
import pathlib
import time
import tomllib

from export import runfolder

MODEL_FILE = runfolder.MODEL
CONFIG_FILE = runfolder.CONFIG
EXPORT_DIR = "export"
MANIFEST_FILE = "export.json"
FORMATS = ("savedmodel", "onnx", "litert", "web")


class ExportError(Exception):
    """The export cannot be made; the one-line message says what to do."""


class UsageError(ExportError):
    """The command points at something that cannot be exported (exit code 2,
    like a bad flag of `keras-vae train`)."""


def model_path(run_dir):
    """The run's `model.keras`, or an `ExportError` saying what is wrong."""
    try:
        return runfolder.check(run_dir, needs=(MODEL_FILE,)) / MODEL_FILE
    except runfolder.RunFolderError as error:
        raise UsageError(str(error)) from None


def check_formats(formats):
    """`formats` as a tuple without repeats, or an `ExportError` naming unknown ones.

    "web" brings "onnx" with it: the page runs decoder.onnx.
    """
    formats = tuple(dict.fromkeys(formats))
    if "web" in formats and "onnx" not in formats:
        formats = formats[: formats.index("web")] + ("onnx",) + formats[formats.index("web") :]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UsageError(
            f"unknown export format(s) {', '.join(map(repr, unknown)) or '(none given)'}: "
            f"use one or more of {', '.join(FORMATS)}"
        )
    return formats


def read_precision(run_dir):
    """What `keras-vae train` resolved the run's precision to and why (the
    "precision" of its metrics.json: requested, policy, reason, cpu_flags,
    gpus); {} for a run without it."""
    facts = (runfolder.read_metrics(run_dir) or {}).get("precision")
    return facts if isinstance(facts, dict) else {}


def stale(run_dir):
    """None if RUN_DIR/export was made from the run's current model.keras
    (or the run has none); else one sentence saying it is stale (or that it
    cannot tell) and what to do."""
    run_dir = pathlib.Path(run_dir)
    if not (run_dir / MODEL_FILE).is_file():
        return None  # An export copied without its run: nothing to compare with.
    try:
        manifest = json.loads((run_dir / EXPORT_DIR / MANIFEST_FILE).read_text())
        recorded = manifest["model"]["source"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded = None
    if recorded is None:
        return (f"{run_dir / EXPORT_DIR} records no model hash (made by an older keras-vae or "
                f"edited): rerun keras-vae export {run_dir} to be sure it is of model.keras")
    if runfolder.sha256(run_dir / MODEL_FILE) != recorded:
        return (f"{run_dir / EXPORT_DIR} is stale: {run_dir / MODEL_FILE} changed since it was "
                f"exported; rerun keras-vae export {run_dir}")
    return None


def read_config(run_dir):
    """The run's resolved `config.toml` as a dict; {} if the run has none."""
    path = pathlib.Path(run_dir) / CONFIG_FILE
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as error:
        raise UsageError(
            f"{str(path)!r} is not valid TOML ({error}): fix it or delete it "
            "(the export then takes its facts from the model alone)"
        ) from None


def beta_facts(config):
    """The β schedule recorded in `config`, "unknown" without one: the tagged
    [beta.<name>] table, or the flat [beta] of runs before it."""
    beta = dict(config.get("beta", {}))
    if len(beta) == 1 and "schedule" not in beta and isinstance(tagged := next(iter(beta.values())), dict):
        return {"schedule": next(iter(beta)), "config": tagged}
    schedule = beta.get("schedule", "unknown")
    if isinstance(schedule, dict):  # an inline table, e.g. a serialized schedule
        schedule = schedule.get("name") or schedule.get("class_name") or "unknown"
    return {"schedule": str(schedule), "config": beta}


def one_line(error):
    """The first line of an exception's message, for one-line error reports."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class Progress:
    """One line per stage: "label ... 1.2 s" (plus notes), or "label ... failed"."""

    def __init__(self, verbose):
        self.verbose = verbose

    @contextlib.contextmanager
    def stage(self, label):
        notes = []
        if self.verbose:
            print(f"{label} ...", end="", flush=True)
        start = time.perf_counter()
        try:
            yield notes
        except BaseException:
            if self.verbose:
                print(" failed", flush=True)
            raise
        if self.verbose:
            print(" " + ", ".join([*notes, f"{time.perf_counter() - start:.1f} s"]), flush=True)
