"""The fuzz supervisor and its workers.

A worker process runs a batch of cases of one kind, writing a ``start`` line before and an ``end``
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
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeport.benchmarks.fuzz.cases import SUFFIX, run_case
from edgeport.benchmarks.fuzz.mutate import mutate

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
        named = any(n in text for n in names)
        return {"outcome": "clean" if named and "\n" not in text.strip() else "unclear", "message": text[:300],
                "type": type(exc).__name__}
    except Exception as exc:  # noqa: BLE001 - exactly what the fuzzer looks for
        return {"outcome": "unclean", "message": f"{type(exc).__name__}: {str(exc)[:300]}"}


def worker(job_file: str) -> int:
    """Worker side: run the job's cases, logging each."""
    job = json.loads(Path(job_file).read_text())
    corpus = {k: Path(v) for k, v in job["corpus"].items()}
    work = Path(job["work"])
    seed_bytes = corpus[job["kind"]].read_bytes()
    with open(job["log"], "a") as log:
        for seed in job["seeds"]:
            data, mutator = mutate(job["kind"], seed_bytes, seed)
            path = work / f"case{SUFFIX[job['kind']]}"
            path.write_bytes(data)
            log.write(json.dumps({"event": "start", "seed": seed}) + "\n")
            log.flush()
            t0 = time.perf_counter()
            result = classify(job["kind"], path, job["guarded"], corpus, work)
            log.write(json.dumps({"event": "end", "seed": seed, "mutator": mutator, "bytes": len(data),
                                  "seconds": round(time.perf_counter() - t0, 3), **result}) + "\n")
            log.flush()
    return 0


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


def _launch(kind: str, seeds: list[int], guarded: bool, corpus: dict[str, Path], work: Path, log: Path):
    job = work / f"job-{os.getpid()}-{time.monotonic_ns()}.json"
    job.write_text(json.dumps({"kind": kind, "seeds": seeds, "guarded": guarded, "log": str(log),
                               "work": str(work), "corpus": {k: str(v) for k, v in corpus.items()}}))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-m", "edgeport.benchmarks.fuzz", "--worker", str(job)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            preexec_fn=lambda: __import__("resource").setrlimit(
                                __import__("resource").RLIMIT_CORE, (0, 0)))


def _run(kind: str, seeds: list[int], guarded: bool, corpus: dict[str, Path], work: Path, timeout: float,
         first_timeout: float) -> tuple[list[dict[str, Any]], int | None, str | None]:
    """Run seeds in one worker; (finished case records, the seed it stopped in, why) on death/hang."""
    log = work / f"log-{time.monotonic_ns()}.jsonl"
    proc = _launch(kind, seeds, guarded, corpus, work, log)
    seen, last_progress, limit = 0, time.monotonic(), first_timeout
    while True:
        code = proc.poll()
        events = _read_log(log)
        if len(events) > seen:
            seen, last_progress, limit = len(events), time.monotonic(), timeout
        if code is not None:
            break
        if time.monotonic() - last_progress > limit:
            proc.kill()
            proc.wait()
            code = "hang"
            break
        time.sleep(0.05)
    events = _read_log(log)
    done = [e for e in events if e["event"] == "end"]
    started = [e["seed"] for e in events if e["event"] == "start"]
    if code == 0 and len(done) == len(seeds):
        return done, None, None
    stuck = started[-1] if len(started) > len(done) else (seeds[len(done)] if len(done) < len(seeds) else None)
    if code == "hang":
        why = "hang"
    elif isinstance(code, int) and code < 0:
        why = f"crash ({signal.Signals(-code).name})"
    else:
        why = f"crash (worker exited {code})"
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
