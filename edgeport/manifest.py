"""The per-model manifest (``artifacts/MODEL/manifest.json``): pure json, readable on a Pi.

Layout (schema 2)::

    {"schema": 2, "model": "fashion_mlp", "dataset": ..., "labels": [...], "labels_file": "labels.txt",
     "input_contract": {...}, "input_names": [...], "output_names": [...],
     "source": {"file", "kind", "sha256", "bytes"}, "calibration": {...},
     "artifacts": {FORMAT: {"format", "file", "sha256", "bytes", "files": {PATH: SHA256},
                            "source_sha256", "inputs", "outputs", "versions", ...}},
     "pending": {FORMAT: entry}}     # only while an export is replacing FORMAT

An entry's ``files`` lists every file the artifact is made of (the ``.c`` and its ``.h``; every
file inside a SavedModel directory), each with its sha256: all are checked before use.

Replacing an artifact is a small transaction (:mod:`edgeport.export.commit`): the new entry is
recorded under ``pending`` first, the old files are kept as backups, the new files are renamed
into place, and only then does the entry move to ``artifacts``. An interrupted replacement is
undone by :func:`recover` (the next export does it under the model's lock): the previous files and
entry come back. Readers that find a ``pending`` entry meanwhile use whichever of the two the files
on disk match (:func:`effective_entries`), so every sha256 they check holds.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeport.errors import EdgeportError, IntegrityError, ModelFileError
from edgeport.files import sha256_file, write_json_atomic
from edgeport.manifest_schema import validate
from edgeport import names

MANIFEST_NAME = names.MANIFEST_FILE
SCHEMA = 2
BACKUP_PREFIX = ".prev."


class StaleArtifactError(IntegrityError):
    """An artifact exported from another version of the model than the one beside it now."""


def find_model_dir(model: str, out: str | Path) -> Path:
    """MODEL as a model directory: a name under ``out``, or a directory path."""
    p = Path(model)
    if len(p.parts) == 1 and (Path(out) / model).is_dir():
        return Path(out) / model
    if p.is_dir():
        return p
    raise ModelFileError(f"{model!r}: no model directory {Path(out) / model} (run `edgeport export {model}`), "
                         "and not an artifact file or directory")


def manifest_path(model_dir: str | Path) -> Path:
    return Path(model_dir) / MANIFEST_NAME


def load_manifest(model_dir: str | Path, *, missing_ok: bool = False) -> dict[str, Any]:
    """Read a model directory's manifest; a missing one is an error unless ``missing_ok``."""
    path = manifest_path(model_dir)
    if not path.exists():
        if missing_ok:
            return {"schema": SCHEMA, "artifacts": {}}
        raise ModelFileError(f"{path}: no manifest; run `edgeport export` for this model first")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("artifacts"), dict):
        raise ModelFileError(f"{path}: not an edgeport manifest (no 'artifacts' object)")
    if data.get("schema") != SCHEMA:
        raise ModelFileError(f"{path}: manifest schema {data.get('schema')!r}, this edgeport reads schema "
                             f"{SCHEMA}; re-export the model with this edgeport")
    return validate(data, str(path))


def save_manifest(model_dir: str | Path, manifest: dict[str, Any]) -> Path:
    manifest = dict(manifest, schema=SCHEMA)
    if not manifest.get("pending"):
        manifest.pop("pending", None)
    return write_json_atomic(manifest_path(model_dir), manifest)


def artifact_file(model_dir: str | Path, entry: dict[str, Any]) -> Path:
    return Path(model_dir) / entry["file"]


def entry_files(entry: dict[str, Any]) -> dict[str, str]:
    """{path relative to the model directory: sha256} of every file of an artifact."""
    files = entry.get("files")
    if isinstance(files, dict) and files:
        return dict(files)
    return {entry["file"]: entry.get("sha256", "")}


def hash_files(root: Path, names: list[str]) -> dict[str, str]:
    """{relative path: sha256} for files and every file under directories among ``names``."""
    out: dict[str, str] = {}
    for name in names:
        path = root / name
        if path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.is_file()):
                out[f"{name}/{f.relative_to(path).as_posix()}"] = sha256_file(f)
        else:
            out[name] = sha256_file(path)
    return out


def _matches(model_dir: Path, entry: dict[str, Any]) -> bool:
    try:
        check_integrity(model_dir, entry)
    except IntegrityError:
        return False
    return True


def check_integrity(model_dir: str | Path, entry: dict[str, Any]) -> Path:
    """Return the artifact's path if every file of it matches the manifest, else raise IntegrityError."""
    model_dir = Path(model_dir)
    path = artifact_file(model_dir, entry)
    files = entry_files(entry)
    for name, expected in files.items():
        f = model_dir / name
        if not f.is_file():
            raise IntegrityError(f"{f}: listed in the manifest but missing")
        actual = sha256_file(f)
        if actual != expected:
            raise IntegrityError(
                f"{f}: sha256 {actual[:12]}… differs from the manifest's {str(expected)[:12]}…; "
                "the file was changed after export: re-export it, do not trust it")
    if path.is_dir():
        extra = sorted(set(hash_files(model_dir, [entry["file"]])) - set(files))
        if extra:
            raise IntegrityError(f"{model_dir / extra[0]}: a file the manifest does not list is inside "
                                 f"{entry['file']}/ ({len(extra)} such); re-export it, do not trust it")
    if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
        raise IntegrityError(f"{path}: sha256 differs from the manifest's; re-export it, do not trust it")
    return path


def check_fresh(manifest: dict[str, Any], fmt: str, entry: dict[str, Any], source_sha256: str,
                reexport: str) -> None:
    """Refuse an artifact exported from another model than the source beside it now."""
    made_from = entry.get("source_sha256")
    if made_from != source_sha256:
        source = (manifest.get("source") or {}).get("file", "the model")
        raise StaleArtifactError(
            f"{entry['file']}: stale: exported from a different {source} (sha256 {str(made_from)[:12]}…, "
            f"the model is now {source_sha256[:12]}…); re-export it: {reexport}")


def effective_entries(model_dir: str | Path, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The artifacts as the files on disk have them: a ``pending`` entry counts when its files are
    in place (an export stopped after the rename), the old entry otherwise. Read only, except when an
    interrupted export left a several-file artifact half replaced (``.ort`` and its config, ``.c`` and
    its ``.h``), matching neither entry: that is settled first (:func:`settle`), never called tampering."""
    if _half_replaced(Path(model_dir), manifest):
        settle(model_dir, manifest)
    entries = dict(manifest.get("artifacts", {}))
    for fmt, pending in (manifest.get("pending") or {}).items():
        entry = {k: v for k, v in pending.items() if not k.startswith("commit_")}
        if _matches(Path(model_dir), entry):
            entries[fmt] = entry
    return entries


def _half_replaced(model_dir: Path, manifest: dict[str, Any]) -> list[str]:
    """The pending formats whose files on disk match neither their new entry nor their old one."""
    out = []
    for fmt, pending in (manifest.get("pending") or {}).items():
        entry = {k: v for k, v in pending.items() if not k.startswith("commit_")}
        old = manifest.get("artifacts", {}).get(fmt)
        if not _matches(model_dir, entry) and not (old is not None and _matches(model_dir, old)):
            out.append(fmt)
    return out


def settle(model_dir: str | Path, manifest: dict[str, Any]) -> list[str]:
    """Settle an interrupted export's ``pending`` entries (:func:`recover`, under the model's lock) so
    that every listed file matches its entry; the lines it says go to stderr. While an export holds
    the lock its half-done replacement is its own: one clear error, to wait for it."""
    import sys

    from edgeport.export.commit import model_lock

    try:
        with model_lock(Path(model_dir), "export"):
            fresh = load_manifest(model_dir)  # as it is now, under the lock (the caller's copy may be older)
            said = recover(model_dir, fresh)
    except ModelFileError:
        raise
    except EdgeportError as exc:  # the lock is held: an export is writing this model now
        raise ModelFileError(str(exc)) from None
    manifest.clear()
    manifest.update(fresh)
    for line in said:
        print(f"edgeport: note: {model_dir}: {line}", file=sys.stderr, flush=True)
    return said


def recover(model_dir: str | Path, manifest: dict[str, Any]) -> list[str]:
    """Undo replacements an interrupted export left ``pending`` (call under the model's lock): the
    previous files come back from their backups and the previous entry stays; a format that had no
    previous artifact keeps the new one only if its files are whole. Leftover backups of finished
    replacements are removed. Saves the manifest when it changed; returns one line per format."""
    model_dir = Path(model_dir)
    said = []
    for fmt, pending in list((manifest.get("pending") or {}).items()):
        entry = {k: v for k, v in pending.items() if not k.startswith("commit_")}
        names = pending.get("commit_files") or _top_names(entry)
        backups = [(model_dir / backup_name(n), model_dir / n) for n in names]
        if any(b.exists() or b.is_symlink() for b, _ in backups):
            for backup, final in backups:
                if backup.exists():
                    restore(backup, final)
            said.append(f"{fmt}: an interrupted export was undone: the previous files are back")
        elif fmt not in manifest["artifacts"] and _matches(model_dir, entry):
            manifest.update(pending.get("commit_top") or {})
            manifest["artifacts"][fmt] = entry
            said.append(f"{fmt}: an interrupted first export had put whole files in place: kept them")
        else:
            said.append(f"{fmt}: an interrupted export left nothing usable; the previous entry stands")
        del manifest["pending"][fmt]
    for stray in sorted(model_dir.glob(BACKUP_PREFIX + "*")):  # a finished replacement's backups
        remove(stray)
    if said:
        save_manifest(model_dir, manifest)
    return said


def _top_names(entry: dict[str, Any]) -> list[str]:
    """The names directly inside the model directory that an artifact occupies."""
    return list(dict.fromkeys(name.split("/", 1)[0] for name in entry_files(entry)))


def backup_name(name: str) -> str:
    return BACKUP_PREFIX + name


def restore(backup: Path, dest: Path) -> None:
    import os

    if dest.is_dir() and not dest.is_symlink():
        import shutil

        shutil.rmtree(dest)
    os.replace(backup, dest)


def remove(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
