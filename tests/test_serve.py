"""`edgeport serve` serves the bundle and nothing else: the files bundle.json lists, while their sha256
holds; never a link, a folder listing, an unlisted file or a path outside the folder. Fast: a tiny fake
bundle in the format export/targets/bundle.py writes, no browser."""
from __future__ import annotations

import http.client
import json
import os
from pathlib import Path

import pytest

from edgeport.bundle import describe_files
from edgeport.errors import EdgeportError
from edgeport.serve import Refused, make_server, request_name, start

FILES = {"index.html": b"<!doctype html><title>t</title>", "app.js": b"console.log('hi')",
         "web.json": b'{"model": "m"}', "models/model_int8.tflite": b"\x00TFL3" * 10,
         "node_modules/@litertjs/core/wasm/x.wasm": b"\x00asm" + bytes(20)}


@pytest.fixture
def bundle(tmp_path) -> Path:
    root = tmp_path / "m-web"
    for rel, data in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    meta = {"schema": 1, "model": "m", "target": "web", "files": describe_files(root), "notes": []}
    (root / "bundle.json").write_text(json.dumps(meta))
    return root


@pytest.fixture
def served(bundle):
    server, _ = start(bundle)
    yield bundle, server
    server.shutdown()
    server.server_close()


def get(server, raw_path: str) -> tuple[int, bytes, http.client.HTTPResponse]:
    """GET ``raw_path`` exactly as written (no client-side normalisation of ``..``)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        conn.putrequest("GET", raw_path, skip_accept_encoding=True)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read(), r
    finally:
        conn.close()


def refused(server, raw_path: str, why: str) -> None:
    """``raw_path`` is a 404 whose body holds nothing of the file, and one logged line names it and why."""
    before = len(server.refused)
    status, body, _ = get(server, raw_path)
    assert status == 404
    assert b"root:" not in body and FILES["app.js"] not in body
    new = server.refused[before:]
    assert len(new) == 1 and raw_path.lstrip("/") in new[0] and why in new[0], new  # '//' arrives as '/'


def test_a_listed_file_is_served_with_its_headers(served):
    _, server = served
    for rel, data in FILES.items():
        status, body, r = get(server, "/" + rel)
        assert (status, body) == (200, data)
        assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert get(server, "/node_modules/@litertjs/core/wasm/x.wasm")[2].headers["Content-Type"] == "application/wasm"
    assert get(server, "/")[1] == FILES["index.html"]
    assert get(server, "/app.js?v=1")[1] == FILES["app.js"]  # a query string does not change the file
    assert server.refused == []


def test_a_link_to_etc_passwd_is_refused(served):
    bundle, server = served
    os.symlink("/etc/passwd", bundle / "passwd")
    refused(server, "/passwd", "not listed")


def test_a_link_at_a_listed_name_is_refused(served):
    """Even pointing at the very bytes listed: links are never followed (file or folder)."""
    bundle, server = served
    (bundle / "real.js").write_bytes(FILES["app.js"])
    (bundle / "app.js").unlink()
    os.symlink(bundle / "real.js", bundle / "app.js")
    refused(server, "/app.js", "is a link")
    os.rename(bundle / "models", bundle / "models.real")
    os.symlink(bundle / "models.real", bundle / "models")
    refused(server, "/models/model_int8.tflite", "models is a link")


def test_an_unlisted_file_and_bundle_json_and_folders_are_refused(served):
    bundle, server = served
    (bundle / "secret.txt").write_text("not listed")
    refused(server, "/secret.txt", "not listed")
    refused(server, "/bundle.json", "not listed")
    refused(server, "/models/", "folders are not listed")
    refused(server, "/models", "not listed")


def test_a_changed_file_is_refused(served):
    """Trust is not stale: a file changed after start (same size) is re-hashed and refused."""
    bundle, server = served
    assert get(server, "/app.js")[0] == 200
    (bundle / "app.js").write_bytes(FILES["app.js"].replace(b"hi", b"HI"))
    refused(server, "/app.js", "differs from bundle.json")
    (bundle / "app.js").write_bytes(FILES["app.js"])  # put back: served again
    assert get(server, "/app.js")[1] == FILES["app.js"]


@pytest.mark.parametrize("raw_path", ["/../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                                      "/models/%2E%2E/%2e%2e/%2e%2e/etc/passwd", "/models/..%2f..%2f..%2fetc/passwd",
                                      "/./app.js"])
def test_traversal_is_refused(served, raw_path):
    refused(served[1], raw_path, "traversal")


@pytest.mark.parametrize("raw_path", ["//etc/passwd", "/models//model_int8.tflite", "/app.js%00.png",
                                      "/models%5c..%5c..%5cetc/passwd"])
def test_odd_paths_are_refused(served, raw_path):
    refused(served[1], raw_path, "")


def test_request_name():
    assert request_name("/") == "index.html"
    assert request_name("/node_modules/%40litertjs/core/x.wasm?x=1") == "node_modules/@litertjs/core/x.wasm"
    with pytest.raises(Refused, match="traversal"):
        request_name("/a/%2E%2e/b")


def test_a_bundle_changed_before_start_is_not_served(bundle):
    (bundle / "web.json").write_bytes(b'{"model": "other"}')
    with pytest.raises(EdgeportError, match=r"web.json: sha256 .* differs from bundle.json"):
        make_server(bundle, port=0)
    (bundle / "bundle.json").unlink()
    with pytest.raises(EdgeportError, match="no bundle.json"):
        make_server(bundle, port=0)


def test_loopback_is_quiet_and_any_other_address_is_named(bundle, capsys):
    make_server(bundle, "127.0.0.1", 0).server_close()
    make_server(bundle, "localhost", 0).server_close()
    assert "warning" not in capsys.readouterr().err
    make_server(bundle, "0.0.0.0", 0).server_close()
    err = capsys.readouterr().err
    assert "edgeport: warning: serving on 0.0.0.0" in err and "not loopback" in err


def test_a_request_that_ends_early_is_one_line_not_a_traceback(bundle, capsys):
    lines: list[str] = []
    server = make_server(bundle, "127.0.0.1", 0, log=lines.append)
    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError:
            server.handle_error(None, ("127.0.0.1", 59006))
    finally:
        server.server_close()
    out = capsys.readouterr()
    assert lines == ["edgeport serve: a request from 127.0.0.1:59006 ended early: ConnectionResetError: "
                     "[Errno 104] Connection reset by peer"]
    assert "Traceback" not in out.err + out.out and "Exception occurred" not in out.err + out.out
