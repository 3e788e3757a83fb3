"""Say what is slow: a format that runs far below its float sibling on the same runtime, in one run.

A quantized or float16 format computes the same graph as its float32 sibling (the registry's
``float_sibling``: the float32 format of the same family) with narrower numbers. When the engine has
a fast path for it, it runs at least near the float one (int8 usually 1-4x faster; float16 weights
are widened at load; dynamic-range quantizes activations on the fly). Measured here, not listed: a
format is flagged when, in the same run, on the same runtime, it reaches less than
:data:`SLOW_FRACTION` of its sibling's throughput. That gap (4x) is beyond what run-to-run noise
on a shared machine (tens of percent) or honest per-call overhead (quantize/dequantize at the
model's edges) explains; engines that fall back to portable reference kernels (LiteRT's int16x8
on x86, about 180x slower) land far below it.

What is not compared, and why, is said by :func:`unchecked`: a float32 format is the yardstick
itself; a name the registry does not know (a bare ``.tflite`` or ``.onnx`` file benched without a
manifest) has no sibling; a sibling that was not measured in this run on this runtime gives no
comparison. Callers (bench, verify, fix) append :func:`notes` to their notes and record
:func:`to_records` in their json. Imports nothing heavy.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

from edgeport.export import registry

#: Below this fraction of its float sibling's throughput (same run, same runtime) a format is on a
#: slow kernel path on this machine (see the module docstring for why 0.25).
SLOW_FRACTION = 0.25
#: Below this fraction (1.5x slower: beyond run-to-run noise) but above SLOW_FRACTION, a narrower
#: format is still said to be slower than its float sibling (:func:`slower`): a note, not a slow path.
SLOWER_FRACTION = 2 / 3

Row = tuple[str, str, float] | Mapping[str, Any]


@dataclass(frozen=True)
class SlowPath:
    """One format running on a slow kernel path, against its sibling measured in the same run."""

    format: str
    runtime: str
    images_per_s: float
    sibling: str
    sibling_images_per_s: float
    hint: str

    @property
    def ratio(self) -> float:
        return self.images_per_s / self.sibling_images_per_s

    @property
    def message(self) -> str:
        pct = f"{self.ratio:.1%}" if self.ratio < 0.1 else f"{self.ratio:.0%}"
        return (f"{self.format} on {self.runtime}: {self.images_per_s:,.0f} img/s, {pct} of {self.sibling}'s "
                f"{self.sibling_images_per_s:,.0f} img/s in this run: a slow kernel path on this machine "
                f"({self.hint})")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "threshold": SLOW_FRACTION, "message": self.message}


def _rates(rows: Iterable[Row]) -> dict[tuple[str, str], float]:
    """The best throughput per (format, runtime) among the rows given (rows without one are left out)."""
    best: dict[tuple[str, str], float] = {}
    for row in rows:
        if isinstance(row, Mapping):
            fmt, rt, ips = row.get("format"), row.get("runtime"), row.get("images_per_s")
        else:
            fmt, rt, ips = row
        if fmt is None or rt is None or not ips or ips <= 0:
            continue
        key = (str(fmt), str(rt))
        best[key] = max(best.get(key, 0.0), float(ips))
    return best


def _hint(fmt: str) -> str:
    """What the registry row suggests about the slow path (an inference, so worded as one)."""
    row = registry.info(fmt)
    if row.activations not in ("float32", "int8"):
        return (f"likely reference kernels: this engine has no optimized {row.activations}-activation kernels "
                "for this CPU")
    return "likely a generic or reference kernel: the engine's fast path does not take this format's ops here"


def _sibling(fmt: str) -> str | None:
    if not registry.known(fmt) or registry.precision_of(fmt) is registry.Precision.FLOAT32:
        return None
    return registry.float_sibling(fmt)


def slow_paths(rows: Iterable[Row], *, threshold: float = SLOW_FRACTION) -> list[SlowPath]:
    """The formats below ``threshold`` x their float sibling's throughput on the same runtime.

    rows: ``(format, runtime, images_per_s)`` tuples or dicts with those keys, all from one run;
    several rows of one (format, runtime), e.g. per thread count, count by their best. Formats with
    no sibling, or whose sibling is not among the rows, give nothing here (:func:`unchecked` says so).
    """
    rates = _rates(rows)
    found = []
    for (fmt, rt), ips in rates.items():
        sibling = _sibling(fmt)
        ref = rates.get((sibling, rt)) if sibling else None
        if ref and ips < threshold * ref:
            found.append(SlowPath(fmt, rt, ips, sibling, ref, _hint(fmt)))
    return sorted(found, key=lambda s: s.ratio)


def unchecked(rows: Iterable[Row]) -> list[str]:
    """One line per non-float (format, runtime) that could not be compared, saying why."""
    rates = _rates(rows)
    out = []
    for fmt, rt in rates:
        if not registry.known(fmt):
            out.append(f"{fmt} on {rt}: not compared for speed: not a registry format (no float sibling to "
                       "measure it against)")
        elif registry.precision_of(fmt) is not registry.Precision.FLOAT32:
            sibling = registry.float_sibling(fmt)
            if sibling is None:
                out.append(f"{fmt} on {rt}: not compared for speed: its family has no float32 format")
            elif (sibling, rt) not in rates:
                out.append(f"{fmt} on {rt}: not compared for speed: {sibling} was not measured on {rt} in this run")
    return out


def slower(rows: Iterable[Row], *, threshold: float = SLOW_FRACTION) -> list[str]:
    """One line per format between ``threshold`` and :data:`SLOWER_FRACTION` of its float sibling's
    throughput on the same runtime: not a slow kernel path, yet slower than the float it replaces."""
    rates = _rates(rows)
    out = []
    for (fmt, rt), ips in rates.items():
        sibling = _sibling(fmt)
        ref = rates.get((sibling, rt)) if sibling else None
        if ref and threshold * ref <= ips < SLOWER_FRACTION * ref:
            out.append(f"{fmt} on {rt}: {ref / ips:.1f}x slower than {sibling} in this run ({ips:,.0f} vs "
                       f"{ref:,.0f} img/s): it saves size, not time, on this machine")
    return out


def render(found: Sequence[SlowPath]) -> list[str]:
    """The one-line messages of :func:`slow_paths`' result, slowest first."""
    return [s.message for s in found]


def notes(rows: Iterable[Row], *, threshold: float = SLOW_FRACTION) -> list[str]:
    """Lines to append to a command's notes: every slow path, the formats slower than their float
    sibling short of that, then what could not be compared."""
    rows = list(rows)
    return render(slow_paths(rows, threshold=threshold)) + slower(rows, threshold=threshold) + unchecked(rows)


def to_records(found: Sequence[SlowPath]) -> list[dict[str, Any]]:
    """The json form of :func:`slow_paths`' result (each with its ratio, threshold and message)."""
    return [s.to_dict() for s in found]
