"""Atomic writes and hashing: an artifact is either wholly there or not there at all."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file, or of every file in a directory (sorted relative paths and bytes)."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(path)).encode())
            h.update(b"\0")
            h.update(sha256_file(f).encode())
        return h.hexdigest()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def size_bytes(path: str | os.PathLike) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success rename it onto ``dest``.

    On any exception the temporary is removed and ``dest`` is left untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    target = tmp if directory else tmp / dest.name
    try:
        yield target
        if not target.exists():
            raise FileNotFoundError(f"nothing was written to {target}")
        if directory:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(target, 0o777 & ~umask)  # mkdtemp makes 0700; a directory artifact is public
            if dest.exists():
                old = dest.with_name(f".{dest.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(dest, old)
                os.replace(target, dest)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(target, dest)
        else:
            with open(target, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(target, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_bytes_atomic(dest: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text_atomic(dest: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(dest, text.encode("utf-8"))


def write_json_atomic(dest: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(dest, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def human_size(n: int | None) -> str:
    """Bytes in binary units (1 KB = 1024 B), as every edgeport table prints them."""
    if n is None:
        return "-"
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MB"
