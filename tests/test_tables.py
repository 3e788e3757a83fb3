"""Tables that fit: verify's table is 80 columns by default (format, runtime, kind, the figure that
decides the gate, the verdict), every column with ``wide``, plain text when piped; ``--wide`` and
``--json`` come from the result's type. Fast: a realistic report built by hand, no model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeport import cli
from edgeport.benchmarks.verify.gates import DEFAULT_GATES
from edgeport.benchmarks.verify.result import Result, VerifyReport
from edgeport.errors import IntegrityError
from edgeport.export.registry import Precision
from edgeport.tables import WIDTH, text_table

FLOAT = {"kind": "probabilities", "finite": True, "tolerance": 1.19e-6, "tolerance_basis": "10 x float32 noise",
         "tolerance_diff": 2.4e-7, "max_abs_diff": 2.4e-7, "agreement": 1.0, "confident_agreement": 1.0,
         "kl_divergence": 1e-9, "accuracy": 0.9123, "keras_accuracy": 0.9123, "accuracy_delta_points": 0.0}
INT8 = {**FLOAT, "tolerance": None, "tolerance_diff": None, "max_abs_diff": 0.31, "agreement": 0.9312,
        "confident_agreement": 0.9905, "kl_divergence": 0.021, "accuracy": 0.8951, "accuracy_delta_points": -1.72}


def _result(fmt: str, runtime: str, precision: Precision, figures: dict, engine: str) -> Result:
    gate = DEFAULT_GATES[precision]
    r = Result(fmt, runtime, f"model_{fmt}", precision.value, size_bytes=412_000, engine=engine,
               outputs={"probs": dict(figures)}, figures=dict(figures), gate=gate.to_dict(),
               timing={"images_per_s": 41_000.0})
    for failure in gate.failures(figures, artifact=fmt, runtime=runtime):
        r.fail(failure)
    return r


@pytest.fixture
def report() -> VerifyReport:
    results = [_result("saved_model", "tensorflow", Precision.FLOAT32, FLOAT, "tensorflow 2.20.0"),
               _result("tflite_fp32", "litert", Precision.FLOAT32, FLOAT, "ai-edge-litert 1.4.0"),
               _result("onnx", "onnxruntime", Precision.FLOAT32, FLOAT, "onnxruntime 1.22.1"),
               _result("tflite_int8", "litert", Precision.QUANTIZED, INT8, "ai-edge-litert 1.4.0"),
               _result("tflite_int16x8", "onnxruntime", Precision.QUANTIZED, INT8, "onnxruntime 1.22.1")]
    results[3].quant_debug = {"debug_samples": 100, "layers": [
        {"layer": "sequential_1/conv2d_3/BiasAdd;sequential_1/conv2d_3/Conv2D;conv2d_3/bias", "op": "CONV_2D",
         "mse": 1.2e-3, "rmse_per_scale": 2.41, "max_abs_error": 0.21}]}
    refused = Result("onnx_int8", "onnxruntime", "model_int8.onnx", "quantized")
    refused.fail(IntegrityError("model_int8.onnx: sha256 differs from the manifest; re-run edgeport export"),
                 "refused")
    return VerifyReport("fashion_cnn", Path("artifacts/fashion_cnn"),
                        {"n": 10000, "source": "fashion_mnist test set"},
                        {"runtime": "keras", "source": "artifacts/fashion_cnn/fashion_cnn.keras",
                         "figures": {"accuracy": 0.9123}}, {}, [*results, refused],
                        dest=Path("artifacts/fashion_cnn/verify.json"))


@pytest.mark.parametrize("plain", [True, False])
def test_verify_fits_80_columns_with_the_failing_figure_and_verdict(report, plain, monkeypatch):
    monkeypatch.setattr("edgeport.tables._is_terminal", lambda: not plain)
    text = report.render()
    print(text)
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    int8 = next(line for line in text.splitlines() if "tflite_int8 " in line)
    assert "agree 93.12% (>= " in int8 and "FAIL" in int8  # the figure that decides it, and the verdict
    assert "Δ pts -1.72" not in int8  # only the first failing figure; the FAILED lines below name every one
    assert "REFUSED" in text and "IntegrityError" in text and "VERIFY FAILED" in text
    fp32 = next(line for line in text.splitlines() if "tflite_fp32" in line)
    assert "diff 2.4e-07 (<= 1.19e-06)" in fp32 and "PASS" in fp32
    assert ("│" in text or "━" in text or "─" in text) is not plain  # box drawing only on a terminal
    assert "RMSE/scale" in text and "2.410" in text  # the int8 debugger's worst layers, within 80 too


def test_wide_shows_every_column(report):
    text = report.render(wide=True)
    header = next(line for line in text.splitlines() if "format" in line)
    for column in ("format", "runtime", "engine", "size", "kind", "accuracy", "Δ pts", "agree", "confident", "KL",
                   "max|diff|", "tight diff <= tolerance", "img/s", "deciding figure (gate)", "gate"):
        assert column in header, column
    assert "ai-edge-litert 1.4.0" in text and "-1.72" in text and "89.51%" in text and "MSE" in text


def test_plain_text_has_no_box_drawing():
    text = text_table("t", ["a", "b"], [["x" * 100, "1"]], narrow=["a", "b"], plain=True)
    assert all(ord(ch) < 128 or ch == "…" for ch in text) and max(map(len, text.splitlines())) <= WIDTH


def test_cli_wide_and_json_come_from_the_result_type(report, monkeypatch, capsys):
    def fake_verify(model: str) -> VerifyReport:
        """A verify that returns the report.

        model: the model
        """
        return report

    monkeypatch.setattr(cli, "resolve", lambda spec: fake_verify)
    assert cli.main(["verify", "m"]) == 1
    narrow = capsys.readouterr().out
    assert "tflite_int8" in narrow and "engine" not in narrow
    assert cli.main(["verify", "m", "--wide"]) == 1
    assert "ai-edge-litert 1.4.0" in capsys.readouterr().out
    assert cli.main(["verify", "m", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["results"][3]["status"] == "fail"
    assert "--wide" in cli.build_parser(fake_verify, "v").format_help()


def test_bench_and_fix_fit_80_columns():
    from edgeport.benchmarks.bench.result import BenchReport
    from edgeport.benchmarks.verify.fix import FixReport

    rows = [{"format": f, "label": rt, "runtime": rt, "threads": 2, "size_bytes": 412_000, "load_s": 0.41,
             "first_inference_s": 0.003, "batch1": {"p50_us": 61.0, "p99_us": 95.0},
             "batch32": {"images_per_s": 41_000.0}, "gmac_s_batch32": 3.1, "efficiency": 0.12,
             "peak_rss_bytes": 300_000_000, "rss_delta_bytes": 12_000_000}
            for f, rt in (("tflite_int16x8", "litert xnnpack"), ("onnx_int8_dynamic", "onnxruntime"))]
    bench = BenchReport("fashion_cnn", Path("a"), "cpu", {"cpu": "AMD EPYC 9654 96-Core Processor", "cores": 2,
                        "isa_summary": "avx512"}, 2.0, rows, macs={"total": 2_400_000}, inputs="real test images")
    text = bench.render()
    assert max(map(len, text.splitlines())) <= WIDTH and "61.0 µs" in text and "GMAC/s" not in text.splitlines()[1]
    assert "peak RSS" in bench.render(wide=True)
    cands = [{"label": "int8, float: conv2d_3, dense_1, batch_normalization_4", "kept_float": ["a", "b"],
              "size_bytes": 120_000, "p50_us": 70.0, "figures": {"kind": "probabilities", "agreement": p,
                                                                  "kl_divergence": 0.01}, "passes": p > 0.95,
              "error": None} for p in (0.93, 0.97)]
    fix = FixReport("fashion_cnn", {"tflite_int8": {"candidates": cands, "chosen": cands[1], "chosen_index": 1,
                                                    "seconds": 12.0}})
    text = fix.render()
    assert max(map(len, text.splitlines())) <= WIDTH and "float layers" in text and "97.00%" in text
    assert "PASS" in text and "fail" in text and "KL" in fix.render(wide=True)


def test_json_stdout_is_the_json_alone(report, monkeypatch, capsys):
    def chatty_verify(model: str) -> VerifyReport:
        """A verify that says where it is on stdout, as the real one does.

        model: the model
        """
        print("[1/4] verify m: reference on 64 inputs")
        return report

    monkeypatch.setattr(cli, "resolve", lambda spec: chatty_verify)
    assert cli.main(["verify", "m", "--json"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["model"] == "fashion_cnn" and "[1/4]" in err


@pytest.mark.parametrize("plain", [True, False])
def test_a_long_runtime_gives_way_and_the_deciding_figure_stays_whole(report, plain, monkeypatch):
    """The C array's "runtime" is the artifact whose bytes it must equal: a long name that shortens,
    never the figure that decides a row (a figure cut to "9.…" proves nothing to the reader)."""
    monkeypatch.setattr("edgeport.tables._is_terminal", lambda: not plain)
    long = _result("tflite_fp16", "bytes == tflite_int16x8", Precision.FLOAT32,
                   {**FLOAT, "kind": "per_position", "tolerance_diff": 3.99e-6, "tolerance": 9.64e-6}, "-")
    report.results.append(long)
    text = report.render()
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    assert "diff 3.99e-06 (<= 9.64e-06)" in text, text
    assert "diff 2.4e-07 (<= 1.19e-06)" in text
