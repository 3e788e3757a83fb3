"""Serve a web bundle as it must be served: loopback by default, ``.wasm`` as ``application/wasm``,
``.mjs`` as JavaScript, and the cross-origin isolation headers (COOP/COEP) that WebAssembly threads
need. Standard library only."""
from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

from edgeport.errors import EdgeportError

#: Headers every response carries (threads need SharedArrayBuffer, which needs isolation).
HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
           "Cross-Origin-Resource-Policy": "same-origin", "Cache-Control": "no-cache",
           "X-Content-Type-Options": "nosniff"}
MIME = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
        ".json": "application/json", ".tflite": "application/octet-stream", ".onnx": "application/octet-stream",
        ".txt": "text/plain; charset=utf-8", ".md": "text/markdown; charset=utf-8", ".map": "application/json"}


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME}

    def end_headers(self) -> None:
        for k, v in HEADERS.items():
            self.send_header(k, v)
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        if not getattr(self.server, "quiet", False):
            super().log_message(format, *args)


def make_server(folder: Path, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False
                ) -> http.server.ThreadingHTTPServer:
    """A server of ``folder`` (not started); port 0 picks a free one."""
    folder = Path(folder)
    if not (folder / "index.html").is_file():
        raise EdgeportError(f"{folder}: no index.html; serve a web bundle (edgeport bundle MODEL --target web)")
    try:
        server = http.server.ThreadingHTTPServer((host, port), functools.partial(_Handler, directory=str(folder)))
    except OSError as exc:
        raise EdgeportError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    server.quiet = quiet  # type: ignore[attr-defined]
    server.daemon_threads = True
    return server


def start(folder: Path, host: str = "127.0.0.1", port: int = 0) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``folder`` in a background thread: (the server, its base URL). Call ``shutdown()``."""
    server = make_server(folder, host, port, quiet=True)
    threading.Thread(target=server.serve_forever, name="edgeport-serve", daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}/"


def serve(folder: Path, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve a web bundle over HTTP with the headers it needs, until interrupted.

    folder: the bundle folder (dist/MODEL-web)
    host: address to listen on; loopback unless you mean to expose it (0.0.0.0: every interface)
    port: port to listen on (0: any free port)
    """
    server = make_server(Path(folder), host, port)
    print(f"serving {folder} at http://{host}:{server.server_address[1]}/ (COOP/COEP, application/wasm); "
          "Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
