"""The TFLite converter's public float fallback: an op the int8 or int16x8 converter cannot quantize
stays in float, printed and recorded, instead of failing the format.

``target_spec.supported_ops = [<integer ops set>, TFLITE_BUILTINS]`` is the converter's documented
"integer with float fallback": an op without an integer kernel runs in float between a DEQUANTIZE and
a QUANTIZE. At 16x8 the converter without it refuses the model ("Quantization to 16x8-bit not yet
supported for op: 'NEG'"); then the model is converted again with the fallback and LiteRT must
prepare it. At int8 TensorFlow 2.21's default (MLIR) quantizer already keeps such an op in float with
``TFLITE_BUILTINS_INT8`` alone (it is not told whether float is allowed), so the int8 model is read
for float ops after every conversion; a refusal (the legacy quantizer's "Quantization not yet
supported for op") gets the fallback too. Either way the ops in float are read from the written
flatbuffer, printed as one line and recorded in the manifest (``kept_float``, ``reason``,
``fallback``). A fallback that fails too is an ExportError of one line.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from edgeport.errors import ExportError
from edgeport.export.context import cause_line
from edgeport.export.tflite_flatbuffer import float_ops, interpreter

Warn = Callable[[str], None]
FLOAT_OPS = "TFLITE_BUILTINS"
#: The manifest's ``fallback``: the model was converted again with the float ops set beside the integer one.
FALLBACK = f"converter {FLOAT_OPS}"
#: The manifest's ``fallback`` when the int8 converter kept ops in float by itself, no refusal
#: (its quantizer leaves an op without an int8 kernel in float even with this ops set alone).
CONVERTER_OWN = "converter TFLITE_BUILTINS_INT8"
_MLIR_ERROR = re.compile(r"error: loc\(.*\): (.+)$")
_REFUSED = re.compile(r"Quantization (?:to 16x8-bit )?not yet supported for op: '(\w+)'")


@dataclass(frozen=True)
class Fallback:
    """What a conversion with ops kept in float records: the ops ('OP tensor'), why, and how."""

    kept_float: list[str]
    reason: str
    fallback: str

    @property
    def fields(self) -> dict[str, Any]:
        """The manifest entry's fields."""
        return {"kept_float": self.kept_float, "reason": self.reason, "fallback": self.fallback}

    def line(self, label: str) -> str:
        """The one line said when the model is kept: 'warning: LABEL: ... NEG x1 ...'."""
        kinds = Counter(f.split(" ", 1)[0] for f in self.kept_float)
        by = "converter's float fallback" if self.fallback == FALLBACK else "converter's int8 quantizer"
        return (f"warning: {label}: {len(self.kept_float)} op(s) kept in float by the {by}: "
                f"{', '.join(f'{kind} x{n}' for kind, n in kinds.items())} ({self.reason}; manifest: kept_float)")


def refused_op(error: str) -> str | None:
    """The op type a converter error refuses to quantize ('NEG'), else None (another failure)."""
    match = _REFUSED.search(error)
    return match.group(1) if match else None


def refusal_reason(exc: BaseException) -> str:
    """The converter's refusal as one line ("RuntimeError: Quantization to 16x8-bit not yet ...")."""
    match = _REFUSED.search(str(exc))
    return f"{type(exc).__name__}: {match.group(0)}" if match else cause_line(exc)


def converter_line(exc: BaseException) -> str:
    """A converter error in one short line: an MLIR error's message without its op location
    ("loc(callsite(fused[...]))): 'tf.Erf' op is neither a custom op nor a flex op" -> the message)."""
    line = cause_line(exc)
    match = _MLIR_ERROR.search(line)
    return f"{line.split(':', 1)[0]}: {match.group(1)}" if match else line


def convert(make: Callable[[list[str]], Any], integer_ops: str, reason: str, label: str,
            run: Callable[[Any], bytes], warn: Warn) -> tuple[bytes, Fallback]:
    """The model converted again with ``[integer_ops, TFLITE_BUILTINS]`` (``make(ops sets)`` returns a
    configured converter, ``run`` converts it) and prepared by LiteRT; the ops it keeps in float are
    read from the flatbuffer and said once through ``warn``. An ExportError (one line) when the
    fallback does not convert, keeps nothing in float, or LiteRT refuses it."""
    try:
        model = run(make([integer_ops, FLOAT_OPS]))
    except Exception as exc:  # noqa: BLE001 - the converter raises several types; each is one line here
        raise ExportError(f"{label}: the converter refuses an op ({reason}) and its float fallback "
                          f"({integer_ops} + {FLOAT_OPS}) fails too: {converter_line(exc)}") from None
    kept = float_ops(model)
    if not kept:
        raise ExportError(f"{label}: the converter's float fallback kept no op in float, yet the converter "
                          f"refused the model ({reason})")
    try:
        interpreter(model, warn)
    except (RuntimeError, ValueError) as exc:
        raise ExportError(f"{label}: LiteRT refuses the converter's float-fallback model "
                          f"({cause_line(exc)}); refused first: {reason}") from None
    result = Fallback(kept, reason, FALLBACK)
    warn(result.line(label))
    return model, result


def own(model: bytes, label: str, warn: Warn) -> Fallback | None:
    """The ops a converter kept in float by itself (int8 with TFLITE_BUILTINS_INT8 alone, TF 2.21),
    said once through ``warn``; None when every op is integer."""
    if not (kept := float_ops(model)):
        return None
    kinds = ", ".join(dict.fromkeys(f.split(" ", 1)[0] for f in kept))
    result = Fallback(kept, f"the int8 converter left {kinds} unquantized (no int8 kernel)", CONVERTER_OWN)
    warn(result.line(label))
    return result
