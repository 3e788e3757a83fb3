"""`make fuzz`: mutate the seed corpus, run every case through the product's front doors, count.

    python -m edgeport.benchmarks.fuzz [--cases 1200] [--seed 0] [--kinds model_int8.tflite keras ...]
    python -m edgeport.benchmarks.fuzz --replay KIND SEED      # one case again, on the guarded path

Kinds: one per model file the format registry makes (named by that file: ``model_int8.tflite``),
plus ``keras``, ``h5``, ``manifest`` and ``bundle``. Every case is (kind, seed): the same corpus and
the same pair give the same bytes, so a failure
in the report is replayed with ``--replay``. Exit status 1 when any case was unclear, unclean,
crashed or hung.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeport.benchmarks.fuzz import corpus as corpus_mod
from edgeport.benchmarks.fuzz.cases import shares, suffix
from edgeport.benchmarks.fuzz.harness import OUTCOMES, KindResult, classify, fuzz_kind
from edgeport.benchmarks.fuzz.mutate import mutate
from edgeport.files import write_json_atomic

#: How a run's cases are shared between the kinds (the model-file kinds come from the registry).
SHARES = shares()
FAILURES = ("unclear", "unclean", "crash", "hang")


def default_corpus() -> Path:
    from edgeport.training.data import data_home

    return data_home() / "fuzz-corpus"


@dataclass
class FuzzReport:
    seed: int
    kinds: list[KindResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [{"kind": k.kind, **c} for k in self.kinds for c in k.cases if c["outcome"] in FAILURES]

    @property
    def ok(self) -> bool:
        return not self.failures

    def render(self) -> str:
        from edgeport.tables import text_table

        rows = [[k.kind, str(len(k.cases)), *[str(k.count(o)) for o in OUTCOMES], str(k.contained),
                 f"{k.seconds:.0f} s"] for k in self.kinds]
        total = [sum(len(k.cases) for k in self.kinds)] + [sum(k.count(o) for k in self.kinds) for o in OUTCOMES]
        rows.append(["all", *map(str, total), str(sum(k.contained for k in self.kinds)), f"{self.seconds:.0f} s"])
        out = [text_table(f"fuzz (seed {self.seed}): outcomes per file kind", ["kind", "cases", *OUTCOMES,
                                                                               "contained", "time"], rows)]
        out += [f"FAILED {f['kind']} seed {f['seed']} ({f.get('mutator', '?')}): {f['outcome']}: "
                f"{f.get('message', '')[:200]} (replay: python -m edgeport.benchmarks.fuzz --replay {f['kind']} "
                f"{f['seed']})" for f in self.failures]
        out.append("contained: the unguarded worker crashed or hung, the product's guarded path answered cleanly")
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "ok": self.ok, "seconds": round(self.seconds, 1),
                "kinds": {k.kind: {"cases": k.cases, "seconds": round(k.seconds, 1)} for k in self.kinds}}


def fuzz(cases: int = 1200, *, seed: int = 0, kinds: list[str] | None = None, corpus: Path | None = None,
         out: Path | None = None, timeout: float = 120.0) -> FuzzReport:
    kinds = kinds or list(SHARES)
    if unknown := [k for k in kinds if k not in SHARES]:
        raise SystemExit(f"fuzz: unknown kind {unknown[0]!r}; kinds: {', '.join(SHARES)}")
    seeds = corpus_mod.build(corpus or default_corpus())
    weight = sum(SHARES[k] for k in kinds)
    report, t0 = FuzzReport(seed), time.perf_counter()
    for kind in kinds:
        n = max(1, round(cases * SHARES[kind] / weight))
        print(f"fuzz: {kind}: {n} cases", flush=True)
        report.kinds.append(fuzz_kind(kind, [seed * 100_000 + i for i in range(n)], seeds, timeout=timeout))
    report.seconds = time.perf_counter() - t0
    if out is not None:
        write_json_atomic(out, report.to_dict())
    return report


def replay(kind: str, seed: int, corpus: Path | None = None) -> dict[str, Any]:
    if kind not in SHARES:
        raise SystemExit(f"fuzz: unknown kind {kind!r}; kinds: {', '.join(SHARES)}")
    seeds = corpus_mod.build(corpus or default_corpus())
    data, mutator = mutate(kind, seeds[kind].read_bytes(), seed)
    with tempfile.TemporaryDirectory(prefix="edgeport-replay-") as tmp:
        path = Path(tmp) / f"case{suffix(kind)}"
        path.write_bytes(data)
        return {"kind": kind, "seed": seed, "mutator": mutator, "bytes": len(data),
                **classify(kind, path, True, seeds, Path(tmp))}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m edgeport.benchmarks.fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", nargs="*")
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--out", type=Path, default=Path("artifacts/fuzz.json"))
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--replay", nargs=2, metavar=("KIND", "SEED"))
    args = parser.parse_args(argv)
    if args.replay:
        print(json.dumps(replay(args.replay[0], int(args.replay[1]), args.corpus), indent=2))
        return 0
    report = fuzz(args.cases, seed=args.seed, kinds=args.kinds, corpus=args.corpus, out=args.out,
                  timeout=args.timeout)
    print(report.render())
    print(f"report: {args.out}")
    return 0 if report.ok else 1
