"""`edgeport report MODEL...`: one place with every figure a user needs to choose a format.

Reads each model's manifest.json, verify.json, bench.json (and bench_gpu.json) and training.json;
writes ``OUT/report/``: report.json, report.csv, report.md and PNG plots (accuracy vs latency,
size per format, training curves, the prediction grid of Keras and the int8 artifact).
`edgeport report merge A.json B.json ...` joins reports from several machines, keyed by device.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.benchmarks.report import html, plots
from edgeport.benchmarks.device_info import device_info, device_key
from edgeport.benchmarks.report.rows import COLUMNS, model_section, read_json
from edgeport.tables import fmt_num, fmt_pct, fmt_points, fmt_size, fmt_us, md_table, text_table
from edgeport.errors import EdgeportError
from edgeport.export import registry
from edgeport.files import write_json_atomic, write_text_atomic
from edgeport.manifest import load_manifest

GRID_IMAGES = 25
MD_HEADER = ["format", "runtime", "size", "accuracy", "Δ pts", "agreement", "max error", "p50", "p99",
             "throughput (img/s)", "GMAC/s (of peak)", "peak RSS", "gate"]


def _md_row(r: dict[str, Any]) -> list[str]:
    thr = fmt_num(r.get("throughput_ips"), ",.0f")
    if r.get("throughput_threads"):
        thr += f" ({r['throughput_threads']} thr)"
    runtime = r["runtime"] + (" [gpu]" if r.get("target") == "gpu" else "")
    return [r["format"], runtime, fmt_size(r.get("size_bytes")), fmt_pct(r.get("accuracy")),
            fmt_points(r.get("accuracy_delta_points")), fmt_pct(r.get("agreement")),
            fmt_num(r.get("max_abs_diff"), ".2e"), fmt_us(r.get("p50_us")), fmt_us(r.get("p99_us")), thr,
            fmt_num(r.get("gmac_s"), ".3g") + (f" ({fmt_pct(r['efficiency'], 0 if r['efficiency'] >= 0.1 else 1)} "
                                               f"of {_peak_name(r)})" if r.get("efficiency") else ""),
            fmt_size(r.get("peak_rss_bytes")), str(r.get("gate", "-")).upper()]


def _peak_name(r: dict[str, Any]) -> str:
    """Which peak a row's efficiency is against, short: "int8 litert", "float32"."""
    return (r.get("efficiency_peak") or "float32 matmul peak").split(" matmul peak")[0]


def grid_format(manifest: dict[str, Any]) -> str | None:
    """The format the prediction grid shows beside Keras: the first exported registry format that
    computes in integers and is proved by running (what a microcontroller or an NPU would run)."""
    entries = manifest.get("artifacts", {})
    return next((f for f in registry.INFO if f in entries and registry.info(f).full_integer and registry.runs(f)
                 and registry.info(f).runtimes), None)


def write_csv(rows: list[dict[str, Any]], dest: Path) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(dest, buf.getvalue())


@dataclass
class Report:
    out_dir: Path
    data: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    ok: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [r for m in self.data["models"].values() for r in m["rows"]]

    def render(self) -> str:
        many = len(self.data.get("devices") or {r.get("device") for r in self.rows}) > 1
        rows = [[*([r["device"]] if many else []), r["model"], r["format"], r["runtime"],
                 fmt_pct(r.get("accuracy")), fmt_us(r.get("p50_us")), fmt_num(r.get("throughput_ips"), ",.0f"),
                 str(r.get("gate", "-")).upper()] for r in self.rows]
        header = [*(["device"] if many else []), "model", "format", "runtime", "accuracy", "p50", "img/s", "gate"]
        out = [text_table(f"report ({self.data.get('device_name')})", header, rows, left=3 + many)]
        out += [f"wrote {p}" for p in self.files]
        out += [f"note: {n}" for n in self.notes]
        return "\n".join(out)


def _grid(model_dir: Path, section: dict[str, Any], dest: Path) -> Path | None:
    """Keras and the integer artifact's (:func:`grid_format`) predictions on the first test images, side
    by side (the artifact runs in a child process on its first runtime; the Keras outputs come from
    verify's reference cache when it matches)."""
    import tempfile

    from edgeport.benchmarks.verify.jobs import artifact_outputs, save_inputs
    from edgeport.benchmarks.verify.reference import cached_outputs
    from edgeport.training.testset import load_testset
    from edgeport.manifest import check_integrity

    data, manifest = section.get("data") or {}, load_manifest(model_dir)
    fmt = grid_format(manifest)
    int8 = manifest["artifacts"][fmt] if fmt else None
    if data.get("task") != "classification" or int8 is None:
        return None
    source = data.get("source") or ""
    npz = source if data.get("dataset") == "npz" else None
    data_dir = source if npz is None and Path(source).exists() else None
    test = load_testset(model_dir, manifest, data_dir=data_dir, data_npz=npz, limit=GRID_IMAGES)
    if not isinstance(test.x, np.ndarray) or test.x.ndim != 4 or test.y is None:
        return None
    keras_out = cached_outputs(model_dir, data.get("sha256"))
    if keras_out is None or len(keras_out) < len(test):
        raise EdgeportError(f"no Keras reference outputs cached for {model_dir.name}: run `edgeport verify` first")
    with tempfile.TemporaryDirectory(prefix="edgeport-grid-") as tmp:
        inputs = save_inputs(test.x, Path(tmp) / "inputs.npz")
        outs, _ = artifact_outputs(check_integrity(model_dir, int8), registry.info(fmt).runtimes[0], inputs,
                                   Path(tmp), threads=None, timeout=300)
    int8_out = next(iter(outs.values()))
    keras_out = keras_out[:len(test)]
    if keras_out.ndim != 2 or keras_out.shape[1] < 2:
        return None
    return plots.prediction_grid(model_dir.name, test.x, test.y.reshape(-1),
                                 {"keras": keras_out, f"{fmt} ({int8['file']})": int8_out},
                                 section["labels"], dest)


def _markdown(data: dict[str, Any], images: dict[str, list[str]]) -> str:
    d = data.get("device") or {}
    lines = ["# edgeport report", "", f"Generated {data['generated']} on **{data['device_name']}**.", "",
             f"- CPU: {d.get('cpu')} ({d.get('cores')} cores), ISA: {d.get('isa_summary') or '-'}",
             f"- GPU: {d.get('gpu') or 'none'}" + (f" (driver {d['gpu_driver']})" if d.get("gpu_driver") else ""),
             "- Versions: " + ", ".join(f"{k} {v}" for k, v in (d.get("versions") or {}).items()), "",
             "Latency: batch 1, p50/p99 at 1 thread. Throughput: batch 32 at the best thread count. "
             "Accuracy and agreement: the full test set, against the Keras model (`edgeport verify`). "
             "`keras predict` is per-call framework overhead, not model latency.", ""]
    for name, sec in data["models"].items():
        lines += [f"## {name}", ""]
        tm = (sec.get("training") or {}).get("test_metrics") or {}
        facts = [f"test set: {sec['data']['n']} inputs ({sec['data']['source']})" if sec.get("data") else None,
                 f"keras accuracy {fmt_pct(sec['keras'].get('accuracy'))}" if sec["keras"].get("accuracy") else None,
                 f"training test metrics: {', '.join(f'{k} {v:.4g}' for k, v in tm.items())}" if tm else None,
                 f"MACs per image: {sec['macs']:,}" if sec.get("macs") else None,
                 "verify: " + ("all gates pass" if sec.get("verify_ok") else "FAILED" if sec.get("verify_ok") is False
                               else "not run")]
        lines += [f"- {f}" for f in facts if f] + [""]
        lines += [md_table(MD_HEADER, [_md_row(r) for r in sec["rows"]]), ""]
        lines += [f"- **{f.get('type', 'GateError')}**: {f['message']}" for f in sec.get("failures", [])]
        for p in sec.get("peak") or {}:
            peak = sec["peak"][p]
            if peak.get("ok"):
                lines.append(f"- machine peak ({p} thread(s), float32 {peak['n']}² matmul): "
                             f"{peak['gflop_s']:.1f} GFLOP/s = {peak['gmac_s']:.1f} GMAC/s")
        for p, peak in (sec.get("int8_peak") or {}).items():
            if peak.get("ok"):
                engines = ", ".join(f"{k} {v['gmac_s']:.1f}" for k, v in peak.get("by_runtime", {}).items()
                                    if "gmac_s" in v)
                lines.append(f"- machine peak ({p} thread(s), int8 {peak['n']}² matmul): {peak['gmac_s']:.1f} "
                             f"GMAC/s ({engines} GMAC/s; integer formats' efficiency is against their runtime's)")
        lines += [f"- note: {n}" for n in dict.fromkeys(sec.get("notes", []))]
        lines += [""] + [f"![{Path(img).stem}]({img})" for img in images.get(name, [])] + [""]
    lines += [f"![{Path(img).stem}]({img})" for img in images.get("", [])]
    return "\n".join(lines) + "\n"


def build_report(models: list[str], *, out: Path = Path("artifacts"), browser: bool = True) -> Report:
    """Write OUT/report/: index.html (the page to open), report.json, report.csv, report.md and the PNG plots.

    models: model names (directories under --out with manifest.json, verify.json, bench.json)
    out: artifacts directory; the report goes to OUT/report/
    browser: open index.html in headless Chromium (no console error, no request outside it) and keep index.png
    """
    out = Path(out)
    report_dir = out / "report"
    sections, device = {}, None
    for name in dict.fromkeys(models):
        sections[name] = model_section(out / name)
        device = device or sections[name].get("device")
    device = device or device_info()
    data = {"schema": 1, "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device_name": device_key(device), "device": device, "models": sections}
    for sec in sections.values():
        for r in sec["rows"]:
            r.setdefault("device", data["device_name"])  # a device's rows (bench --on) keep its identity
    report = Report(report_dir, data)
    report_dir.mkdir(parents=True, exist_ok=True)
    images: dict[str, list[str]] = {}
    all_rows = report.rows

    def keep(key: str, path: Path | None) -> None:
        if path is not None:
            images.setdefault(key, []).append(path.name)
            report.files.append(path)

    keep("", plots.accuracy_vs_latency([r for r in all_rows if r.get("target") == "cpu" and r["device"] ==
                                        data["device_name"]],
                                       report_dir / "accuracy_vs_latency.png"))
    sizes = {m: sec.get("sizes") or {} for m, sec in sections.items()}  # deploy sizes (a C array: its flash bytes)
    keep("", plots.size_per_format({m: s for m, s in sizes.items() if s}, report_dir / "size_per_format.png"))
    for name, sec in sections.items():
        artifacts = load_manifest(out / name).get("artifacts", {})
        sec["fix"] = {fmt: e["fix"] for fmt, e in artifacts.items() if e.get("fix")}  # fix's trade tables
        keep(name, plots.training_curves(name, sec["history"], report_dir / f"training_curves_{name}.png"))
        try:
            keep(name, _grid(out / name, sec, report_dir / f"prediction_grid_{name}.png"))
        except (EdgeportError, OSError, ValueError) as exc:
            sec["notes"].append(f"prediction grid not drawn: {exc}")
    data["plots"] = [p.name for p in report.files]
    for name in sections:  # `make web-check`'s screenshot of the page in a browser, when it ran
        if (report_dir / "web" / f"{name}.png").is_file():
            images.setdefault(name, []).append(f"web/{name}.png")
    page = write_text_atomic(report_dir / "index.html", html.render(data, images))
    if browser:
        _prove_page(report, page)
    report.files[:0] = [page, write_json_atomic(report_dir / "report.json", data),
                        write_csv(all_rows, report_dir / "report.csv"),
                        write_text_atomic(report_dir / "report.md", _markdown(data, images))]
    return report


def _prove_page(report: Report, page: Path) -> None:
    """index.html opened in headless Chromium: its verdict in report.json, its screenshot beside it; a
    missing browser is said, a page that fails fails the report."""
    from edgeport.benchmarks.report.page_check import prove_page

    try:
        proof = prove_page(page)
    except EdgeportError as exc:
        report.data["page"] = {"ok": None, "error": str(exc)}
        report.notes.append(f"{page.name} not opened in a browser: {exc}")
        return
    report.data["page"] = proof
    if proof["screenshot"]:
        report.files.append(Path(proof["screenshot"]))
    if not proof["ok"]:
        report.ok = False
        report.notes += [f"{page.name}: {p}" for p in proof["problems"]]
    else:
        report.notes.append(f"{page.name} opened in {proof['browser']}: no console error, nothing fetched from "
                            f"outside {page.parent}")


def merge_reports(reports: list[str], *, out: Path = Path("artifacts/report/merged")) -> Report:
    """Join report.json files from several machines into one table keyed by device.

    reports: report.json files (e.g. workstation, GPU box, Raspberry Pi)
    out: directory for the merged report.json, report.csv and report.md
    """
    merged: dict[str, Any] = {"schema": 1, "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              "device_name": "merged", "devices": {}, "models": {}}
    for path in reports:
        data = read_json(Path(path))
        if not data or "models" not in data:
            raise EdgeportError(f"{path}: not an edgeport report.json (run `edgeport report` first)")
        name = data.get("device_name") or device_key(data.get("device") or {})
        if name in merged["devices"]:
            name = f"{name} ({Path(path).parent.name or path})"
        merged["devices"][name] = {"device": data.get("device"), "source": str(path),
                                   "generated": data.get("generated")}
        for model, sec in data["models"].items():
            target = merged["models"].setdefault(model, {"rows": []})
            target["rows"] += [{**r, "device": name} for r in sec["rows"]]
    out = Path(out)
    rows = [r for m in merged["models"].values() for r in m["rows"]]
    lines = ["# edgeport report: merged", "", f"Devices: {', '.join(merged['devices'])}.", ""]
    for model, sec in merged["models"].items():
        table = [[r["device"], *_md_row(r)] for r in sec["rows"]]
        lines += [f"## {model}", "", md_table(["device", *MD_HEADER], table, left=3), ""]
    report = Report(out, merged)
    report.files = [write_json_atomic(out / "report.json", merged), write_csv(rows, out / "report.csv"),
                    write_text_atomic(out / "report.md", "\n".join(lines))]
    return report
