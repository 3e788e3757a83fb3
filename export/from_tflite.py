"""A bare .tflite into ONNX: tf2onnx's TFLite path (``tf2onnx.convert.from_tflite``), run as a worker job.

tf2onnx writes an op it cannot convert into the graph as it is (``TFL_<OP>``, no ONNX schema) and only
logs "Unsupported ops"; that graph is refused here, naming the op. A converter exception is named by the
model's ops tf2onnx has no handler for, else by the TFLite op it was converting when it raised. The ONNX
inputs and outputs take the names the .tflite's signature gives them (what LiteRT and so verify call
them), so the two artifacts are compared output by output.
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


def lacking_handlers(src: Path) -> list[str]:
    """The model's TFLite ops (builtin, or custom by name) that tf2onnx registers no handler for."""
    import tf2onnx.tflite_handlers  # noqa: F401 - registers the TFLite handlers
    from tf2onnx.handler import tf_op

    from edgeport.export.tflite_flatbuffer import builtin_ops

    known = {name for ops in tf_op.get_opsets().values() for table in ops for name in table}
    used = [op.removeprefix("CUSTOM:") for op in builtin_ops(src.read_bytes())]
    return [op for op in used if "TFL_" + op not in known]


def signature_names(src: Path) -> dict[str, str]:
    """{tensor name: signature name} of the inputs and outputs of the model's only signature ({}: none
    or several, and LiteRT keeps the tensor names too)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(src))
    sigs = interp.get_signature_list()
    if len(sigs) != 1:
        return {}
    runner = interp.get_signature_runner(next(iter(sigs)))
    by_index = {d["index"]: d["name"] for d in (*interp.get_input_details(), *interp.get_output_details())}
    pairs = {**runner.get_input_details(), **runner.get_output_details()}
    return {by_index[d["index"]]: key for key, d in pairs.items() if d["index"] in by_index}


def rename(model, names: dict[str, str]) -> None:
    """Rename graph inputs/outputs (and every use of them) from tensor names to ``names``' values; a new
    name some other tensor already has is left as it was."""
    graph = model.graph
    taken = {t for n in graph.node for t in (*n.input, *n.output)} | {i.name for i in graph.initializer}
    names = {a: b for a, b in names.items() if a != b and b not in taken}
    for value in (*graph.input, *graph.output, *graph.value_info):
        value.name = names.get(value.name, value.name)
    _rename_uses(graph, names)


def _rename_uses(graph, names: dict[str, str]) -> None:
    """Every node's inputs and outputs, in subgraphs too (an If branch reads the outer graph's tensors)."""
    for node in graph.node:
        node.input[:] = [names.get(t, t) for t in node.input]
        node.output[:] = [names.get(t, t) for t in node.output]
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                _rename_uses(sub, names)


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
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else "no message"
            lacking = lacking_handlers(src)
            if lacking:
                raise ExportError(f"{src}: {CONVERTER} cannot convert op {', '.join(lacking)} ({CONVERTER} "
                                  f"{tf2onnx.__version__} has no handler for it; it failed with "
                                  f"{type(exc).__name__}: {text})") from None
            op = _op_in(exc.__traceback__)
            raise ExportError(f"{src}: {CONVERTER} cannot convert {f'op {op}' if op else 'this model'} "
                              f"({type(exc).__name__}: {text})") from None
        bad = unsupported_ops(model)
        if bad:
            names = ", ".join(b.removeprefix("TFL_") for b in bad)
            raise ExportError(f"{src}: {CONVERTER} cannot convert op {names} (a custom or unsupported TFLite op; "
                              "it has no ONNX equivalent)")
        rename(model, signature_names(src))
        onnx.save(model, str(dest))
    return converted(src, dest, f"{CONVERTER} {tf2onnx.__version__} (from_tflite, opset {job['opset']})",
                     {CONVERTER: tf2onnx.__version__})
