"""What both conversion jobs share: the converter's chatter to a log file, and the converted artifact read
back (inputs, outputs, precision class) by the engine that runs it, which proves it loads."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from edgeport.errors import EdgeportError, ExportError


@contextlib.contextmanager
def logged(log: Path, title: str) -> Iterator[None]:
    """File descriptors 1 and 2 (the converter's prints, TensorFlow's native lines) appended to ``log``."""
    from edgeport.native_log import NativeLog

    native = NativeLog()
    try:
        with native.capture(title):
            yield
    finally:
        with contextlib.suppress(OSError):
            with open(log, "ab") as fh:
                fh.write(native.path.read_bytes())
        native.close()


def converted(dest: Path, converter: str, versions: dict[str, str]) -> dict[str, Any]:
    """The job's result: the converted file described by its engine (loading it proves it loads)."""
    from edgeport.export.registry import read_precision
    from edgeport.runtimes import load

    try:
        session = load(dest)
    except EdgeportError as exc:
        raise ExportError(f"the converted artifact does not load: {exc}") from None
    precision, read = read_precision(session.tensor_storage())
    return {"converter": converter, "versions": versions, "precision": precision.value, "precision_read": read,
            "inputs": [s.to_dict() for s in session.inputs], "outputs": [s.to_dict() for s in session.outputs]}
