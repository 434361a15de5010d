"""The latent-explorer web page: `RUN_DIR/export/web/`, and a local server for it.

`write` copies the page (`export/web/index.html`) and the two files of ONNX
Runtime Web it imports (the WebAssembly-only bundle and its `.wasm`) into the
export. The page reads `../export.json` and `../decoder.onnx`, so serving
`RUN_DIR/export` over HTTP is all it needs: no CDN, nothing downloaded at run
time. The runtime comes from the npm package pinned in `export/web/package.json`
(`make` runs `npm ci` there: the 14 MB `.wasm` stays out of git).

    keras-vae serve RUN_DIR [--port 8000]     then open http://127.0.0.1:8000/web/
"""

import argparse
import contextlib
import functools
import http.server
import json
import pathlib
import shutil
import sys
import threading

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


def check_runtime():
    """Raises a one-line `ExportError` unless the runtime files are installed."""
    missing = [name for name in RUNTIME_FILES if not (PACKAGE / "dist" / name).is_file()]
    if runtime_version() is None or missing:
        raise common.ExportError(
            f"the web page needs onnxruntime-web, which is not installed in {str(ASSETS)!r}: "
            f"run `make` (or `npm ci --prefix {ASSETS}`), or leave web out with "
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


class _Handler(http.server.SimpleHTTPRequestHandler):
    # Python's table may lack these; browsers need them for modules and fast WebAssembly.
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json",
    }

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


@contextlib.contextmanager
def serving(export_dir, port=0):
    """Serves `export_dir` on 127.0.0.1 in a background thread; yields the page's URL."""
    handler = functools.partial(_Handler, directory=str(export_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{FOLDER}/"
    finally:
        server.shutdown()
        server.server_close()


def main(argv=None, prog="keras-vae serve"):
    """`keras-vae serve RUN_DIR`: serves the run's export on 127.0.0.1 until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Serve a run's latent-explorer page on 127.0.0.1."
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder exported with web")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    args = parser.parse_args(argv)
    export_dir = pathlib.Path(args.run_dir) / common.EXPORT_DIR
    if not (export_dir / FOLDER / "index.html").is_file():
        print(
            f"{prog}: error: {str(export_dir)!r} holds no {FOLDER}/index.html: run "
            f"keras-vae export {args.run_dir} (its default formats include web) first",
            file=sys.stderr,
        )
        return 1
    try:
        with serving(export_dir, args.port) as url:
            print(f"Serving {export_dir} at {url} (Ctrl-C to stop)", flush=True)
            threading.Event().wait()
    except OSError as error:
        print(f"{prog}: error: cannot serve on port {args.port}: {error.strerror or error}; "
              "pass another --port", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m export.web_page"))
