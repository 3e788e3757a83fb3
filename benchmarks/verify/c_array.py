"""The C array artifact holds the int8 TFLite model's bytes: read them back out of the .c file."""
from __future__ import annotations

import re
from pathlib import Path

from edgeport.errors import IntegrityError


def embedded_bytes(path: Path) -> bytes:
    """The bytes of the first ``unsigned char NAME[] = {0x.., ...}`` array in a C source file."""
    text = Path(path).read_text(errors="replace")
    m = re.search(r"\[\]\s*=\s*\{(.*?)\}", text, flags=re.S)
    if not m:
        raise IntegrityError(f"{path}: no byte array found")
    return bytes(int(tok, 16) for tok in re.findall(r"0x([0-9a-fA-F]{1,2})", m.group(1)))
