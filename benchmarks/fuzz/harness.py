"""The fuzz supervisor and its workers.

A worker process (``edgeport.children.run_job``, job kind ``fuzz``) runs a batch of cases of one kind,
writing a ``start`` line before and an ``end``
line after each to a JSONL log. The supervisor watches the log: a worker that dies mid-case (a
signal) or makes no progress for ``timeout`` seconds (killed) leaves that case unfinished; the case
is then replayed alone on the product's guarded path (child-process probes) in a fresh worker, and
the worker restarts after it. Outcomes:

- ``ran``: the front door ran the file;
- ``clean``: a typed EdgeportError, one line, naming the file;
- ``unclear``: an EdgeportError that does not name the file or spans lines;
- ``unclean``: another exception escaped (a traceback a user would see);
- ``crash``: the process died, even on the guarded path;
- ``hang``: no answer in time, even on the guarded path.

``contained`` counts cases that killed or hung the unguarded worker but came back clean on the
guarded path (the probes did their job).
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeport.benchmarks.fuzz.cases import run_case, suffix
from edgeport.benchmarks.fuzz.mutate import mutate
from edgeport.children import run_job

OUTCOMES = ("ran", "clean", "unclear", "unclean", "crash", "hang")


def classify(kind: str, path: Path, guarded: bool, corpus: dict[str, Path], work: Path) -> dict[str, Any]:
    from edgeport.errors import EdgeportError

    try:
        run_case(kind, path, corpus, work, guarded=guarded)
        return {"outcome": "ran"}
    except EdgeportError as exc:
        text = str(exc)
        # a mutated manifest is refused naming it, or naming the artifact whose entry it broke
        names = (path.name, "manifest.json", str(work / "model")) if kind == "manifest" else (path.name,)
        if kind == "input_shape":  # a flag, not a file: named by the flag, or by the model it contradicts
            names = ("--input-shape", corpus["symbolic"].name)
        named = any(n in text for n in names)
        return {"outcome": "clean" if named and "\n" not in text.strip() else "unclear", "message": text[:300],
                "type": type(exc).__name__}
    except Exception as exc:  # noqa: BLE001 - exactly what the fuzzer looks for
        return {"outcome": "unclean", "message": f"{type(exc).__name__}: {str(exc)[:300]}"}


def worker_job(job: dict[str, Any]) -> dict[str, Any]:
    """Worker side (``edgeport.worker`` kind ``fuzz``): run the job's cases, logging each."""
    corpus = {k: Path(v) for k, v in job["corpus"].items()}
    work = Path(job["work"])
    kind = job["case_kind"]
    seed_bytes = corpus[kind].read_bytes()
    with open(job["log"], "a") as log:
        for seed in job["seeds"]:
            data, mutator = mutate(kind, seed_bytes, seed)
            path = work / f"case{suffix(kind)}"
            path.write_bytes(data)
            log.write(json.dumps({"event": "start", "seed": seed}) + "\n")
            log.flush()
            t0 = time.perf_counter()
            result = classify(kind, path, job["guarded"], corpus, work)
            log.write(json.dumps({"event": "end", "seed": seed, "mutator": mutator, "bytes": len(data),
                                  "seconds": round(time.perf_counter() - t0, 3), **result}) + "\n")
            log.flush()
    return {"cases": len(job["seeds"])}


@dataclass
class KindResult:
    kind: str
    cases: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, outcome: str) -> int:
        return sum(1 for c in self.cases if c["outcome"] == outcome)

    @property
    def contained(self) -> int:
        return sum(1 for c in self.cases if c.get("contained"))


def _read_log(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


#: No case runs this long: the worker's overall limit (hangs are caught by its progress instead).
WORKER_LIMIT_S = 24 * 3600.0


def _run(kind: str, seeds: list[int], guarded: bool, corpus: dict[str, Path], work: Path, timeout: float,
         first_timeout: float) -> tuple[list[dict[str, Any]], int | None, str | None]:
    """Run seeds in one worker; (finished case records, the seed it stopped in, why) on death/hang.
    A worker whose log does not grow for ``timeout`` s (``first_timeout`` before its first line) hangs."""
    log = work / f"log-{time.monotonic_ns()}.jsonl"
    result = run_job({"kind": "fuzz", "case_kind": kind, "seeds": seeds, "guarded": guarded, "log": str(log),
                      "work": str(work), "corpus": {k: str(v) for k, v in corpus.items()}},
                     timeout=WORKER_LIMIT_S, progress=log, idle_timeout=timeout, startup_timeout=first_timeout,
                     label=f"the fuzz worker ({kind})")
    events = _read_log(log)
    done = [e for e in events if e["event"] == "end"]
    started = [e["seed"] for e in events if e["event"] == "start"]
    if result.get("ok") and len(done) == len(seeds):
        return done, None, None
    stuck = started[-1] if len(started) > len(done) else (seeds[len(done)] if len(done) < len(seeds) else None)
    if result.get("error_type") == "ChildTimedOut":
        why = "hang"
    elif result.get("signal"):
        why = f"crash ({result['signal']})"
    else:
        why = f"crash ({result.get('error', 'the worker stopped early')})"
    return done, stuck, why


def fuzz_kind(kind: str, seeds: list[int], corpus: dict[str, Path], *, timeout: float = 120.0) -> KindResult:
    result, t0 = KindResult(kind), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"edgeport-fuzz-{kind}-") as tmp:
        work = Path(tmp)
        todo = list(seeds)
        while todo:
            done, stuck, why = _run(kind, todo, False, corpus, work, timeout, first_timeout=max(timeout, 300))
            result.cases += done
            finished = {c["seed"] for c in done}
            todo = [s for s in todo if s not in finished]
            if stuck is None:
                break
            todo.remove(stuck)
            replay, stuck2, why2 = _run(kind, [stuck], True, corpus, work, timeout, first_timeout=max(timeout, 300))
            if replay:
                case = {**replay[0], "contained": why}
            else:
                case = {"event": "end", "seed": stuck, "outcome": "hang" if why2 == "hang" else "crash",
                        "message": f"unguarded: {why}; guarded: {why2}"}
            result.cases.append(case)
    result.cases.sort(key=lambda c: c["seed"])
    result.seconds = time.perf_counter() - t0
    return result
