"""Join one model's verify.json, bench.json and training.json into report rows (json only)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeport.benchmarks.bench.result import BENCH_FILES
from edgeport.benchmarks.verify.command import VERIFY_FILE
from edgeport.export import registry
from edgeport.manifest import artifact_file, effective_entries, load_manifest
from edgeport.runtimes.registry import runtime_of
from edgeport.training_record import load_training_record

#: The report's columns, in order (report.csv and report.json rows).
COLUMNS = ("device", "model", "format", "runtime", "target", "precision", "size_bytes", "accuracy",
           "keras_accuracy", "accuracy_delta_points", "agreement", "max_abs_diff", "mean_abs_diff", "mae",
           "gate", "p50_us", "p90_us", "p99_us", "latency_threads", "throughput_ips", "throughput_threads",
           "gmac_s", "efficiency", "efficiency_peak", "load_s", "first_inference_s", "peak_rss_bytes",
           "rss_delta_bytes", "engine")


def emulated_board_rows(model_dir: Path) -> list[dict[str, Any]]:
    """The model's rows of the last `make arm-check` (``verify --bundle`` inside emulated Pis, against the
    bundle's Keras reference): each board's gate, figures and engine; never a time (qemu-user is not a
    Pi's speed). A row that is not a pass carries its own reason (``why``)."""
    from edgeport.benchmarks.devices.arm_results import RESULT_FILE

    found = read_json(model_dir.parent / "arm-check" / RESULT_FILE) or {}
    rows = []
    for r in found.get("rows", []):
        if r.get("model") != model_dir.name:
            continue
        f = r.get("figures") or {}
        rows.append({"format": r["format"], "runtime": r["runtime"], "engine": r.get("engine") or None,
                     "target": f"emulated {r['board']}", "precision": r.get("precision"), "gate": r["status"],
                     "why": r.get("reason") or "",
                     **{k: f[k] for k in ("accuracy", "accuracy_delta_points", "agreement", "max_abs_diff") if k in f}})
    return rows


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def bench_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Latency at the fewest threads (batch 1), throughput at the best thread count (batch 32)."""
    ok = [r for r in rows if "batch1" in r]
    if not ok:
        return {"bench_error": rows[0].get("error") or rows[0].get("skipped")} if rows else {}
    lat = min(ok, key=lambda r: r.get("threads") or 0)
    b1 = lat.get("batch1", {})
    thr = max(ok, key=lambda r: r.get("batch32", {}).get("images_per_s") or 0)
    return {"p50_us": b1.get("p50_us"), "p90_us": b1.get("p90_us"), "p99_us": b1.get("p99_us"),
            "latency_threads": lat.get("threads"), "throughput_ips": thr.get("batch32", {}).get("images_per_s"),
            "throughput_threads": thr.get("threads"), "gmac_s": thr.get("gmac_s_batch32"),
            "efficiency": thr.get("efficiency"), "efficiency_peak": thr.get("efficiency_peak"),
            "load_s": lat.get("load_s"),
            "first_inference_s": lat.get("first_inference_s"), "peak_rss_bytes": lat.get("peak_rss_bytes"),
            "rss_delta_bytes": lat.get("rss_delta_bytes"), "engine": lat.get("engine"),
            "size_bytes": lat.get("size_bytes")}


def deploy_sizes(model_dir: Path, manifest: dict[str, Any]) -> dict[str, int]:
    """The bytes that matter on a device per exported format (``registry.deploy_size``: a C array
    counts the model bytes it puts in flash, not its source text); missing files are left out."""
    sizes = {}
    for fmt, entry in effective_entries(model_dir, manifest).items():
        path = artifact_file(model_dir, entry)
        if registry.known(fmt) and path.exists():
            sizes[fmt] = registry.deploy_size(fmt, path)
    return sizes


def group_rows(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["format"], r["runtime"]), []).append(r)
    return groups


#: figures an emulated board's timing gives that are not a device's speed: kept as emulated_*, never as latency
EMULATED = ("p50_us", "p90_us", "p99_us", "throughput_ips", "gmac_s", "efficiency", "load_s", "first_inference_s")


def device_rows(model_dir: Path, gates: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    """The rows `edgeport bench MODEL --on NAME` brought back (OUT/MODEL/devices/NAME.bench.json), each keyed by
    the device's identity (board, CPU, OS, engine versions); the gate is the artifact's (the same bytes, checked
    by sha256 on the device). An emulated board's timings become ``emulated_*``: never latency."""
    from edgeport.devices.bench_on import DEVICES_DIR

    rows = []
    for path in sorted((model_dir / DEVICES_DIR).glob("*.bench.json")):
        data = read_json(path) or {}
        ident = data.get("device_identity") or {}
        kind = "emulated device" if ident.get("emulated") else "device"
        for r in ((data.get("models") or {}).get(model_dir.name) or {}).get("rows", []):
            row = {**{k: r.get(k) for k in COLUMNS if k in r}, "device": data.get("device_name") or path.name,
                   "target": f"{kind} {ident.get('device') or path.name.split('.')[0]}",
                   "gate": gates.get((r.get("format"), r.get("runtime")), "not verified")}
            if ident.get("emulated"):
                row.update({f"emulated_{k}": row.get(k) for k in EMULATED} | dict.fromkeys(EMULATED))
            rows.append(row)
    return rows


def model_section(model_dir: Path) -> dict[str, Any]:
    """Everything the report says about one model: rows, keras figures, training, notes."""
    manifest = load_manifest(model_dir)
    verify = read_json(model_dir / VERIFY_FILE)
    benches = {kind: read_json(model_dir / name) for kind, name in BENCH_FILES.items()}
    training = load_training_record(model_dir)
    notes = []
    if verify is None:
        notes.append(f"not verified: run `edgeport verify {model_dir.name}`")
    if benches["cpu"] is None:
        notes.append(f"not benchmarked: run `edgeport bench {model_dir.name}`")
    keras = (verify or {}).get("keras", {})
    cpu = group_rows((benches["cpu"] or {}).get("rows", []))
    rows: list[dict[str, Any]] = []
    for name, label in (("keras", "keras (reference)"), ("keras.predict", "keras predict (per-call overhead)")):
        if ("keras", name) in cpu:
            rows.append({"format": "keras", "runtime": label, "precision": registry.Precision.FLOAT32.value,
                         "accuracy": keras.get("accuracy"), "keras_accuracy": keras.get("accuracy"),
                         "accuracy_delta_points": 0.0 if keras.get("accuracy") is not None else None,
                         "agreement": 1.0 if keras.get("accuracy") is not None else None,
                         "gate": "reference", **bench_figures(cpu[("keras", name)])})
    for res in (verify or {}).get("results", []):
        f = res.get("figures", {})
        row = {"format": res["format"], "runtime": res["runtime"], "precision": res.get("precision"),
               "size_bytes": res.get("size_bytes"), "gate": res["status"],
               **{k: f.get(k) for k in ("accuracy", "keras_accuracy", "accuracy_delta_points", "agreement",
                                        "max_abs_diff", "mean_abs_diff", "mae")}}
        bench = cpu.get((res["format"], res["runtime"]))
        rows.append({**row, **(bench_figures(bench) if bench else {}), "size_bytes": res.get("size_bytes")})
    verified = {(r["format"], r["runtime"]) for r in rows}
    for (fmt, rt), group in cpu.items():  # benchmarked but not verified (say so)
        if fmt != "keras" and (fmt, rt) not in verified:
            rows.append({"format": fmt, "runtime": rt, "gate": "not verified", **bench_figures(group)})
    gates = {(r["format"], r["runtime"]): r["gate"] for r in rows}
    for (fmt, rt), group in group_rows((benches["gpu"] or {}).get("rows", [])).items():
        rows.append({"format": fmt, "runtime": rt, "target": "gpu",
                     "gate": gates.get((fmt, runtime_of(rt)), "not verified"), **bench_figures(group)})
    rows += device_rows(model_dir, gates)
    # browser rows of `make web-check` (benchmarks/devices/web_check.py), in these columns already
    web_rows = (read_json(model_dir / "web_check.json") or {}).get("rows", [])
    rows += [{k: r.get(k) for k in COLUMNS if k in r} for r in web_rows]
    rows += emulated_board_rows(model_dir)
    sizes = deploy_sizes(model_dir, manifest)
    for r in rows:
        r.setdefault("target", "cpu")
        r["model"] = model_dir.name
        if r["format"] in sizes:
            r["size_bytes"] = sizes[r["format"]]
    if benches["gpu"] and benches["gpu"].get("skipped"):
        notes.append(benches["gpu"]["skipped"])
    bench = benches["cpu"] or {}
    return {"model": model_dir.name, "rows": rows, "keras": keras, "verify_ok": (verify or {}).get("ok"),
            "data": (verify or {}).get("data"), "gates": (verify or {}).get("gates"),
            "macs": (bench.get("macs") or {}).get("total"), "peak": bench.get("peak"),
            "int8_peak": bench.get("int8_peak"), "slow_paths": bench.get("slow_paths") or [], "sizes": sizes,
            "device": bench.get("device"), "training": {k: training.get(k) for k in
                                                        ("test_metrics", "seed", "seconds", "epochs_run", "dataset")},
            "history": training.get("history") or {}, "labels": manifest.get("labels") or [],
            "failures": [f for r in (verify or {}).get("results", []) for f in r.get("failures", [])],
            "notes": notes + (verify or {}).get("notes", []) + bench.get("notes", [])}
