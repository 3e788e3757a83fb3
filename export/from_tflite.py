"""A bare .tflite into ONNX: tf2onnx's TFLite path (``tf2onnx.convert.from_tflite``), run as a worker job.

tf2onnx writes an op it cannot convert into the graph as it is (``TFL_<OP>``, no ONNX schema) and only
logs "Unsupported ops"; that graph is refused here, naming the op. A converter exception is named by the
TFLite op it was converting when it raised.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeport.errors import ExportError
from edgeport.export.cross_job import converted, logged

CONVERTER = "tf2onnx"


def _op_in(tb) -> str | None:
    """The TFLite op tf2onnx was converting when it raised (its ``optype`` local), if any."""
    op = None
    while tb is not None:
        if "tf2onnx" in tb.tb_frame.f_code.co_filename:
            op = tb.tb_frame.f_locals.get("optype") or op
        tb = tb.tb_next
    return op.removeprefix("TFL_") if isinstance(op, str) else None


def unsupported_ops(model) -> list[str]:
    """The op types in an ONNX graph that no ONNX schema defines (what tf2onnx could not convert)."""
    import onnx

    found = []
    for node in model.graph.node:
        if not onnx.defs.has(node.op_type, node.domain) and node.op_type not in found:
            found.append(node.op_type)
    return found


def convert_job(job: dict[str, Any]) -> dict[str, Any]:
    """Worker job: ``src`` (.tflite) -> ``dest`` (.onnx) at ``opset``; chatter to ``log``."""
    src, dest = Path(job["src"]), Path(job["dest"])
    with logged(Path(job["log"]), f"{CONVERTER} {src}"):
        import logging

        import onnx
        import tf2onnx

        logging.getLogger("tf2onnx").setLevel(logging.WARNING)
        try:
            model, _ = tf2onnx.convert.from_tflite(str(src), opset=int(job["opset"]))
        except Exception as exc:  # noqa: BLE001 - any converter failure becomes one line naming the op
            op = _op_in(exc.__traceback__)
            what = f"op {op}" if op else "this model"
            raise ExportError(f"{src}: {CONVERTER} cannot convert {what} ({type(exc).__name__}: "
                              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no message'})") from None
        bad = unsupported_ops(model)
        if bad:
            names = ", ".join(b.removeprefix("TFL_") for b in bad)
            raise ExportError(f"{src}: {CONVERTER} cannot convert op {names} (a custom or unsupported TFLite op; "
                              "it has no ONNX equivalent)")
        onnx.save(model, str(dest))
    return converted(dest, f"{CONVERTER} {tf2onnx.__version__} (from_tflite, opset {job['opset']})",
                     {CONVERTER: tf2onnx.__version__})
