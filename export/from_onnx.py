"""A bare .onnx into TFLite: onnx2tf (the maintained ONNX to LiteRT converter), run as a worker job.

The inputs keep their ONNX layout and names (``keep_shape_absolutely_input_names``; onnx2tf would
otherwise turn NCHW into NHWC and the artifact would no longer take the original's inputs) and their
sizes are made static in a copy (symbolic batch 1, the rest from ``--input-shape``; onnx2tf rewrites its
input file, never the user's).
The float32 .tflite is kept; onnx2tf's SavedModel and float16 copy are not. An op onnx2tf has no
converter for, or fails on, is one line naming it.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgeport.errors import ExportError
from edgeport.export.cross_job import converted, logged

CONVERTER = "onnx2tf"
SAYS_WHY = re.compile(r"must|cannot|[Ii]ncompatible|[Ii]nvalid|not a valid|not supported|mismatch")


def _op_types(src: Path) -> dict[str, str]:
    """{node name: op type} of the ONNX graph, subgraphs included."""
    import onnx

    found: dict[str, str] = {}

    def walk(graph) -> None:
        for node in graph.node:
            found.setdefault(node.name, node.op_type)
            for attr in node.attribute:
                for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                    walk(sub)

    walk(onnx.load(str(src), load_external_data=False).graph)
    return found


def _node_op(node: str, src: Path) -> str:
    types = _op_types(src)
    # onnx2tf names a node without its leading "/" (``wa/`` in its place) in its messages
    kind = next((types[n] for n in (node, "/" + node, "/" + node.removeprefix("wa/")) if n in types), None)
    return f"{kind} (node {node})" if kind else f"at node {node}"


def failed_op(exc: BaseException, src: Path) -> str | None:
    """The op onnx2tf failed on: an op it has no module for, the node it tags the error with, or the node
    a Keras layer that failed while the model was traced was built from (its ``name=`` argument)."""
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").startswith("onnx2tf.ops."):
        return exc.name.rsplit(".", 1)[-1]
    node = getattr(exc, "onnx_op_name", None)
    if not node and (found := re.search(r"name='([^']+)'", str(exc))):
        node = found.group(1)
    return _node_op(node, src) if node else None


def cause(exc: BaseException) -> str:
    """The line of the converter's error that says what went wrong (not TensorFlow's "in user code:")."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    said = next((ln for ln in lines if SAYS_WHY.search(ln) and not ln.startswith(("File ", "raise "))),
                lines[0] if lines else "no message")
    return f"{type(exc).__name__}: {said.split(' for ' + chr(39) + '{{node')[0][:240]}"


def set_input_sizes(path: Path, shapes: dict[str, list[int]]) -> None:
    """Write the static sizes into the inputs of the ONNX file at ``path`` and infer the shapes after them
    (onnx2tf's own ``overwrite_input_shape`` only reaches onnxsim, which is not installed); node names
    are made valid TensorFlow scope names (tensor names, the inputs' and outputs' included, stay)."""
    import onnx

    model = onnx.load(str(path))
    for value in model.graph.input:
        for dim, size in zip(value.type.tensor_type.shape.dim, shapes.get(value.name, ())):
            dim.Clear()
            dim.dim_value = int(size)
    for node in model.graph.node:  # node names become TensorFlow scopes: ``Softmax@0`` is not one
        node.name = re.sub(r"[^A-Za-z0-9_./>-]", "_", node.name)
    del model.graph.value_info[:]  # symbolic intermediate shapes: inferred again from the static inputs
    onnx.save(onnx.shape_inference.infer_shapes(model), str(path))


def convert_job(job: dict[str, Any]) -> dict[str, Any]:
    """Worker job: ``src`` (.onnx) -> ``dest`` (.tflite, float32) with ``shapes`` {input: [1, ...]}."""
    src, dest = Path(job["src"]), Path(job["dest"])
    shapes = {name: [int(d) for d in shape] for name, (shape, _) in job["shapes"].items()}
    work = Path(tempfile.mkdtemp(prefix="onnx2tf-", dir=dest.parent))
    try:
        copy = work / "source.onnx"  # onnx2tf rewrites its input file in place (names the unnamed nodes)
        shutil.copyfile(src, copy)
        set_input_sizes(copy, shapes)
        with logged(Path(job["log"]), f"{CONVERTER} {src}"):
            import onnx2tf

            try:
                onnx2tf.convert(input_onnx_file_path=str(copy), output_folder_path=str(work / "out"), non_verbose=True,
                                keep_shape_absolutely_input_names=list(shapes), output_signaturedefs=True,
                                not_use_onnxsim=True)
            except Exception as exc:  # noqa: BLE001 - any converter failure becomes one line naming the op
                op = failed_op(exc, copy)
                why = (f"{CONVERTER} {onnx2tf.__version__} has no converter for it" if isinstance(
                    exc, ModuleNotFoundError) and op else cause(exc))
                raise ExportError(f"{src}: {CONVERTER} cannot convert " + (f"op {op}" if op else "this model")
                                  + f" ({why})") from None
        found = sorted((work / "out").glob("*_float32.tflite"))
        if not found:
            raise ExportError(f"{src}: {CONVERTER} wrote no float32 .tflite (see the converter log)")
        shutil.move(str(found[0]), dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return converted(src, dest, f"{CONVERTER} {onnx2tf.__version__}", {CONVERTER: onnx2tf.__version__})
