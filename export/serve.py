"""A run's exported web page on 127.0.0.1 (`serving`; the command
`keras-vae serve RUN_DIR [--port 8000]` is `pipelines.exportcmd.serve`).

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

"""

import contextlib
import functools
import http.server
import pathlib
import sys
import threading

from export import common
from export import web_page

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
