"""Deployment bundles (``dist/MODEL-TARGET/`` and ``dist/MODEL-TARGET.tar.gz``): the format, and
reading one safely. Pure Python and numpy: a Raspberry Pi opens bundles without TensorFlow.

A bundle is a folder with ``bundle.json`` at its root::

    {"schema": 1, "model": ..., "target": "rpi" | "android" | "ios" | "mcu", "created": ...,
     "edgeport": VERSION, "files": {PATH: {"sha256": ..., "bytes": ...}}, "notes": [...], ...}

``files`` lists every other file with its sha256. Reading one (:func:`open_bundle`) refuses, before
anything is loaded: absolute paths, ``..``, links, device files and other non-regular members,
files ``bundle.json`` does not list, listed files that are missing, and any sha256 mismatch.
"""
from __future__ import annotations

import json
import os
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from edgeport.errors import IntegrityError
from edgeport.files import sha256_file
from edgeport import names

BUNDLE_FILE = names.BUNDLE_FILE
SCHEMA = 1
TARGETS = ("rpi", "android", "ios", "mcu", "web")
MAX_MEMBERS = 10_000
MAX_BYTES = 4 << 30


class BundleError(IntegrityError):
    """A bundle that is malformed, unsafe to unpack, or not what its bundle.json says."""


def _safe_name(name: str, where: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or name.startswith(("/", "\\")) or ".." in path.parts or "\\" in name:
        raise BundleError(f"{where}: unsafe path {name!r} in the bundle (absolute or '..'); refused")
    return path


def _extract(archive: Path, dest: Path) -> Path:
    """Unpack a .tar.gz member by member, refusing anything but plain files and directories."""
    import zlib

    try:
        return _unpack(archive, dest)
    except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as exc:  # a corrupt archive
        raise BundleError(f"{archive}: corrupt bundle archive ({type(exc).__name__}: {exc})") from None


def _unpack(archive: Path, dest: Path) -> Path:
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{archive}: not a readable bundle archive ({exc})") from None
    total, roots = 0, set()
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise BundleError(f"{archive}: corrupt bundle archive ({exc})") from None
        if len(members) > MAX_MEMBERS:
            raise BundleError(f"{archive}: {len(members)} members; a bundle has far fewer")
        for m in members:
            path = _safe_name(m.name, str(archive))
            if m.issym() or m.islnk():
                raise BundleError(f"{archive}: {m.name!r} is a link; bundles hold plain files only")
            if not (m.isfile() or m.isdir()):
                raise BundleError(f"{archive}: {m.name!r} is a device, fifo or other special file; refused")
            total += m.size
            if total > MAX_BYTES:
                raise BundleError(f"{archive}: unpacks to more than {MAX_BYTES >> 30} GiB; refused")
            roots.add(path.parts[0])
        if len(roots) != 1:
            raise BundleError(f"{archive}: a bundle has one top folder, this one has {sorted(roots)[:5]}")
        for m in members:
            target = dest.joinpath(*PurePosixPath(m.name).parts)
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(m)
            if src is None:
                raise BundleError(f"{archive}: {m.name!r} cannot be read")
            with src, open(target, "wb") as out:
                while block := src.read(1 << 20):
                    out.write(block)
    return dest / roots.pop()


def _check_tree(root: Path, listed: dict[str, Any], where: str) -> None:
    present: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            mode = os.lstat(p).st_mode
            rel = p.relative_to(root).as_posix()
            if stat.S_ISLNK(mode):
                raise BundleError(f"{where}: {rel!r} is a link; bundles hold plain files only")
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                raise BundleError(f"{where}: {rel!r} is a device, fifo or other special file; refused")
            present.add(rel)
    present.discard(BUNDLE_FILE)
    if extra := sorted(present - set(listed)):
        raise BundleError(f"{where}: {extra[0]!r} is not listed in {BUNDLE_FILE} ({len(extra)} such); refused")
    if missing := sorted(set(listed) - present):
        raise BundleError(f"{where}: {missing[0]!r} is listed in {BUNDLE_FILE} but missing")
    for rel, info in listed.items():
        _safe_name(rel, where)
        actual = sha256_file(root / rel)
        if actual != info.get("sha256"):
            raise BundleError(f"{where}: {rel} sha256 {actual[:12]}… differs from bundle.json's "
                              f"{str(info.get('sha256'))[:12]}…: the bundle was changed after it was made; refused")


@dataclass
class Bundle:
    """An opened, fully checked bundle: ``root`` holds its files."""

    root: Path
    meta: dict[str, Any]
    source: Path
    _tmp: Any = None

    @property
    def model(self) -> str:
        return str(self.meta.get("model"))

    @property
    def target(self) -> str:
        return str(self.meta.get("target"))

    def path(self, name: str) -> Path:
        if name not in self.meta["files"]:
            raise BundleError(f"{self.source}: no {name!r} in the bundle")
        return self.root / name

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> "Bundle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_bundle(source: str | Path) -> Bundle:
    """Unpack (a .tar.gz) or open (a folder) a bundle and check every file before use."""
    source = Path(source)
    tmp = None
    if source.is_dir():
        root = source
    elif source.is_file():
        tmp = tempfile.TemporaryDirectory(prefix="edgeport-bundle-")
        try:
            root = _extract(source, Path(tmp.name))
        except BaseException:
            tmp.cleanup()
            raise
    else:
        raise BundleError(f"{source}: no such bundle (a dist/MODEL-TARGET.tar.gz or its folder)")
    try:
        meta_path = root / BUNDLE_FILE
        if meta_path.is_symlink() or not meta_path.is_file():
            raise BundleError(f"{source}: no {BUNDLE_FILE} at the bundle's root; not an edgeport bundle")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise BundleError(f"{source}: unreadable {BUNDLE_FILE} ({exc})") from None
        if not isinstance(meta, dict) or meta.get("schema") != SCHEMA or not isinstance(meta.get("files"), dict):
            raise BundleError(f"{source}: {BUNDLE_FILE} is not an edgeport bundle description (schema {SCHEMA})")
        if meta.get("target") not in TARGETS:
            raise BundleError(f"{source}: unknown bundle target {meta.get('target')!r}")
        _check_tree(root, meta["files"], str(source))
    except BaseException:
        if tmp is not None:
            tmp.cleanup()
        raise
    return Bundle(root, meta, source, tmp)


def describe_files(root: Path) -> dict[str, dict[str, Any]]:
    """``files`` of a bundle.json: every file under ``root`` but ``root/bundle.json``."""
    out = {}
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        rel = p.relative_to(root).as_posix()
        if rel != BUNDLE_FILE:
            out[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    return out
