"""Write a deployment bundle: ``dist/MODEL-TARGET/`` and ``dist/MODEL-TARGET.tar.gz``, atomically.

Files are staged in a temporary folder beside the destination; ``bundle.json`` lists each with its
sha256 (the format: :mod:`edgeport.bundle`); then the folder replaces the previous one and the
archive (reproducible: sorted members, fixed times and owners) is written under a temporary name
and renamed. A failed build leaves the previous bundle as it was.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgeport import __version__
from edgeport.bundle import BUNDLE_FILE, SCHEMA, TARGETS, describe_files
from edgeport.errors import EdgeportError
from edgeport.files import atomic_path, human_size
from edgeport import names


@dataclass
class BundleResult:
    model: str
    target: str
    folder: Path
    archive: Path
    files: dict[str, dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    ok: bool = True

    def render(self) -> str:
        lines = [f"bundle {self.model} for {self.target}: {self.archive} ({human_size(self.archive.stat().st_size)}), "
                 f"folder {self.folder}"]
        lines += [f"  {name:<40} {human_size(info['bytes']):>10}  sha256 {info['sha256'][:12]}…"
                  for name, info in self.files.items()]
        lines += self.tables
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


class BundleBuilder:
    """Collect a bundle's files in a staging folder; :meth:`finish` puts it in place."""

    def __init__(self, model: str, target: str, dist: Path):
        if target not in TARGETS:
            raise EdgeportError(f"unknown bundle target {target!r}; targets: {', '.join(TARGETS)}")
        self.model, self.target, self.dist = model, target, Path(dist)
        self.name = f"{model}-{target}"
        self.dist.mkdir(parents=True, exist_ok=True)
        self.stage = Path(tempfile.mkdtemp(prefix=f".{self.name}.", suffix=".tmp", dir=self.dist))
        self.meta: dict[str, Any] = {}
        self.notes: list[str] = []
        self.tables: list[str] = []

    def path(self, rel: str) -> Path:
        dest = self.stage / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        return dest

    def add_file(self, rel: str, src: Path) -> Path:
        dest = self.path(rel)
        shutil.copyfile(src, dest)
        return dest

    def add_bytes(self, rel: str, data: bytes) -> Path:
        dest = self.path(rel)
        dest.write_bytes(data)
        return dest

    def add_text(self, rel: str, text: str) -> Path:
        return self.add_bytes(rel, text.encode("utf-8"))

    def add_json(self, rel: str, obj: Any) -> Path:
        return self.add_text(rel, json.dumps(obj, indent=2, default=str) + "\n")

    def finish(self) -> BundleResult:
        files = describe_files(self.stage)
        meta = {"schema": SCHEMA, "model": self.model, "target": self.target, "edgeport": __version__,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **self.meta,
                "notes": self.notes, "files": files}
        (self.stage / BUNDLE_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        folder, archive = self.dist / self.name, self.dist / f"{self.name}.tar.gz"
        with atomic_path(archive) as tmp:
            tmp.write_bytes(_tar_gz(self.stage, self.name))
        old = self.dist / f".{self.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            os.replace(folder, old)
        os.chmod(self.stage, 0o755)
        os.replace(self.stage, folder)
        shutil.rmtree(old, ignore_errors=True)
        return BundleResult(self.model, self.target, folder, archive, files, list(self.notes), list(self.tables))

    def abort(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)


def _tar_gz(root: Path, top: str) -> bytes:
    """A reproducible .tar.gz of ``root`` under the folder name ``top``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for p in [root, *sorted(root.rglob("*"))]:
            rel = p.relative_to(root).as_posix()
            info = tarfile.TarInfo(top if rel == "." else f"{top}/{rel}")
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if p.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = p.stat().st_size, 0o644
                with open(p, "rb") as fh:
                    tar.addfile(info, fh)
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


VERIFY_FILE = names.VERIFY_FILE


def require_verified(model_dir: Path, formats: list[str]) -> dict[str, Any]:
    """The last verify.json of ``model_dir``; EdgeportError unless every one of ``formats`` passed it
    (only proved artifacts ship)."""
    path = model_dir / VERIFY_FILE
    try:
        verify = json.loads(path.read_text())
    except (OSError, ValueError):
        raise EdgeportError(f"{model_dir.name}: not verified; run `edgeport verify {model_dir}` first "
                            "(only proved artifacts ship)") from None
    if bad := [f for f in formats if _why_not(verify, f)]:
        raise EdgeportError(f"{model_dir.name}: {', '.join(bad)} did not pass the last verify ({path}); "
                            "fix or re-export and verify before bundling")
    return verify


def _why_not(verify: dict[str, Any], fmt: str) -> str:
    """Why ``fmt`` may not ship after this verify ("" when every row of it passed)."""
    rows = [r for r in verify.get("results", []) if r.get("format") == fmt]
    if not rows:
        return "not in the last verify"
    bad = next((r for r in rows if r.get("status") != "pass"), None)
    if bad is None:
        return ""
    first = (bad.get("failures") or [{}])[0].get("message", "")
    first = first if len(first) <= 160 else first[:159] + "…"
    return f"{bad.get('status')} on {bad.get('runtime')} in the last verify" + (f": {first}" if first else "")


@dataclass(frozen=True)
class Selection:
    """Which of a target's formats ship (``edgeport bundle --formats F ... --skip-failing``)."""

    formats: tuple[str, ...] = ()  # ship only these (empty: every format the target carries)
    skip_failing: bool = False  # leave out a format that did not pass the last verify, and say why

    def __bool__(self) -> bool:
        return bool(self.formats) or self.skip_failing

    def choose(self, model_dir: Path, carried: tuple[str, ...], exported: dict[str, Any],
               required: tuple[str, ...]) -> tuple[list[str], dict[str, str], dict[str, Any]]:
        """(formats to ship, {format left out: why}, verify.json) of ``carried`` (the target's formats,
        in order); without a selection every ``required`` one must be exported and every one must pass."""
        name = model_dir.name
        if unknown := [f for f in self.formats if f not in carried]:
            raise EdgeportError(f"--formats {' '.join(unknown)}: this bundle carries {', '.join(carried)}")
        if missing := [f for f in (self.formats or ([] if self.skip_failing else required)) if f not in exported]:
            raise EdgeportError(f"{name}: {', '.join(missing)} not exported; export first "
                                f"(edgeport export {model_dir} --formats {' '.join(missing)})")
        wanted = [f for f in carried if f in exported and (not self.formats or f in self.formats)]
        left = {f: "not asked for (--formats)" for f in carried if f in exported and f not in wanted}
        left.update({f: "not exported" for f in carried if f not in exported and f not in required})
        if not self.skip_failing:
            try:
                return wanted, left, require_verified(model_dir, wanted)
            except EdgeportError as exc:
                raise EdgeportError(f"{exc}; or leave failing formats out: --skip-failing (or --formats F ...)") \
                    from None
        verify = require_verified(model_dir, [])
        failing = {f: why for f in wanted if (why := _why_not(verify, f))}
        ship = [f for f in wanted if f not in failing]
        if not ship:
            raise EdgeportError(f"{name}: none of {', '.join(wanted) or 'its formats'} passed the last verify "
                                f"({model_dir / VERIFY_FILE}); nothing to ship")
        return ship, {**left, **failing}, verify

    @staticmethod
    def readme(left: dict[str, str]) -> str:
        """The README's paragraph on what was left out and why ("" when nothing was)."""
        if not left:
            return ""
        return "\nLeft out of this bundle:\n\n" + "".join(f"- {f}: {why}\n" for f, why in left.items())
