"""The latent-explorer web page: `RUN_DIR/export/web/`, and a local server for it.

`write` copies the page (`export/web/index.html`) and the two files of ONNX
Runtime Web it imports (the WebAssembly-only bundle and its `.wasm`) into the
export. The page reads `../export.json` and `../decoder.onnx`, so serving
`RUN_DIR/export` over HTTP is all it needs: no CDN, nothing downloaded at run
time. The runtime comes from the npm package pinned in `export/web/package.json`
(`make` runs `npm ci` there: the 14 MB `.wasm` stays out of git).
`export.serve` serves it: `keras-vae serve RUN_DIR`.
"""

import json
import pathlib
import shutil

from export import common

FOLDER = "web"
ASSETS = pathlib.Path(__file__).parent / "web"
PACKAGE = ASSETS / "node_modules" / "onnxruntime-web"
#: What the page needs from the npm package's dist/: ES module bundle, WebAssembly.
RUNTIME_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")
NOTICE = """\
ort.wasm.bundle.min.mjs and ort-wasm-simd-threaded.wasm are from the npm package
onnxruntime-web {version} (https://github.com/microsoft/onnxruntime), MIT License,
Copyright (c) Microsoft Corporation. index.html is part of keras-vae (Apache-2.0).
"""


def runtime_version():
    """The version of the installed onnxruntime-web, or None if it is not installed."""
    try:
        return json.loads((PACKAGE / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


#: Why the web page cannot be made, and how to make it possible.
MISSING = (f"onnxruntime-web is not installed in {str(ASSETS)!r} (add it with "
           f"`npm ci --prefix {ASSETS}`, or `make`)")


def check_runtime():
    """Raises a one-line `UsageError` unless the runtime files are installed."""
    missing = [name for name in RUNTIME_FILES if not (PACKAGE / "dist" / name).is_file()]
    if runtime_version() is None or missing:
        raise common.UsageError(
            f"the web page needs onnxruntime-web: {MISSING}; or leave web out with "
            "--formats savedmodel,onnx,litert"
        )


def write(folder):
    """Writes the page and the runtime files to `folder` (a new directory)."""
    check_runtime()
    folder.mkdir()
    shutil.copyfile(ASSETS / "index.html", folder / "index.html")
    for name in RUNTIME_FILES:
        shutil.copyfile(PACKAGE / "dist" / name, folder / name)
    (folder / "THIRD_PARTY_NOTICES.txt").write_text(NOTICE.format(version=runtime_version()))


def describe(part):
    """The web page's entry in export.json's `artifacts`."""
    return {
        "part": part,
        "format": "web",
        "page": f"{FOLDER}/index.html",
        "runs": "decoder.onnx",
        "runtime": {"onnxruntime-web": runtime_version(), "backend": "wasm, 1 thread"},
        "reads": common.MANIFEST_FILE,
    }
