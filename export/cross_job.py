"""What both conversion jobs share: the converter's chatter to a log file, and the converted artifact read
back (inputs, outputs, precision class) by the engine that runs it, which proves it loads."""
from __future__ import annotations

import contextlib
import re
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


def converted(src: Path, dest: Path, converter: str, versions: dict[str, str]) -> dict[str, Any]:
    """The job's result: the converted file described by its engine (loading it proves it loads); one
    that does not load is the converter's failure, named by the node the engine refuses when it says."""
    from edgeport.export.registry import read_precision
    from edgeport.runtimes import load

    try:
        session = load(dest)
    except EdgeportError as exc:
        text = str(exc).replace(str(dest), dest.name)
        node = re.search(r'In Node, \("([^"]*)", (\w+)', text)
        what = f"op {node.group(2)} (node {node.group(1)})" if node else "this model"
        short = text.split("This is an invalid model.")[-1].strip()[:240]
        raise ExportError(f"{src}: {converter.split()[0]} cannot convert {what}: the artifact it wrote does not "
                          f"load ({short})") from None
    precision, read = read_precision(session.tensor_storage())
    return {"converter": converter, "versions": versions, "precision": precision.value, "precision_read": read,
            "inputs": [s.to_dict() for s in session.inputs], "outputs": [s.to_dict() for s in session.outputs]}
