"""What the registry rows derive, and the generic code that reads them (no format branches)."""
from __future__ import annotations

from types import SimpleNamespace

from edgeport.export import registry
from edgeport.benchmarks.verify.budget import error_budget
from edgeport.benchmarks.verify.fix_search import Candidate, weigh_latency


def test_followers_fixers_siblings_and_bundles_come_from_the_rows():
    assert "c_array" in registry.followers("tflite_int8")
    assert "ort_int8" in registry.followers("onnx_int8") and "onnx_int8" in registry.followers("onnx")
    assert set(registry.fixable()) >= {"tflite_int8", "onnx_int8"}
    assert registry.float_sibling("tflite_int16x8") == "tflite_fp32"
    assert registry.float_sibling("onnx_int8") == "onnx"
    assert not registry.runs("c_array") and registry.runs("tflite_int8")
    assert registry.for_bundle("mcu") == ("tflite_int8",)
    for fmt in registry.INFO:  # every row points at code that exists, resolved lazily
        row = registry.info(fmt)
        for spec in (row.export, row.fixer, row.debugger, row.size, row.embedded, row.describer):
            assert spec is None or callable(registry.resolve(spec)), (fmt, spec)
        assert row.proof is registry.Proof.RUN or row.embedded, fmt
        assert row.runtimes or row.proof is registry.Proof.SAME_BYTES, fmt


def test_the_c_array_size_is_the_model_bytes_it_puts_in_flash(tmp_path):
    from edgeport.export.c_array import source_text

    model = bytes(range(256)) * 40
    path = tmp_path / "m.c"
    path.write_text(source_text(model, name="m"))
    assert path.stat().st_size > 4 * len(model)  # the source text is several times the model
    assert registry.deploy_size("c_array", path) == len(model)


def _row(fmt, status, kl):
    return SimpleNamespace(format=fmt, runtime="litert", status=status, figures={"kl_divergence": kl})


def test_the_error_budget_reads_widths_from_the_rows_not_names():
    rows = [_row("tflite_int8", "fail", 0.4), _row("tflite_int16x8", "fail", 0.38),
            _row("tflite_dynamic", "pass", 0.01)]
    lines = error_budget(rows)
    assert len(lines) == 1 and "WEIGHTS" in lines[0] and "tflite_int16x8" in lines[0]
    rows[1] = _row("tflite_int16x8", "pass", 0.01)
    assert "ACTIVATIONS" in error_budget(rows)[0]
    assert error_budget([_row("onnx_int8", "fail", 0.4)]) == []  # no siblings in its family to split it with


def _cand(label, size, p50, passes=True):
    c = Candidate(label, {}, size_bytes=size, p50_us=p50)
    if not passes:
        c.failures.append("agreement")
    return c


def test_fix_weighs_latency_when_it_picks_the_cheapest():
    small, near_fast, big_fast = _cand("a", 1000, 300.0), _cand("b", 1080, 100.0), _cand("c", 2000, 50.0)
    chosen = weigh_latency([small, near_fast, big_fast], small)
    assert chosen is near_fast and "chosen for speed" in chosen.label  # 8% larger, 3x faster
    only = _cand("d", 1000, 300.0)
    assert weigh_latency([only, _cand("e", 1050, 250.0), _cand("f", 1050, 90.0, passes=False)], only) is only


def test_a_bare_files_precision_class_comes_from_its_tensors():
    P = registry.Precision
    dynamic = {"float32": 10, "float16": 0, "int8_quantized": 4, "int16_quantized": 0, "integer_io": 0}
    assert registry.read_precision(dynamic)[0] is P.QUANTIZED and "dynamic range" in registry.read_precision(dynamic)[1]
    assert registry.read_precision({**dynamic, "int8_quantized": 0, "float16": 3})[0] is P.FP16
    assert registry.read_precision({**dynamic, "int16_quantized": 5})[0] is P.QUANTIZED
    assert registry.read_precision({**dynamic, "int8_quantized": 0})[0] is P.FLOAT32
    assert "does not say" in registry.read_precision({})[1]
