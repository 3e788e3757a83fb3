"""artifacts/report/index.html: one self-contained page (nothing fetched from the network) whose
failing rows read as failing, with the figure that failed and the command that fixes it. Fast: a
report.json-shaped dict; tests/test_report.py checks the page `edgeport report` writes."""
from __future__ import annotations

import shutil
from html.parser import HTMLParser

import pytest

from edgeport.benchmarks.report.html import render


class Page(HTMLParser):
    """The page's links and its table rows (class, cell texts)."""

    def __init__(self, text: str):
        super().__init__()
        self.links: list[str] = []
        self.rows: list[tuple[str, list[str]]] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.links += [v for k, v in attrs if k in ("src", "href", "action", "data") and v]
        if tag == "tr":
            self.rows.append((a.get("class") or "", []))
        elif tag == "td":
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1][1].append("".join(self._cell))
            self._cell = None


def _row(fmt, runtime, gate, **figures):
    return {"format": fmt, "runtime": runtime, "gate": gate, "precision": "quantized", "size_bytes": 120_000,
            "accuracy": 0.89, "agreement": 0.93, "p50_us": 61.0, **figures}


DATA = {"generated": "2026-12-05T08:00:00+00:00", "device_name": "x86_64-epyc", "device": {"cpu": "EPYC"},
        "models": {
            "fashion_cnn": {"rows": [_row("keras", "keras (reference)", "reference"),
                                     _row("tflite_fp32", "litert", "pass"), _row("tflite_int8", "litert", "fail")],
                            "verify_ok": False, "data": {"n": 10000, "source": "fashion_mnist"}, "notes": [],
                            "failures": [{"type": "GateFailure", "artifact": "tflite_int8", "runtime": "litert",
                                          "figure": "agreement", "value": 0.93, "gate": ">= 95.00%",
                                          "message": "tflite_int8 on litert: agreement = 0.93 fails"}]},
            "mnist_mlp": {"rows": [_row("tflite_fp32", "litert", "pass")], "verify_ok": True, "failures": [],
                          "notes": []}}}


def test_a_failing_row_is_rendered_failing_with_its_figure_and_fix():
    page = Page(render(DATA, {"fashion_cnn": ["prediction_grid_fashion_cnn.png"], "": ["accuracy_vs_latency.png"]}))
    by = {(cells[0], cells[1]): (cls, cells) for cls, cells in page.rows if cells}
    cls, cells = by[("tflite_int8", "litert")]
    assert cls == "fail" and "FAIL" in cells and "PASS" not in cells
    assert "agree 93.00% (>= 95.00%)" in cells  # the failing figure, as verify's table says it
    assert by[("tflite_fp32", "litert")][0] == "pass" and by[("keras", "keras (reference)")][0] == "pass"
    text = render(DATA, {})
    assert "edgeport fix fashion_cnn" in text and "edgeport fix mnist_mlp" not in text
    assert "every gate passes" in text


def test_nothing_leaves_the_machine():
    page = Page(render(DATA, {"fashion_cnn": ["prediction_grid_fashion_cnn.png"], "": ["accuracy_vs_latency.png"]}))
    assert page.links == ["prediction_grid_fashion_cnn.png", "accuracy_vs_latency.png"]
    assert not any("://" in link or link.startswith("//") for link in page.links)
    assert "<script" not in render(DATA, {})


def test_the_fix_trade_table_marks_the_chosen_candidate():
    cands = [{"label": "int8", "kept_float": [], "size_bytes": 100_000, "p50_us": 60.0, "passes": False,
              "error": None, "figures": {"agreement": 0.93}},
             {"label": "int8, float: dense_1", "kept_float": ["dense_1"], "size_bytes": 140_000, "p50_us": 75.0,
              "passes": True, "error": None, "figures": {"agreement": 0.97}}]
    data = {**DATA, "models": {"fashion_cnn": {**DATA["models"]["fashion_cnn"],
                                               "fix": {"tflite_int8": {"chosen": "int8, float: dense_1",
                                                                       "candidates": cands}}}}}
    text = render(data, {})
    rows = [(cls, cells) for cls, cells in Page(text).rows if cells and cells[0].lstrip("-> ").startswith("int8")]
    assert rows == [("fail", ["int8", "0", "97.7 KB", "60.0 µs", "-", "93.00%", "FAIL"]),
                    ("pass", ["-> int8, float: dense_1", "1", "136.7 KB", "75.0 µs", "-", "97.00%", "PASS"])]
    assert "fix tflite_int8: chose int8, float: dense_1" in text


def _prove(page):
    from edgeport.benchmarks.report.page_check import prove_page
    from edgeport.errors import EdgeportError

    if not shutil.which("node"):
        pytest.skip("node is missing; run make web-deps")
    try:
        return prove_page(page)
    except EdgeportError as exc:
        pytest.skip(str(exc))


def test_the_page_loads_in_headless_chromium_and_a_request_outside_fails_it(tmp_path):
    """Chromium opens the page from disk with no console error and no request outside its folder; its
    screenshot lands beside it. A page that asks for anything else fails the proof."""
    (tmp_path / "index.html").write_text(render(DATA, {"fashion_cnn": ["grid.png"]}))
    (tmp_path / "grid.png").write_bytes(_PNG)
    proof = _prove(tmp_path / "index.html")
    assert proof["ok"] and proof["failing_rows"] == 1 and proof["requests"] == 2, proof
    assert (tmp_path / "index.png").read_bytes()[:8] == _PNG[:8]
    (tmp_path / "index.html").write_text('<!doctype html><img src="http://127.0.0.1:9/x.png">')
    bad = _prove(tmp_path / "index.html")
    assert not bad["ok"] and any("127.0.0.1:9" in p for p in bad["problems"]), bad


#: A 1x1 PNG.
_PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                     "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082")


def test_the_emulated_boards_rows_come_from_arm_check_with_their_own_reasons(tmp_path):
    """`make arm-check`'s rows (verify --bundle inside emulated Pis) join the model's section: each board's
    gate and engine, its own reason when it did not pass, and never a time."""
    import json

    from edgeport.benchmarks.devices.arm_results import RESULT_FILE
    from edgeport.benchmarks.report.rows import emulated_board_rows

    (tmp_path / "arm-check").mkdir()
    (tmp_path / "arm-check" / RESULT_FILE).write_text(json.dumps({"rows": [
        {"model": "m", "format": "tflite_int8", "board": "pi4", "runtime": "litert", "status": "pass",
         "engine": "ai_edge_litert 2.3.0", "figures": {"agreement": 0.995, "max_abs_diff": 0.03}},
        {"model": "m", "format": "tflite_int8", "board": "pi5", "runtime": "litert", "status": "fail",
         "engine": "ai_edge_litert 2.3.0", "figures": {"agreement": 0.9}, "reason": "agreement 90% < 95%"},
        {"model": "m", "format": "onnx", "board": "pi32", "runtime": "onnxruntime", "status": "skipped",
         "reason": "no ONNX Runtime wheel for armv7l"},
        {"model": "other", "format": "onnx", "board": "pi4", "runtime": "onnxruntime", "status": "pass"}]}))
    rows = emulated_board_rows(tmp_path / "m")
    assert [(r["target"], r["gate"]) for r in rows] == [("emulated pi4", "pass"), ("emulated pi5", "fail"),
                                                         ("emulated pi32", "skipped")]
    assert not any("p50_us" in r or "throughput_ips" in r for r in rows)  # qemu-user time is no Pi's latency
    page = Page(render({"generated": "now", "device_name": "x", "device": {}, "models": {
        "m": {"rows": rows, "verify_ok": True, "failures": [], "notes": []}}}, {}))
    by = {cells[2]: (cls, cells) for cls, cells in page.rows if cells}
    assert by["emulated pi4"][0] == "pass"
    assert by["emulated pi5"][0] == "fail" and "agreement 90% < 95%" in by["emulated pi5"][1]
    assert by["emulated pi32"][0] == "none" and "no ONNX Runtime wheel for armv7l" in by["emulated pi32"][1]
    assert emulated_board_rows(tmp_path / "no_such_model") == []
