"""The result of `edgeport bench`: rows, device, peak, MACs; its JSON form and its printed table."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeport.tables import fit, fmt_num, fmt_pct, fmt_size, fmt_us, text_table

BENCH_FILES = {"cpu": "bench.json", "gpu": "bench_gpu.json"}


def bench_file(model_dir: Path, device: str = "cpu") -> Path:
    return Path(model_dir) / BENCH_FILES[device]


@dataclass
class BenchReport:
    model: str
    model_dir: Path
    device_kind: str
    device: dict[str, Any]
    seconds: float
    rows: list[dict[str, Any]] = field(default_factory=list)
    peak: dict[str, Any] = field(default_factory=dict)  # threads -> float32 matmul peak
    int8_peak: dict[str, Any] = field(default_factory=dict)  # threads -> int8 matmul peak, per engine
    slow_paths: list[dict[str, Any]] = field(default_factory=list)  # edgeport.benchmarks.slow records
    macs: dict[str, Any] = field(default_factory=dict)
    inputs: str = ""
    input_shapes: dict[str, list[int]] = field(default_factory=dict)  # one feed per input, filled dims included
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return all("error" not in r for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "device_kind": self.device_kind, "device": self.device,
                "seconds_per_series": self.seconds, "inputs": self.inputs, "macs": self.macs,
                "peak": self.peak, "int8_peak": self.int8_peak, "slow_paths": self.slow_paths, "rows": self.rows,
                "input_shapes": self.input_shapes,
                "notes": self.notes, "skipped": self.skipped}

    def render(self, wide: bool = False) -> str:
        """The table (80 columns: format, runtime, size, batch-1 p50, batch-32 img/s; ``wide``: all)."""
        if self.skipped:
            return self.skipped
        rows, styles = [], []
        for r in self.rows:
            if "error" in r or "skipped" in r:
                status = "ERROR" if "error" in r else "SKIPPED"  # in a column the 80-column table keeps
                rows.append([r["format"], r.get("label", r["runtime"]), fmt_num(r.get("threads")),
                             fmt_size(r.get("size_bytes")), "", "", status, *[""] * 6])
                styles.append("bold red" if "error" in r else "yellow")
                continue
            b1, b32 = r.get("batch1", {}), r.get("batch32", {})
            rows.append([r["format"], r["label"], fmt_num(r["threads"], "d"), fmt_size(r["size_bytes"]),
                         f"{r['load_s'] * 1e3:.0f} ms", fmt_us(r["first_inference_s"] * 1e6),
                         fmt_us(b1.get("p50_us")), fmt_us(b1.get("p99_us")),
                         fmt_num(b32.get("images_per_s"), ",.0f"), fmt_num(r.get("gmac_s_batch32"), ".3g"),
                         fmt_pct(r.get("efficiency"), 0 if (r.get("efficiency") or 0) >= 0.1 else 1),
                         fmt_size(r["peak_rss_bytes"]), fmt_size(r["rss_delta_bytes"])])
            styles.append(None)
        d = self.device
        title = (f"bench {self.model} on {d.get('cpu')} ({d.get('cores')} cores; {d.get('isa_summary')})"
                 + (f", GPU {d['gpu']} driver {d['gpu_driver']}" if d.get("gpu") else ""))
        out = [text_table(title, ["format", "runtime", "thr", "size", "load", "first", "p50 b1", "p99 b1",
                                  "img/s b32", "GMAC/s", "eff vs peak", "peak RSS", "RSS Δ"], rows, styles,
                          wide=wide, narrow=NARROW)]
        macs = self.macs.get("total")
        out.append(f"MACs per image: {macs:,}" if macs else f"MACs: {self.macs.get('error', 'not counted')}")
        for t, p in self.peak.items():
            if p.get("ok"):
                libs = ", ".join(f"{k} {v['gmac_s']:.1f}" for k, v in p.get("by_library", {}).items() if "gmac_s" in v)
                out.append(f"machine peak, float32 {p['n']}x{p['n']} matmul, {t} thread(s): "
                           f"{p['gflop_s']:.1f} GFLOP/s = {p['gmac_s']:.1f} GMAC/s (best of: {libs} GMAC/s)")
        for t, p in self.int8_peak.items():
            if p.get("ok"):
                engines = "; ".join(f"{k} {v['gmac_s']:.1f} GMAC/s ({v['how']})" if "gmac_s" in v
                                    else f"{k} not measured ({v.get('error')})" for k, v in p["by_runtime"].items())
                out.append(f"machine peak, int8 {p['n']}x{p['n']} matmul, {t} thread(s): {p['gmac_s']:.1f} GMAC/s "
                           f"by {p['source']} ({engines})")
        out.append(f"inputs: {self.inputs}; each series {self.seconds:g} s after warm-up, fresh process per row")
        out.append("load includes the engine's import; GMAC/s at batch 32 against the matmul peak with up to the "
                   "same threads: integer formats against the int8 peak of their runtime, the others against "
                   "the float32 peak")
        out += [f"{'ERROR' if 'error' in r else 'skipped'} {r['format']} / {r.get('label', r['runtime'])}: "
                f"{r.get('error') or r.get('skipped')}" for r in self.rows if "error" in r or "skipped" in r]
        out += [f"note: {n}" for n in dict.fromkeys(self.notes)]
        return "\n".join([out[0], *fit(out[1:], wide)])


#: The columns of bench's 80-column table; ``--wide`` shows every column.
NARROW = ("format", "runtime", "size", "p50 b1", "img/s b32")
