"""The private APIs edgeport still uses, each with its reason in a comment at the call: these tests
fail loudly when one moves, naming it, instead of an export breaking in a user's hands."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edgeport", "training", "export", "runtimes", "benchmarks")


def test_tflite_schema_classes_are_where_tflite_meta_reads_them():
    schema = pytest.importorskip("tensorflow.lite.python.schema_py_generated")
    for name in ("Model", "ModelT", "BufferT", "BufferStart", "BufferAddData", "BufferEnd", "MetadataT",
                 "BuiltinOperator"):
        assert hasattr(schema, name), f"tensorflow.lite.python.schema_py_generated.{name} moved"


def test_flatbuffers_builder_fields_the_aligned_packer_writes():
    import flatbuffers

    b = flatbuffers.Builder(64)
    b.StartVector(1, 4, 16)
    assert hasattr(b, "head") and hasattr(b, "Bytes"), "flatbuffers.Builder.head / .Bytes moved"
    b.head -= 4
    b.Bytes[b.head:b.head + 4] = b"\x01\x02\x03\x04"
    assert b.EndVector(4) > 0


def test_litert_signature_names_come_from_the_public_signature_runner():
    from ai_edge_litert.interpreter import Interpreter

    for name in ("get_signature_list", "get_signature_runner"):
        assert hasattr(Interpreter, name), f"ai_edge_litert Interpreter.{name} moved"


def test_tf2onnx_saved_model_conversion_entry_is_there():
    convert = pytest.importorskip("tf2onnx.convert")
    assert callable(getattr(convert, "_convert_common", None)), "tf2onnx.convert._convert_common moved"


def test_litert_op_details_used_by_the_mobile_check_are_there():
    from ai_edge_litert.interpreter import Interpreter

    assert hasattr(Interpreter, "_get_ops_details"), "ai_edge_litert Interpreter._get_ops_details moved"


def test_the_private_calls_left_are_the_listed_ones():
    """Every ``obj._private(`` call into another package is listed here with its reason."""
    allowed = {
        "export/targets/mobile_model.py": {"_get_ops_details"},  # LiteRT has no public op list
        "export/onnx.py": {"_convert_common"},  # tf2onnx's SavedModel path has no public function
        "runtimes/tflm_arena.py": {"_predict", "_capture_fd2", "_invoke_once"},  # edgeport.runtimes.tflm's own
    }
    call = re.compile(r"\b(?!self\b|cls\b)([a-z]\w*)\._([a-z]\w*)\(")
    found = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            for m in call.finditer(path.read_text()):
                rel = str(path.relative_to(ROOT))
                if "_" + m.group(2) not in allowed.get(rel, set()):
                    found.setdefault(rel, []).append(f"{m.group(1)}._{m.group(2)}")
    assert not found, f"private calls without a reason listed here: {found}"
