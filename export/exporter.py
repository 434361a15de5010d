"""`export_run`: a run's decoder (and encoder) as verified SavedModel, ONNX and
LiteRT files, plus a web page that decodes in the browser.

Everything is written to a temporary folder inside the run folder (so the
final rename stays on one filesystem), verified there against the Keras model
in each artifact's own runtime, and only then renamed to `RUN_DIR/export`. A
failure at any point leaves the previous export, or none: never a half-written
one that looks valid.
"""

import os
import pathlib
import shutil
import uuid

from keras_vae import files
from export import common
from export import endpoints
from export import litert
from export import manifest
from export import onnx_export
from export import savedmodel
from export import verify
from export import web_page
from export.common import ExportError
from export.common import one_line
from export import lock
from export import runfolder

_LABELS = {"savedmodel": "SavedModel", "onnx": "ONNX", "litert": "LiteRT", "web": "web page"}
_HINTS = {
    "savedmodel": "the SavedModel does not reproduce the Keras {part}; report it",
    "onnx": "the converter mis-converted the {part}; try another --opset or report it",
    "litert": "TensorFlow's LiteRT converter mis-converted the {part}; report it",
    "web": "the web page could not be assembled; report it",
}
#: The runtimes each format is verified in: (name, loader of a runner).
_RUNTIMES = {
    "savedmodel": (
        ("tf.saved_model.load", savedmodel.load),
        ("session loader (TF Serving, saved_model_cli)", savedmodel.load_session),
    ),
    "onnx": (("onnxruntime", onnx_export.load),),
    "litert": (("ai-edge-litert", litert.load),),
    # The page runs decoder.onnx, verified above; tests/test_web.py checks it in Chromium.
    "web": (),
}


def export_run(
    run_dir, formats=None, opset=None, encoder=False, verbose=True, latent_images=None,
    _after_convert=None,
):
    """Exports, verifies and installs the model of a training run.

    Args:
        run_dir: a run folder holding `model.keras` (and, optionally, the
            `config.toml` the β schedule is read from).
        formats: any of "savedmodel", "onnx", "litert" and "web" (which
            needs, and adds, "onnx": the page runs decoder.onnx); None for
            all that can be made here (the web page needs onnxruntime-web:
            without it, one line says it was skipped and how to add it).
        opset: ONNX opset; None for the newest that both tf2onnx and the
            installed ONNX Runtime support (`onnx_export.default_opset`).
        encoder: also export the encoder (image -> posterior_mean,
            posterior_log_variance).
        verbose: print one line per stage, with its duration.
        latent_images: a function of the run folder returning (images, a
            phrase saying which) to measure each latent dimension's KL on,
            which orders the web page's sliders (`manifest.latent_kl`);
            None: the dimensions keep their index order. `keras-vae export`
            passes the run's validation images.
        _after_convert: for tests only, called with the temporary folder
            between conversion and verification (e.g. to corrupt a file).

    Returns:
        The manifest, as written to `RUN_DIR/export/export.json`.

    Raises:
        ExportError: with a one-line message, if anything fails; the previous
            `RUN_DIR/export` (if any) is then left as it was. `UsageError`
            when another command writes into the run (see `export.lock`)
            or a file of the run is damaged.
    """
    run_dir = pathlib.Path(run_dir)
    common.model_path(run_dir)
    formats = _available(formats, verbose)
    try:
        with lock.hold(run_dir, "keras-vae export"):
            return _export(run_dir, formats, opset, encoder, verbose, latent_images,
                           _after_convert)
    except (lock.RunLockedError, runfolder.RunFileError) as error:
        raise common.UsageError(str(error)) from None
    except OSError as error:  # No lock file: a read-only run folder, say.
        raise ExportError(_cannot_write(error, run_dir)) from error


def _available(formats, verbose):
    """`formats` checked; None: every format, less the web page (one line
    saying so) if onnxruntime-web is not installed."""
    if formats is not None:
        return common.check_formats(formats)
    try:
        web_page.check_runtime()
    except ExportError:
        if verbose:
            print(f"skipping the web page: {web_page.MISSING}; then export again "
                  "with --formats web")
        return tuple(f for f in common.FORMATS if f != "web")
    return common.FORMATS


def _export(run_dir, formats, opset, encoder, verbose, latent_images, _after_convert):
    """`export_run` once the run's lock is held: load, convert into a hidden
    folder, verify, then install it as RUN_DIR/export."""
    progress = common.Progress(verbose)
    model, facts = _load(run_dir, progress, verbose, latent_images)
    if "web" in formats:
        web_page.check_runtime()
    if "onnx" in formats:
        opset = onnx_export.default_opset() if opset is None else onnx_export.check_opset(opset)
    else:
        opset = None
    parts = [endpoints.decoder(model)] + ([endpoints.encoder(model)] if encoder else [])
    final = run_dir / common.EXPORT_DIR
    # Each artifact holds the weights once; the SavedModel's graph and
    # variables file and ONNX's initializers add up to a few times that.
    size = common.model_path(run_dir).stat().st_size
    folder = _staging_folder(run_dir, (2 * len(parts) * len(formats) + 1) * size + 2**20)
    try:
        artifacts = _convert_all(parts, formats, folder, opset, facts, progress)
        if _after_convert is not None:
            _after_convert(folder)
        _verify(parts, artifacts, folder, progress, facts)
        with progress.stage(f"writing {final}"):
            result = manifest.build(facts, artifacts, opset, folder)
            manifest.write(result, folder / common.MANIFEST_FILE)
            _install(folder, final)
    except OSError as error:
        raise ExportError(_cannot_write(error, run_dir)) from error
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if verbose:
        print(f"exported {', '.join(artifacts)} to {final}")
    return result


def _load(run_dir, progress, verbose, latent_images):
    """(the model, the manifest's facts of it): its config checked against
    the run's, β, precision, its source record and the KL of each latent
    dimension (nats, measured on `latent_images` of the run if given)."""
    model_path = common.model_path(run_dir)
    source = runfolder.model_record(run_dir)
    with progress.stage(f"loading {model_path}") as notes:
        model = runfolder.load_model(model_path, compile=False)
        config = common.read_config(run_dir)
        runfolder.check_model(config, model, model_path)
        facts = manifest.model_facts(model, common.beta_facts(config))
        # The model's own policy wins over what the run says it asked for.
        facts["training_precision"] = common.read_precision(run_dir) | facts["training_precision"]
        facts["source"] = source
        notes.append(runfolder.describe_source(source))
    if verbose and (run_dir / common.EXPORT_DIR).exists() and common.stale(run_dir):
        print(f"replacing {run_dir / common.EXPORT_DIR}, made from another model.keras")
    with progress.stage("measuring the KL of each latent dimension") as notes:
        facts["latent_kl"] = manifest.latent_kl(model, run_dir, latent_images)
        notes.append(facts["latent_kl"].get("data") or facts["latent_kl"]["note"])
    return model, facts


def _staging_folder(run_dir, needed):
    """A new hidden folder in `run_dir` to convert into, once the disk has
    `needed` bytes free for it; ExportError (one line) if not."""
    # A name `keras_vae.files.remove_leftovers` knows: the next command on
    # the run deletes it if this one is killed.
    folder = run_dir / f".{common.EXPORT_DIR}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        folder.mkdir()  # Unlike tempfile.mkdtemp's 0700, this honours the umask.
        files.check_space(run_dir, needed, "the export", remedy="free some space and rerun")
    except OSError as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise ExportError(_cannot_write(error, run_dir)) from error
    return folder


def _convert_all(parts, formats, folder, opset, facts, progress):
    """{file name: its description} of every artifact of `parts` (decoder,
    encoder) in `formats`, converted into `folder`."""
    artifacts = {}
    for endpoint in parts:
        for fmt in formats:
            for name, precision in _artifacts(endpoint, fmt):
                note = f" (opset {opset})" if fmt == "onnx" else ""
                note = f" ({precision} weights)" if fmt == "litert" else note
                with progress.stage(f"converting {endpoint.part} to {name}{note}"):
                    _convert(endpoint, fmt, folder / name, opset, facts, precision)
                artifacts[name] = _describe(endpoint, fmt, precision, folder / name)
    return artifacts


def _cannot_write(error, run_dir):
    """The one-line message of a failed write in the run folder."""
    message = files.describe(error)
    if not message.startswith(("cannot write", "not enough space")):
        message = f"cannot write the export in {str(run_dir)!r}: {message}"
    return f"{message}; the previous export, if any, is unchanged"


def _artifacts(endpoint, fmt):
    """[(artifact name, precision)] that `fmt` makes of `endpoint`.

    LiteRT gives the decoder in every precision (the lossy ones are measured,
    not held to the parity limit) and the encoder in float32; the web page
    is made once, for the decoder.
    """
    if fmt == "savedmodel":
        return [(f"{endpoint.part}_savedmodel", None)]
    if fmt == "onnx":
        return [(f"{endpoint.part}.onnx", None)]
    if fmt == "litert":
        precisions = litert.PRECISIONS if endpoint.part == "decoder" else ("float32",)
        return [(litert.file_name(endpoint.part, p), p) for p in precisions]
    return [(web_page.FOLDER, None)] if endpoint.part == "decoder" else []


def _convert(endpoint, fmt, path, opset, facts, precision):
    try:
        if fmt == "savedmodel":
            savedmodel.save(endpoint, path)
        elif fmt == "onnx":
            onnx_export.convert(endpoint, path, opset, manifest.onnx_metadata(facts, opset))
        elif fmt == "litert":
            litert.convert(endpoint, path, precision)
        else:
            web_page.write(path)
    except OSError:
        raise
    except Exception as error:  # The converters raise whatever their internals do.
        code = files.write_error(error)
        if code is not None:  # TensorFlow's and ONNX's own types for a full disk.
            raise OSError(code, f"cannot write {str(path)!r}: {os.strerror(code)} "
                          f"({shutil.disk_usage(path.parent).free / 1e6:.1f} MB free); free some "
                          "space and rerun") from error
        raise ExportError(
            f"converting the {endpoint.part} to {path.name} failed "
            f"({type(error).__name__}: {one_line(error)}) — {_hint(fmt, endpoint)}"
        ) from error


def _hint(fmt, endpoint):
    return _HINTS[fmt].format(part=endpoint.part)


def _describe(endpoint, fmt, precision, path):
    if fmt == "web":
        return web_page.describe(endpoint.part)
    spec = endpoint.function.input_signature[0]
    outputs = endpoint.function.get_concrete_function().structured_outputs
    description = {
        "part": endpoint.part,
        "format": fmt,
        "inputs": {endpoint.input_name: spec.shape.as_list()},
        "outputs": {name: outputs[name].shape.as_list() for name in endpoint.output_names},
        "dtype": "float32",
    }
    if fmt in ("savedmodel", "litert"):
        description["signature"] = savedmodel.SIGNATURE
    if fmt == "litert":
        description["precision"] = precision
        description["size_bytes"] = path.stat().st_size
    return description


def _verify(parts, artifacts, folder, progress, facts):
    """Checks every artifact against Keras on probe inputs; records max |Δ| in `artifacts`.

    Lossy LiteRT files are run on decoded prior samples instead and their
    error is recorded as `quality` (see `verify.quality`).
    """
    probes = {endpoints.LATENT: verify.probe_latents(facts["latent_dim"])}
    for endpoint in parts:
        inputs = {endpoint.input_name: probes[endpoint.input_name]}
        reference = endpoint(inputs)
        probes.update(reference)  # The decoder's images probe the encoder.
        limit = verify.tolerance(reference)
        for name, description in artifacts.items():
            if description["part"] != endpoint.part or description["format"] == "web":
                continue
            fmt, path = description["format"], folder / name
            if fmt == "onnx":
                onnx_export.check(path)
            if description.get("precision", "float32") != "float32":
                _measure(endpoint, name, description, path, progress, facts)
                continue
            description["parity"] = {"tolerance": limit}
            for runtime, loader in _RUNTIMES[fmt]:
                with progress.stage(f"verifying {name} in {runtime}") as notes:
                    run = _load_artifact(loader, path, runtime, _hint(fmt, endpoint))
                    diffs = verify.parity(run, inputs, reference)
                    worst = ", ".join(f"{d:.2g} ({k})" for k, d in diffs.items())
                    notes.append(f"max |Δ| {worst}")
                    verify.check(f"{_LABELS[fmt]} ({runtime})", diffs, limit, _hint(fmt, endpoint))
                description["parity"][runtime] = diffs


def _measure(endpoint, name, description, path, progress, facts):
    """Records a lossy LiteRT file's error on prior samples against Keras float32."""
    (runtime, loader), = _RUNTIMES["litert"]
    inputs = {endpoints.LATENT: verify.prior_latents(facts["prior"], facts["latent_dim"])}
    with progress.stage(f"measuring {name} in {runtime}") as notes:
        run = _load_artifact(loader, path, runtime, _hint("litert", endpoint))
        try:
            quality = verify.quality(run, inputs, endpoint(inputs), facts["value_range"])
        except ExportError as error:
            raise ExportError(f"LiteRT ({runtime}) {name}: {error}") from None
        psnr = "identical" if quality["psnr_db"] is None else f"PSNR {quality['psnr_db']} dB"
        notes.append(f"max |Δ| {quality['max_abs_diff']:.2g}, {psnr}")
    description["quality"] = {"runtime": runtime, "reference": "Keras float32", **quality}


def _load_artifact(loader, path, runtime, hint):
    try:
        return loader(path)
    except Exception as error:  # Runtimes raise their own types for unloadable files.
        raise ExportError(
            f"{runtime} cannot load {path.name} "
            f"({type(error).__name__}: {one_line(error)}) — {hint}"
        ) from error


def _install(folder, final):
    """Renames `folder` to `final`, replacing an old `final` only once the new one is in."""
    old = None
    if os.path.lexists(final):
        old = folder.with_name(folder.name + ".old")
        os.replace(final, old)
    try:
        os.replace(folder, final)
    except OSError:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
