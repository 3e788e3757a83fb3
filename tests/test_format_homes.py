"""A format's name lives in its registry row and its own module(s), nowhere else in the package.

verify, fix, bench, report, bundles and fuzz ask the registry (runtimes, proof, fixer, followers,
deploy size, bundles, widths); this test fails when a format-name string literal or a
``Format.MEMBER`` reference appears in any other package module.
"""
from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

from edgeport.export import registry

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edgeport", "training", "export", "runtimes", "benchmarks")
# "onnx" is also the ONNX package, its file family and the engine's file kind: that word stays free.
NAMES = {f.value for f in registry.Format} - {"onnx"}
MEMBER = re.compile(r"\b(?:Format|_F)\.([A-Z][A-Z0-9_]*)\b")


def _homes() -> set[Path]:
    """export/registry.py, every module a registry row points at, and each family's modules."""
    homes = {ROOT / "export" / "registry.py"}
    for row in registry.INFO.values():
        for spec in (row.export, row.fixer, row.debugger, row.size, row.embedded, row.describer):
            if spec and spec.startswith("edgeport.export."):
                homes.add(ROOT / "export" / (spec.split(":")[0].split(".")[-1] + ".py"))
        homes.update((ROOT / "export").glob(f"{row.family}*.py"))
    return homes


def offences(path: Path) -> list[str]:
    text = path.read_text()
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.STRING:
            try:
                value = eval(tok.string, {})  # noqa: S307 - a literal token from our own source
            except Exception:  # noqa: BLE001 - f-strings and the like: not a bare name
                continue
            if isinstance(value, str) and value in NAMES:
                found.append(f"{path.relative_to(ROOT)}:{tok.start[0]}: {tok.string}")
    for n, line in enumerate(text.splitlines(), 1):
        for m in MEMBER.finditer(line):
            if m.group(1) in registry.Format.__members__:
                found.append(f"{path.relative_to(ROOT)}:{n}: {m.group(0)}")
    return found


def test_no_format_name_outside_its_home():
    homes = _homes()
    bad = [o for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py")) if p not in homes
           for o in offences(p)]
    assert not bad, "format names spelled outside the registry and the formats' modules:\n" + "\n".join(bad)


def test_the_check_can_fail(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text('FIXABLE = ("tflite_int8",)\nx = Format.ONNX\nok = "tflite"\n')
    found = offences_at(sample)
    assert len(found) == 2 and "tflite_int8" in found[0] and "Format.ONNX" in found[1]


def offences_at(path: Path) -> list[str]:
    global ROOT
    saved, ROOT = ROOT, path.parent
    try:
        return offences(path)
    finally:
        ROOT = saved
