"""State kept in step (issue 22, finding 7): `edgeport fix` merges the rows it re-verified into
verify.json instead of replacing the file, so the formats it did not touch keep their verdicts."""
from __future__ import annotations

import json
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
    from edgeport.benchmarks.verify import result as result_mod
    from edgeport.benchmarks.verify.result import Result, VerifyReport

    dest = tmp_path / "verify.json"
    dest.write_text(json.dumps(_verify([_row("tflite_fp32", "litert", "pass"),
                                        _row("tflite_int8", "litert", "fail")])))
    asked = {}

    def run_plan(plan, table, merge=False, **_):  # verify of the fixed format, merged as run_plan merges
        asked["merge"] = merge
        report = VerifyReport("m", tmp_path, DATA, REF, {}, [Result("tflite_int8", "litert", "model_int8.tflite",
                                                                      "int8")], dest=plan.dest)
        result_mod.write_merged(tmp_path, plan.dest, report)
        return report

    monkeypatch.setattr(fix, "run_plan", run_plan)
    report = fix._verify_merged(tmp_path, SimpleNamespace(dest=dest), None, 1.0)
    written = json.loads(dest.read_text())
    assert asked["merge"] is True and report.dest == dest and written["ok"] is True
    assert {(r["format"], r["status"]) for r in written["results"]} == {("tflite_fp32", "pass"),
                                                                         ("tflite_int8", "pass")}


def test_verify_formats_merges_and_drops_rows_of_a_changed_artifact(tmp_path, monkeypatch):
    """`edgeport verify MODEL --formats X` merges like fix: the other formats keep their rows (with the
    time they were verified); a kept row whose artifact's sha256 changed since is dropped, said."""
    from edgeport.benchmarks.verify import result as result_mod
    from edgeport.benchmarks.verify.result import Result, VerifyReport

    old = {**_row("onnx", "onnxruntime", "pass"), "sha256": "aaa", "verified_at": "2026-12-01T10:00:00Z"}
    stale = {**_row("tflite_int8", "litert", "pass"), "sha256": "bbb", "verified_at": "2026-12-01T10:00:00Z"}
    dest = tmp_path / "verify.json"
    dest.write_text(json.dumps(_verify([_row("tflite_fp32", "litert", "fail"), old, stale])))
    import edgeport.manifest

    listed = {"onnx": {"sha256": "aaa"}, "tflite_int8": {"sha256": "ccc"}, "tflite_fp32": {"sha256": "ddd"}}
    monkeypatch.setattr(edgeport.manifest, "load_manifest", lambda d, **_: {"artifacts": listed})
    row = Result("tflite_fp32", "litert", "model.tflite", "float32", sha256="ddd")
    report = VerifyReport("m", tmp_path, DATA, REF, {}, [row], dest=dest)
    result_mod.write_merged(tmp_path, dest, report)
    written = json.loads(dest.read_text())
    rows = {r["format"]: r for r in written["results"]}
    assert set(rows) == {"tflite_fp32", "onnx"} and written["ok"] is True
    assert rows["onnx"]["verified_at"] == "2026-12-01T10:00:00Z"  # kept, with when it was verified
    assert rows["tflite_fp32"]["sha256"] == "ddd" and rows["tflite_fp32"]["verified_at"].endswith("Z")
    assert any("tflite_int8 dropped" in n and "changed" in n for n in report.notes)


def test_verify_of_every_format_replaces_the_file(tmp_path, monkeypatch):
    """Only a verify of some formats merges; a whole verify (no --formats) writes its own rows."""
    from edgeport.benchmarks.verify import command

    seen = {}
    monkeypatch.setattr(command, "run_plan", lambda plan, table, merge=False, **_: seen.setdefault("merge", merge))
    monkeypatch.setattr(command.plans, "is_bare", lambda *a: False)
    monkeypatch.setattr(command.plans, "model_dir_of", lambda m, out: tmp_path)
    monkeypatch.setattr(command.plans, "from_model_dir", lambda *a, **k: SimpleNamespace(model_dir=tmp_path))
    monkeypatch.setattr(command.plans, "preprocess", lambda *a: None)
    command.verify_model("m", formats=None)
    assert seen.pop("merge") is False
    command.verify_model("m", formats=["onnx"])
    assert seen.pop("merge") is True
