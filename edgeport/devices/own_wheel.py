"""edgeport's own wheel when it runs from an installed (non-editable) copy: no source tree to build from,
so the wheel is re-made from the installed files its RECORD lists (its package files and its dist-info,
RECORD written anew with each file's sha256; no scripts: pip makes them from entry_points.txt).
Cached by the RECORD's sha256; the zip is reproducible (fixed times, sorted members).
"""
from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

from edgeport.errors import EdgeportError

#: dist-info files that describe one installation, not the distribution
_LOCAL = ("INSTALLER", "REQUESTED", "direct_url.json", "RECORD")


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def installed_wheel(cache: Path, name: str = "edgeport") -> Path:
    """The wheel of installed distribution ``name``, re-made into ``cache``."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution(name)
    except PackageNotFoundError:
        raise EdgeportError(f"{name} is not installed as a distribution; its wheel cannot be made") from None
    record = dist.read_text("RECORD")
    files = [f for f in dist.files or [] if ".." not in f.parts and "__pycache__" not in f.parts
             and not (f.parts[0].endswith(".dist-info") and f.name in _LOCAL)]
    if record is None or not any(f.parts[0] == name for f in files):
        raise EdgeportError(f"{name} {dist.version}: an editable or incomplete install (no package files in its "
                            "RECORD); run edgeport from its checkout")
    dest = Path(cache) / f"{name}-{dist.version}-py3-none-any.whl"
    stamp = dest.with_suffix(".record-sha256")
    key = hashlib.sha256(record.encode()).hexdigest()
    if dest.is_file() and stamp.is_file() and stamp.read_text() == key:
        return dest
    info = next(f.parts[0] for f in files if f.parts[0].endswith(".dist-info"))
    lines = []
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(files, key=lambda p: p.as_posix()):
            data = Path(dist.locate_file(f)).read_bytes()
            z.writestr(zipfile.ZipInfo(f.as_posix(), (1980, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
            lines.append(f"{f.as_posix()},{_digest(data)},{len(data)}")
        lines.append(f"{info}/RECORD,,")
        z.writestr(zipfile.ZipInfo(f"{info}/RECORD", (1980, 1, 1, 0, 0, 0)), "\n".join(lines) + "\n")
    tmp.replace(dest)
    stamp.write_text(key)
    return dest
