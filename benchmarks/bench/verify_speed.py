"""Is verification as fast as the engines allow? Verification throughput against `edgeport bench`.

    python -m edgeport.benchmarks.bench.verify_speed MODEL [--out artifacts] [--formats ...]

In one run: ``edgeport verify`` on the model's test set (images per second of inference per
artifact, load excluded, every core) and ``edgeport bench`` at batch 32 on the same artifacts and
cores. The goal: verification at least half of the engine's batch-32 rate (ratio >= 0.5).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeport.benchmarks.bench.command import bench_model
from edgeport.benchmarks.device_info import usable_cores
from edgeport.tables import fmt_num, text_table
from edgeport.benchmarks.verify.command import verify_model
from edgeport.errors import EdgeportError

GOAL = 0.5


def verify_speed(model: str, *, out: Path = Path("artifacts"), formats: list[str] | None = None,
                 seconds: float = 1.0, limit: int | None = None, data_npz: str | None = None) -> tuple[str, bool]:
    cores = usable_cores()
    verified = verify_model(model, out=out, formats=formats, limit=limit, threads=cores, data_npz=data_npz)
    fmts = sorted({r.format for r in verified.results if r.timing.get("images_per_s")})
    bench = bench_model(model, out=out, formats=fmts, seconds=seconds, threads=[cores], keras_predict=False)
    rates = {(r["format"], r["runtime"]): r.get("batch32", {}).get("images_per_s") for r in bench.rows}
    rows, ok = [], True
    for r in verified.results:
        v, b = r.timing.get("images_per_s"), rates.get((r.format, r.runtime))
        if not v or not b:
            continue
        ratio = v / b
        ok &= ratio >= GOAL
        rows.append([r.format, r.runtime, fmt_num(v, ",.0f"), fmt_num(b, ",.0f"), f"{ratio:.2f}",
                     "ok" if ratio >= GOAL else "SLOW"])
    title = (f"{model}: verification ({verified.data['n']} inputs, batch {verified.results[0].timing.get('batch')}) "
             f"vs bench batch 32, {cores} thread(s)")
    table = text_table(title, ["format", "runtime", "verify img/s", "bench b32 img/s", "ratio", f">= {GOAL}"], rows)
    return table, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeport.benchmarks.bench.verify_speed", description=__doc__)
    parser.add_argument("model")
    parser.add_argument("--out", type=Path, default=Path("artifacts"))
    parser.add_argument("--formats", nargs="*")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--data-npz", help="inputs to verify on instead of the model's test set")
    args = parser.parse_args(argv)
    try:
        table, ok = verify_speed(args.model, out=args.out, formats=args.formats, seconds=args.seconds,
                                 limit=args.limit, data_npz=args.data_npz)
    except EdgeportError as exc:
        print(f"verify_speed: error: {exc}", file=sys.stderr)
        return 2
    print(table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
