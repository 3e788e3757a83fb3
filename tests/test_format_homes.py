"""A format's name lives in its registry row and its own module(s); an output kind's name and its own
figures and gate fields live in its kind module; nowhere else in the package.

verify, fix, bench, report, bundles and fuzz ask the format registry (runtimes, proof, fixer,
followers, deploy size, bundles, widths) and the kind registry (detection, figures, gate fields,
checks, what fix keeps and shows). These tests fail when such a name is spelled elsewhere: a string
literal equal to it, the name as a word inside an f-string's text, a ``Format.MEMBER`` reference,
or a kind's gate field read as an attribute (``gate.min_cosine``).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Iterator

from edgeport.benchmarks.verify import kinds
from edgeport.export import registry

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edgeport", "training", "export", "runtimes", "benchmarks")
# "onnx" is also the ONNX package, its file family and the engine's file kind: that word stays free.
NAMES = {f.value for f in registry.Format} - {"onnx"}
MEMBER = re.compile(r"\b(?:Format|_F)\.([A-Z][A-Z0-9_]*)\b")
# Kind names and kind figures that are also plain words with other meanings here (an input contract's
# "values", a format's "precision" class, a model "classifier" recipe, "scores" of a MediaPipe result).
FREE_KIND_WORDS = {"values", "precision", "recall", "threshold", "positions", "elements", "scores", "classifier",
                   "flips"}
# Spellings in files other work is rewriting now: (path, name). Each goes when that work lands.
KIND_ALLOWED = {
    ("export/targets/mobile.py", "probabilities"),  # TODO: moved by the targets work (proofs through verify)
    ("export/targets/web.py", "probabilities"),  # TODO: moved by the targets work
    ("benchmarks/devices/mediapipe_check.py", "disagreements"),  # TODO: moved by the targets work
    ("benchmarks/verify/proof.py", "confidence_margin"),  # TODO: moved by the targets work (compare reads
    # the margin from gate.settings())
}


def _shaped(names: set[str]) -> set[str]:
    """The names no prose can be mistaken for (an underscore or a digit): checked as words in f-strings."""
    return {n for n in names if "_" in n or any(c.isdigit() for c in n)}


def _word(names: set[str]) -> re.Pattern[str]:
    """A name as a word: not part of a longer identifier, a dotted module path, a path or a file name."""
    alt = "|".join(map(re.escape, sorted(names, key=len, reverse=True))) or r"(?!x)x"
    return re.compile(rf"(?<![\w./-])({alt})(?![\w-]|\.\w)")


def strings(tree: ast.AST) -> Iterator[tuple[int, str, bool]]:
    """(line, text, inside an f-string) of every string constant but docstrings (prose)."""
    docs, inner = set(), set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
        if isinstance(node, ast.JoinedStr):
            inner.update(id(v) for v in node.values if isinstance(v, ast.Constant))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.lineno, node.value, id(node) in inner


def spelled(path: Path, names: set[str], *, attributes: bool = False, root: Path = ROOT) -> list[str]:
    """Where ``path`` spells one of ``names``: a string equal to it, the name as a word in an f-string
    (identifier-shaped names only), and with ``attributes`` an attribute of that name."""
    tree = ast.parse(path.read_text())
    where = str(path.relative_to(root))
    shaped = _shaped(names)
    word = _word(shaped)
    found = []
    for line, text, in_f in strings(tree):
        if text in names:
            found.append((where, line, text))
        elif in_f and (m := word.search(text)):
            found.append((where, line, m.group(1)))
    if attributes:
        found += [(where, n.lineno, n.attr) for n in ast.walk(tree)
                  if isinstance(n, ast.Attribute) and n.attr in shaped]
    return [f"{w}:{line}: {name!r}" for w, line, name in sorted(found)]


def offences(path: Path, root: Path = ROOT) -> list[str]:
    found = spelled(path, NAMES, root=root)
    for n, line in enumerate(path.read_text().splitlines(), 1):
        for m in MEMBER.finditer(line):
            if m.group(1) in registry.Format.__members__:
                found.append(f"{path.relative_to(root)}:{n}: {m.group(0)}")
    return found


def _homes() -> set[Path]:
    """export/registry.py, every module a registry row points at, and each family's modules."""
    homes = {ROOT / "export" / "registry.py"}
    for row in registry.INFO.values():
        for spec in (row.export, row.fixer, row.debugger, row.size, row.embedded, row.describer):
            if spec and spec.startswith("edgeport.export."):
                homes.add(ROOT / "export" / (spec.split(":")[0].split(".")[-1] + ".py"))
        homes.update((ROOT / "export").glob(f"{row.family}*.py"))
    return homes


def _modules(homes: set[Path]) -> Iterator[Path]:
    for pkg in PACKAGES:
        yield from (p for p in sorted((ROOT / pkg).rglob("*.py")) if p not in homes)


def test_no_format_name_outside_its_home():
    bad = [o for p in _modules(_homes()) for o in offences(p)]
    assert not bad, "format names spelled outside the registry and the formats' modules:\n" + "\n".join(bad)


def kind_words() -> set[str]:
    """Each kind's name, the figures it declares (summary, fix, alternatives, ranking, checks) and its
    gate fields, less the table columns every kind shares (``kinds.COLUMNS``) and the free words."""
    words = set(kinds.names())
    for k in kinds.every():
        words.update(*(getattr(k, a) for a in ("worst_is_max", "worst_is_min", "fix_figures", "alternative_figures",
                                               "percent_figures")))
        words.update(g.name for g in k.gate_fields)
        words.update(b.figure for b in k.bounds)
        words.update([k.rank_by] if k.rank_by else [])
    return words - set(kinds.COLUMNS) - FREE_KIND_WORDS


def test_no_kind_name_or_kind_figure_outside_its_module():
    homes = set((ROOT / "benchmarks" / "verify" / "kinds").glob("*.py"))
    words = kind_words()
    bad = [o for p in _modules(homes) for o in spelled(p, words, attributes=True)
           if (o.split(":")[0], o.split(": ")[1].strip("'")) not in KIND_ALLOWED]
    assert not bad, "output kind names or figures spelled outside benchmarks/verify/kinds/:\n" + "\n".join(bad)


def test_the_checks_can_fail(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text('"""tflite_int8 in a docstring is prose."""\nFIXABLE = ("tflite_int8",)\nx = Format.ONNX\n'
                      'ok = "tflite"\nmsg = f"{d}: the tflite_int16x8 entry"\nfile = f"{d}/saved_model.pb"\n')
    found = offences(sample, root=tmp_path)
    assert len(found) == 3 and "tflite_int8" in found[0] and "tflite_int16x8" in found[1] and "Format.ONNX" in found[2]
    sample.write_text('K = "multilabel"\nt = f"{x} flip_rate {y}"\nm = gate.min_cosine\nv = "values"\n')
    found = spelled(sample, kind_words(), attributes=True, root=tmp_path)
    assert [o.split(": ")[1] for o in found] == ["'multilabel'", "'flip_rate'", "'min_cosine'"], found
