"""`keras-vae serve RUN_DIR`: the run's exported web page on 127.0.0.1.

    keras-vae serve RUN_DIR [--port 8000]     then open http://127.0.0.1:8000/web/

A local server, hardened because any web page the user visits can make the
browser talk to it:

- only files inside RUN_DIR/export are served: a path or symlink that leads
  outside it, a folder without index.html (no listings), or a name the file
  system refuses (`/web/%00`) is 404;
- the Host header must be 127.0.0.1 or localhost (with the port): another
  name pointing at 127.0.0.1 (DNS rebinding) gets 403;
- idle connections are closed after `TIMEOUT` seconds;
- a client that disconnects, or any other failure of one request, is one
  log line, never a traceback; the server goes on.

Exit codes as for the other commands: 2 a bad port or a run folder without an
exported page, 1 a port that cannot be bound, 130 Ctrl-C, 143 SIGTERM. It says
when the export is stale (model.keras changed since it was exported).
"""

import contextlib
import functools
import http.server
import pathlib
import sys
import threading

from export import common
from export import web_page
from pipelines import cli
from pipelines import flags
from pipelines import runfolder

TIMEOUT = 30  # seconds a connection may stay idle
HOSTS = ("127.0.0.1", "localhost")


class _Handler(http.server.SimpleHTTPRequestHandler):
    # Python's table may lack these; browsers need them for modules and fast WebAssembly.
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json",
    }
    timeout = TIMEOUT  # socket timeout: an idle connection is closed

    def send_head(self):
        """Checks the Host and the path before the base class opens the file."""
        host = self.headers.get("Host") or ""
        if (host.rpartition(":")[0] if ":" in host else host) not in HOSTS:
            self.send_error(403, "Host must be 127.0.0.1 or localhost")
            return None
        try:
            path = pathlib.Path(self.translate_path(self.path)).resolve()
            root = pathlib.Path(self.directory).resolve()
            inside = path == root or root in path.parents
            if not inside or (path.is_dir() and not (path / "index.html").is_file()):
                raise FileNotFoundError
        except (OSError, ValueError):  # ValueError: a NUL byte in the path.
            self.send_error(404, "File not found")
            return None
        return super().send_head()

    def list_directory(self, path):
        self.send_error(404, "File not found")  # No listings.
        return None

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """One line for a request that failed (a client gone, a timeout), not
        socketserver's traceback."""
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):
            print(f"keras-vae serve: a request failed: {type(error).__name__}: "
                  f"{common.one_line(error)}", file=sys.stderr)


@contextlib.contextmanager
def serving(export_dir, port=0):
    """Serves `export_dir` on 127.0.0.1 in a background thread; yields the page's URL."""
    handler = functools.partial(_Handler, directory=str(export_dir))
    server = _Server(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{web_page.FOLDER}/"
    finally:
        server.shutdown()
        server.server_close()


def main(argv=None, prog="keras-vae serve"):
    """`keras-vae serve RUN_DIR`: serves the run's export on 127.0.0.1 until Ctrl-C."""
    parser = flags.ArgumentParser(
        prog=prog, prefix=prog, description="Serve a run's latent-explorer page on 127.0.0.1."
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder exported with web")
    parser.add_argument("--port", type=flags.number(int, "a port from 0 to 65535", 0, 65535),
                        default=8000, help="port (default 8000; 0: any free)")
    args = parser.parse_args(argv)
    export_dir = pathlib.Path(args.run_dir) / common.EXPORT_DIR
    try:
        runfolder.check(args.run_dir, needs=())  # The export alone is enough.
        if not (export_dir / web_page.FOLDER / "index.html").is_file():
            raise common.UsageError(
                f"{str(export_dir)!r} holds no {web_page.FOLDER}/index.html: run keras-vae "
                f"export {args.run_dir} --formats web first")
        stale = common.stale(args.run_dir)
        if stale:
            print(f"{prog}: warning: {stale}", file=sys.stderr)
        with serving(export_dir, args.port) as url:
            print(f"Serving {export_dir} at {url} (Ctrl-C to stop)", flush=True)
            threading.Event().wait()
    except (common.ExportError, runfolder.RunFolderError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"{prog}: error: cannot serve on port {args.port}: {error.strerror or error}; "
              "pass another --port", file=sys.stderr)
        return 1
    except KeyboardInterrupt as error:
        return cli.interrupted(error, "stopped serving", prog)
    return 0


if __name__ == "__main__":
    cli.handle_signals()
    sys.exit(main(prog="python -m export.serve"))
