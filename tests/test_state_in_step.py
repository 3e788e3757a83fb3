"""State kept in step (issue 22, finding 7): `edgeport fix` merges the rows it re-verified into
verify.json instead of replacing the file, so the formats it did not touch keep their verdicts."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from edgeport.benchmarks.verify import fix
from edgeport.benchmarks.verify.result import merged

DATA = {"sha256": "d1", "n": 10}
REF = {"source": "/m/model.keras", "runtime": "keras"}


def _row(fmt: str, runtime: str, status: str) -> dict:
    return {"format": fmt, "runtime": runtime, "status": status}


def _verify(rows: list[dict], data=DATA, notes=()) -> dict:
    return {"schema": 2, "model": "m", "ok": all(r["status"] == "pass" for r in rows), "data": data,
            "reference": REF, "results": rows, "slow_paths": [], "notes": list(notes)}


def test_fix_rows_replace_their_formats_and_keep_the_others():
    before = _verify([_row("tflite_fp32", "litert", "pass"), _row("tflite_int8", "litert", "fail"),
                      _row("onnx", "onnxruntime", "pass"), _row("onnx_int8", "onnxruntime", "fail")])
    after = merged(before, _verify([_row("tflite_int8", "litert", "pass"), _row("c_array", "bytes", "pass")]))
    assert {(r["format"], r["status"]) for r in after["results"]} == {
        ("tflite_fp32", "pass"), ("tflite_int8", "pass"), ("c_array", "pass"), ("onnx", "pass"),
        ("onnx_int8", "fail")}
    assert after["ok"] is False  # onnx_int8 still fails: ok is over every row, not fix's alone
    assert any("kept from the last verify" in n for n in after["notes"])
    assert merged(before, _verify([_row("tflite_int8", "litert", "pass"),
                                   _row("onnx_int8", "onnxruntime", "pass")]))["ok"] is True


def test_rows_on_other_data_are_not_kept():
    before = _verify([_row("tflite_fp32", "litert", "pass")], data={"sha256": "other"})
    after = merged(before, _verify([_row("tflite_int8", "litert", "pass")]))
    assert [r["format"] for r in after["results"]] == ["tflite_int8"]
    assert any("other data" in n for n in after["notes"])


def test_fix_writes_the_merged_file_under_the_lock(tmp_path, monkeypatch):
    from edgeport.benchmarks.verify.result import Result, VerifyReport

    dest = tmp_path / "verify.json"
    dest.write_text(json.dumps(_verify([_row("tflite_fp32", "litert", "pass"),
                                        _row("tflite_int8", "litert", "fail")])))

    def run_plan(plan, table, **_):  # what verify of the fixed format writes and returns
        report = VerifyReport("m", tmp_path, DATA, REF, {}, [Result("tflite_int8", "litert", "model_int8.tflite",
                                                                      "int8")], dest=plan.dest)
        Path(plan.dest).write_text(json.dumps(report.to_dict()))
        return report

    monkeypatch.setattr(fix, "run_plan", run_plan)
    report = fix._verify_merged(tmp_path, SimpleNamespace(dest=dest), None, 1.0)
    written = json.loads(dest.read_text())
    assert report.dest == dest and written["ok"] is True
    assert {(r["format"], r["status"]) for r in written["results"]} == {("tflite_fp32", "pass"),
                                                                         ("tflite_int8", "pass")}
