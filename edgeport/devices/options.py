"""Which of `edgeport verify`'s and `bench`'s options reach the device run (``--on``), and how.

The device runs ``edgeport verify|bench --bundle ARCHIVE OPTIONS``; every option that changes the
verdict there goes on that command line (each argument quoted by :func:`remote.run_there`), and an
option the device run cannot honour is refused in one line before anything is built or copied, never
dropped.

Gates: the device is held to the gates the workstation's rows were held to (each row of its
verify.json records its gate), or, with ``--gates``, to those, as `verify --gates` here would be.
Either way they travel as ``KEY.FIELD=VALUE`` pairs, only the fields that differ from the defaults
(the device's edgeport is installed from the workstation's own wheel, so its defaults are these), so
a gates file is read here and needs no copy. Output kinds likewise: the workstation's (its reference
figures), ``--output-kind`` winning.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeport.errors import EdgeportError, UnknownNameError


def refuse(unsupported: dict[str, Any], why: str) -> None:
    """One line naming every option given (not None, False or empty) that the device run cannot honour."""
    if given := [k for k, v in unsupported.items() if v is not None and v is not False and v != []]:
        raise EdgeportError(f"{', '.join(given)} cannot go with --on: {why}")


def gate_pairs(table) -> str:
    """``table`` (a GateTable) as ``--gates`` pairs: what differs from the defaults ('' for the defaults).
    ``load_gates(gate_pairs(t))`` holds every format to the gate ``t`` holds it to."""
    from edgeport.benchmarks.verify.gates import DEFAULT_GATES
    from edgeport.export.registry import precision_of

    pairs = [p for precision, gate in table.by_precision.items()
             for p in _diff(precision.value, gate, DEFAULT_GATES[precision])]
    pairs += [p for fmt, gate in table.by_format.items()
              for p in _diff(fmt, gate, table.by_precision[precision_of(fmt)])]
    return ",".join(pairs)


def _diff(key: str, gate, base) -> list[str]:
    ours, theirs = gate.to_dict(), base.to_dict()
    return [f"{key}.{name}={'none' if v is None else repr(float(v))}" for name, v in ours.items() if v != theirs[name]]


def workstation_gates(report: dict[str, Any], where: str):
    """The gates the rows of the workstation's verify.json (``report``) were held to, as a GateTable."""
    from edgeport.benchmarks.verify.gates import DEFAULT_GATES, Gate, GateTable, fields
    from edgeport.export.registry import INFO

    known, by_format = fields(), {}
    for row in report.get("results", []):
        fmt, gate = row.get("format"), row.get("gate")
        if not gate or fmt not in INFO:
            continue
        if unknown := sorted(set(gate) - set(known)):
            raise EdgeportError(f"{where}: its {fmt} row records a gate field {unknown[0]!r} this edgeport does not "
                                "know; verify there again")
        by_format[fmt] = Gate(**gate)
    return GateTable(dict(DEFAULT_GATES), by_format)


def workstation_kinds(report: dict[str, Any]) -> dict[str, str]:
    """{output: kind} the workstation's last verify compared each output as."""
    outputs = (((report.get("reference") or {}).get("figures") or {}).get("outputs") or {})
    return {name: o["kind"] for name, o in outputs.items() if isinstance(o, dict) and o.get("kind")}


@dataclass(frozen=True)
class VerifyThere:
    """The options of `edgeport verify --bundle` on a device; :meth:`argv` is its command line's tail."""

    gates: str = ""  # KEY.FIELD=VALUE pairs ('' : the defaults)
    formats: tuple[str, ...] = ()
    runtimes: tuple[str, ...] = ()
    output_kind: tuple[tuple[str, str], ...] = ()  # (output, kind)
    threads: int | None = None
    timeout: float = 900.0

    def __post_init__(self):
        if bad := [name for name, _ in self.output_kind if "=" in name]:
            raise EdgeportError(f"output {bad[0]!r}: a name with '=' cannot be given to --output-kind")

    def argv(self) -> list[str]:
        return [*(["--gates", self.gates] if self.gates else []),
                *(a for f in self.formats for a in ("--formats", f)),
                *(a for r in self.runtimes for a in ("--runtimes", r)),
                *(a for n, k in self.output_kind for a in ("--output-kind", f"{n}={k}")),
                *(["--threads", str(self.threads)] if self.threads is not None else []),
                "--timeout", repr(float(self.timeout))]


def given_verify(*, gates: str | None, runtimes: list[str] | None, output_kind: list[str] | None):
    """(the gate table of ``--gates`` or None, {output: kind} of ``--output-kind``), each checked here,
    so a bad one is one line before anything is built or copied; an unknown runtime name too."""
    from edgeport.benchmarks.verify.gates import load_gates
    from edgeport.benchmarks.verify.kinds import parse_overrides
    from edgeport.runtimes.registry import RUNTIMES

    if unknown := [r for r in runtimes or [] if r not in RUNTIMES]:
        raise UnknownNameError("runtime", unknown[0], list(RUNTIMES))
    return (load_gates(gates) if gates else None), parse_overrides(output_kind)


def verify_there(workstation: dict[str, Any], where: str, *, table=None, kinds: dict[str, str] | None = None,
                 formats: list[str] | None = None, runtimes: list[str] | None = None, threads: int | None = None,
                 timeout: float = 900.0) -> VerifyThere:
    """The device's options: ``table`` (``--gates``) or the workstation's rows' gates; the workstation's
    output kinds with ``kinds`` (``--output-kind``) over them; the rest as given."""
    table = table if table is not None else workstation_gates(workstation, where)
    chosen = {**workstation_kinds(workstation), **(kinds or {})}
    return VerifyThere(gate_pairs(table), tuple(formats or ()), tuple(runtimes or ()), tuple(chosen.items()),
                       threads, timeout)


def bench_argv(*, seconds: float, threads: list[int] | None, formats: list[str] | None, peak_n: int) -> list[str]:
    """The options of `edgeport bench --bundle` on a device (thread counts checked here, before any copy)."""
    from edgeport.benchmarks.bench.command import thread_counts

    thread_counts(threads, "cpu")
    return ["--seconds", repr(float(seconds)), *(a for t in threads or [] for a in ("--threads", str(t))),
            *(a for f in formats or [] for a in ("--formats", f)), "--peak-n", str(peak_n)]
