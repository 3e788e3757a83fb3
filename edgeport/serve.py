"""Serve a web bundle as it must be served, and nothing else: loopback by default, ``.wasm`` as
``application/wasm``, ``.mjs`` as JavaScript, and the cross-origin isolation headers (COOP/COEP)
that WebAssembly threads need. Standard library only.

Only the files ``bundle.json`` lists are served, each only while its sha256 is the listed one
(checked at start; re-checked whenever the file's inode, size, mtime or ctime differs from the
checked one). No link is followed (a link, even at a listed name, is refused), no folder is
listed. Anything else is a 404 and one logged line: the path and why.
"""
from __future__ import annotations

import hashlib
import http.server
import ipaddress
import json
import mimetypes
import os
import socket
import stat
import sys
import threading
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from edgeport.errors import EdgeportError
from edgeport.names import BUNDLE_FILE

#: Headers every response carries (threads need SharedArrayBuffer, which needs isolation).
HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
           "Cross-Origin-Resource-Policy": "same-origin", "Cache-Control": "no-cache",
           "X-Content-Type-Options": "nosniff"}
MIME = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
        ".json": "application/json", ".tflite": "application/octet-stream", ".onnx": "application/octet-stream",
        ".txt": "text/plain; charset=utf-8", ".md": "text/markdown; charset=utf-8", ".map": "application/json",
        ".html": "text/html; charset=utf-8"}
_NOFOLLOW = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_BLOCK = 1 << 20


class Refused(Exception):
    """A request that gets a 404; the message says why."""


def _stat_key(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class BundleFiles:
    """The files one bundle folder may serve: those ``bundle.json`` lists, while their sha256 holds."""

    def __init__(self, folder: Path):
        self.root = Path(folder).resolve()
        meta = self.root / BUNDLE_FILE
        if meta.is_symlink() or not meta.is_file():
            raise EdgeportError(f"{folder}: no {BUNDLE_FILE}; serve a web bundle (edgeport bundle MODEL --target web)")
        try:
            files = json.loads(meta.read_text())["files"]
            self.listed: dict[str, str] = {str(k): str(v["sha256"]) for k, v in files.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EdgeportError(f"{meta}: not a bundle description (files with their sha256): {exc}") from None
        self._checked: dict[str, tuple[int, ...]] = {}
        self._lock = threading.Lock()
        for rel in sorted(self.listed):
            try:
                os.close(self.open(rel)[0])
            except Refused as why:
                raise EdgeportError(f"{folder}: {rel}: {why}; nothing served (rebuild the bundle)") from None

    def open(self, rel: str) -> tuple[int, os.stat_result]:
        """An open descriptor on the listed file ``rel`` and its stat, its sha256 checked; else :class:`Refused`."""
        if rel not in self.listed:
            raise Refused(f"not listed in {BUNDLE_FILE}")
        fd = _open_beneath(self.root, rel)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise Refused("not a regular file")
            key = _stat_key(st)
            with self._lock:
                trusted = self._checked.get(rel) == key
            if not trusted:
                digest = _sha256_fd(fd)
                if digest != self.listed[rel]:
                    with self._lock:
                        self._checked.pop(rel, None)
                    raise Refused(f"sha256 {digest[:12]}… differs from {BUNDLE_FILE}'s {self.listed[rel][:12]}…"
                                  " (changed after the bundle was made)")
                with self._lock:
                    self._checked[rel] = key
            return fd, st
        except BaseException:
            os.close(fd)
            raise


def _open_beneath(root: Path, rel: str) -> int:
    """Open ``root/rel`` component by component, refusing a link anywhere on the way."""
    parts = PurePosixPath(rel).parts
    if not parts or any(p in ("", ".", "..") for p in parts) or "\\" in rel or "\0" in rel:
        raise Refused("not a plain relative path")
    fd = os.open(root, _NOFOLLOW | getattr(os, "O_DIRECTORY", 0))
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            try:
                st = os.lstat(part, dir_fd=fd)
            except FileNotFoundError:
                raise Refused("listed but missing") from None
            if stat.S_ISLNK(st.st_mode):
                raise Refused(f"{'/'.join(parts[:i + 1])} is a link; links are never followed")
            try:
                nxt = os.open(part, _NOFOLLOW | (0 if last else getattr(os, "O_DIRECTORY", 0)), dir_fd=fd)
            except OSError as exc:  # swapped for a link between lstat and open (ELOOP), or unreadable
                raise Refused(f"cannot open {part} ({exc.strerror})") from None
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def _sha256_fd(fd: int) -> str:
    h = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    while block := os.read(fd, _BLOCK):
        h.update(block)
    os.lseek(fd, 0, os.SEEK_SET)
    return h.hexdigest()


def request_name(raw_path: str) -> str:
    """The bundle-relative name a request path asks for (``/`` is ``index.html``); :class:`Refused`
    for traversal (``..``, also percent-encoded), backslashes, NUL and empty segments."""
    path = unquote(urlsplit(raw_path).path, errors="strict")
    if not path.startswith("/"):
        raise Refused("not an absolute request path")
    rel = path[1:] or "index.html"
    parts = rel.split("/")
    if ".." in parts or "." in parts:
        raise Refused("traversal ('..' or '.') in the path")
    if "" in parts or "\\" in rel or "\0" in rel:
        raise Refused("folders are not listed" if rel.endswith("/") else "not a plain relative path")
    return rel


def content_type(rel: str) -> str:
    return (MIME.get(PurePosixPath(rel).suffix.lower()) or mimetypes.guess_type(rel)[0]
            or "application/octet-stream")


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "edgeport-serve"

    def do_GET(self) -> None:
        self._send(body=True)

    def do_HEAD(self) -> None:
        self._send(body=False)

    def _send(self, body: bool) -> None:
        files: BundleFiles = self.server.files  # type: ignore[attr-defined]
        try:
            rel = request_name(self.path)
            fd, st = files.open(rel)
        except (Refused, UnicodeDecodeError) as why:
            self.server.refuse(self.path, str(why) if isinstance(why, Refused) else "undecodable path")  # type: ignore[attr-defined]
            self.send_error(404, "not in this bundle")
            return
        with os.fdopen(fd, "rb") as fh:
            self.send_response(200)
            self.send_header("Content-Type", content_type(rel))
            self.send_header("Content-Length", str(st.st_size))
            self.end_headers()
            if body:
                while block := fh.read(_BLOCK):
                    self.wfile.write(block)

    def end_headers(self) -> None:
        for k, v in HEADERS.items():
            self.send_header(k, v)
        super().end_headers()

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """A 404 is not logged twice: its refusal is one line of its own (:meth:`BundleServer.refuse`)."""
        if not (args and args[0] == 404):
            super().log_error(format, *args)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        if not getattr(self.server, "quiet", False):
            super().log_message(format, *args)


class BundleServer(http.server.ThreadingHTTPServer):
    """An HTTP server of one bundle's files; ``refused`` keeps every refusal's line."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], files: BundleFiles, *, quiet: bool = False,
                 log: Callable[[str], None] | None = None):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)
        self.files, self.quiet = files, quiet
        self.refused: list[str] = []
        self._log = log or (lambda line: print(line, file=sys.stderr, flush=True))

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A request that ended mid-way (the page went away: a reset, a broken pipe) is one line, not the
        base class's traceback."""
        exc = sys.exc_info()[1]
        where = ":".join(str(p) for p in client_address[:2]) if client_address else "?"
        self._log(f"edgeport serve: a request from {where} ended early: {type(exc).__name__}: {exc}")

    def refuse(self, path: str, why: str) -> None:
        line = f"edgeport serve: 404 {path!r}: {why}"
        self.refused.append(line)
        self._log(line)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address) resolves to loopback addresses only."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def make_server(folder: Path, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False,
                log: Callable[[str], None] | None = None) -> BundleServer:
    """A server of the bundle in ``folder`` (not started); port 0 picks a free one."""
    folder = Path(folder)
    if not (folder / "index.html").is_file():
        raise EdgeportError(f"{folder}: no index.html; serve a web bundle (edgeport bundle MODEL --target web)")
    files = BundleFiles(folder)
    try:
        server = BundleServer((host, port), files, quiet=quiet, log=log)
    except OSError as exc:
        raise EdgeportError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    if not is_loopback(host):
        print(f"edgeport: warning: serving on {host} ({server.server_address[0]}), not loopback: every machine "
              "that can reach this one can fetch the bundle", file=sys.stderr, flush=True)
    return server


def start(folder: Path, host: str = "127.0.0.1", port: int = 0) -> tuple[BundleServer, str]:
    """Serve ``folder`` in a background thread: (the server, its base URL). Call ``shutdown()``."""
    server = make_server(folder, host, port, quiet=True)
    threading.Thread(target=server.serve_forever, args=(0.1,), name="edgeport-serve", daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}/"


def serve(folder: Path, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve a web bundle over HTTP with the headers it needs, until interrupted: only the files
    its bundle.json lists with their sha256, never a link or a folder listing (those are 404s, logged).

    folder: the bundle folder (dist/MODEL-web)
    host: address to listen on; loopback unless you mean to expose it (0.0.0.0: every interface)
    port: port to listen on (0: any free port)
    """
    server = make_server(Path(folder), host, port)
    print(f"serving {folder} ({len(server.files.listed)} files of its {BUNDLE_FILE}) at "
          f"http://{host}:{server.server_address[1]}/ (COOP/COEP, application/wasm); Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
