"""Put a freshly exported artifact in place without ever losing the previous good one.

:func:`commit` is a small transaction over the model directory (see :mod:`edgeport.manifest`):

1. the new entry is saved under the manifest's ``pending`` with the files it moves and the top-level
   fields it changes (the old entry and fields stay as they are);
2. the old files are kept as ``.prev.NAME`` backups (a hard link; a directory is renamed);
3. the staged files are renamed into place;
4. the entry moves to ``artifacts`` and the manifest is saved; the backups are removed.

Killed anywhere, the directory holds either the old artifact or the new one with its entry, and
:func:`edgeport.manifest.recover` (run by the next export, under :func:`model_lock`) settles
which. Two exports of one model never run at once: the second is refused by the lock.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

from edgeport.errors import ExportError
from edgeport.manifest import backup_name, remove, save_manifest

LOCK_NAME = ".edgeport.lock"


@contextlib.contextmanager
def model_lock(model_dir: Path, what: str = "export", *, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the model directory's lock for the duration; refuse if another still holds it after
    ``wait_s`` seconds (0: at once; a short write such as merging verify.json waits its turn)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / LOCK_NAME
    fh = open(path, "a+")
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                raise ExportError(f"{model_dir}: another edgeport {what} is writing this model ({holder}); "
                                  "wait for it to finish, then run this again") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{what} pid {os.getpid()}")
        fh.flush()
        yield
    finally:
        fh.close()


def _fsync_tree(path: Path) -> None:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for f in files:
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())


def _keep_backup(final: Path, backup: Path) -> None:
    remove(backup)
    if final.is_dir() and not final.is_symlink():
        os.replace(final, backup)  # a directory cannot be hard-linked: the next rename follows at once
        return
    try:
        os.link(final, backup)
    except OSError:  # a file system without hard links
        shutil.copy2(final, backup)


def commit(model_dir: Path, manifest: dict[str, Any], fmt: str, entry: dict[str, Any], staging: Path,
           names: list[str], top: dict[str, Any] | None = None) -> None:
    """Move ``names`` from ``staging`` into ``model_dir`` and record ``entry`` as ``fmt``'s; the
    manifest's top-level fields ``top`` (the source model, labels, ...) change in the same step."""
    for name in names:
        _fsync_tree(staging / name)
    manifest.setdefault("pending", {})[fmt] = {**entry, "commit_files": list(names), "commit_top": dict(top or {})}
    save_manifest(model_dir, manifest)
    backups = []
    for name in names:
        final = model_dir / name
        if final.exists() or final.is_symlink():
            backup = model_dir / backup_name(name)
            _keep_backup(final, backup)
            backups.append(backup)
    for name in names:
        final = model_dir / name
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(staging / name, final)
    manifest.update(top or {})
    manifest["artifacts"][fmt] = entry
    del manifest["pending"][fmt]
    save_manifest(model_dir, manifest)
    for backup in backups:
        remove(backup)
