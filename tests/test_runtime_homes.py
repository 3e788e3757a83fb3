"""A runtime's name lives in runtimes/ (its registry row and its own module), nowhere else in the package.

Callers ask what a runtime can do (``edgeport.runtimes.registry.capabilities``: devices, GPU variants,
threads, batch, precisions, the reference's noise and float graph, the int8 peak, 32-bit Arm) or which
runtimes run a file (``runtimes_for``), never ``rt == "litert"``. This test fails when a runtime name
is spelled outside runtimes/: as any string literal for a name with no other meaning, and in a runtime
context (``runtime=``, a comparison with a runtime, ``.startswith``, a ``"runtime"`` entry, a
``by_runtime[...]`` subscript) for a name that is also another word (``keras``: an artifact kind and a
package; ``savedmodel``: an artifact kind; ``onnxruntime``: the engine's package).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

from edgeport.runtimes.registry import RUNTIMES

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edgeport", "training", "export", "benchmarks")
NAMES = set(RUNTIMES)
#: names that are also other words; checked only where they are used as a runtime
OTHER_MEANINGS = {"keras": "an artifact kind (model_files.KINDS), a package and the source model's row label",
                  "savedmodel": "an artifact kind (model_files.KINDS) and a format family",
                  "onnxruntime": "the engine's package (distribution) name"}
#: (file, name): why that file may spell it. Data keyed by runtime on purpose, nothing that branches on it.
ALLOWED = {
    # board facts: the engine version each runtime must report on that board (a row per board, like a registry's)
    ("benchmarks/devices/boards.py", "litert"): "the engine each runtime reports on a board",
}
RUNTIME_WORD = re.compile(r"\brt\b|runtime", re.I)


def _names_in(node: ast.AST) -> list[str]:
    """Runtime names a constant (or a tuple/list/set of constants) spells."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in NAMES:
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [n for e in node.elts for n in _names_in(e)]
    return []


def _runtime_contexts(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg and RUNTIME_WORD.search(node.arg):
            found += [(node.value.lineno, n) for n in _names_in(node.value)]
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(RUNTIME_WORD.search(ast.unparse(s)) for s in sides if not _names_in(s)):
                found += [(node.lineno, n) for s in sides for n in _names_in(s)]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("startswith", "endswith", "removeprefix", "removesuffix")):
            found += [(node.lineno, n) for a in node.args for n in _names_in(a)]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and node.args and RUNTIME_WORD.search(ast.unparse(node.args[0]))):  # x.get("runtime", "keras")
            found += [(node.lineno, n) for a in node.args[1:] for n in _names_in(a)]
        elif isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if (isinstance(k, ast.Constant) and isinstance(k.value, str) and k.value not in NAMES
                        and RUNTIME_WORD.search(k.value)):
                    found += [(v.lineno, n) for n in _names_in(v)]
        elif isinstance(node, ast.Subscript) and RUNTIME_WORD.search(ast.unparse(node.value)):
            found += [(node.lineno, n) for n in _names_in(node.slice)]
    return found


def _plain(tree: ast.AST) -> list[tuple[int, str]]:
    """Names with no other meaning, in any string: a literal, or a word inside an f-string's text."""
    found = []
    fstring_parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        words = re.findall(r"[\w.-]+", node.value) if id(node) in fstring_parts else [node.value]
        found += [(node.lineno, w) for w in words if w in NAMES and w not in OTHER_MEANINGS]
    return found


def offences(path: Path, root: Path = ROOT) -> list[str]:
    rel = path.relative_to(root).as_posix()
    tree = ast.parse(path.read_text())
    hits = sorted(set(_runtime_contexts(tree)) | set(_plain(tree)))
    return [f"{rel}:{line}: {name!r}" for line, name in hits if (rel, name) not in ALLOWED]


def test_no_runtime_name_outside_runtimes():
    bad = [o for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py")) for o in offences(p)]
    assert not bad, ("runtime names spelled outside runtimes/ (ask edgeport.runtimes.registry.capabilities "
                     "or runtimes_for instead):\n" + "\n".join(bad))


def test_the_check_can_fail(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text('if device == "gpu" and rt == "litert":\n    pass\n'
                      'base = "onnxruntime" if rt.startswith("onnxruntime") else rt\n'
                      'load(p, runtime="keras")\n'
                      'job = {"runtime": "savedmodel"}\n'
                      'ref = source.get("reference_runtime", "keras")\n'
                      'msg = f"{x} on tflm"\n'
                      'KINDS = ("keras", "savedmodel")\n'  # artifact kinds: free
                      'PACKAGES = ("onnxruntime", "numpy")\n')  # a package: free
    found = offences(sample, tmp_path)
    assert [f.split(": ")[1] for f in found] == ["'litert'", "'onnxruntime'", "'keras'", "'savedmodel'", "'keras'",
                                                 "'tflm'"], found


def test_the_allowlist_is_still_needed():
    """Every allowed spelling is still there (an entry nobody needs goes)."""
    for (rel, name) in ALLOWED:
        tree = ast.parse((ROOT / rel).read_text())
        assert name in {n for _, n in _plain(tree) + _runtime_contexts(tree)}, (rel, name)


# -- the capability rows ----------------------------------------------------------------------------

def test_every_runtime_declares_what_it_can_do():
    from edgeport.lazy import resolve
    from edgeport.runtimes.registry import CAPABILITIES

    assert set(CAPABILITIES) == NAMES
    for can in CAPABILITIES.values():
        assert can.int8_matmul is None or callable(resolve(can.int8_matmul))
        assert all(can.devices.count(d) == 1 for d in can.devices)


def test_a_format_runs_only_where_its_precision_is_computed():
    from edgeport.export import registry
    from edgeport.runtimes.registry import capabilities

    for fmt, row in registry.INFO.items():
        for rt in row.runtimes:
            assert {row.weights, row.activations} <= set(capabilities(rt).precisions), (fmt, rt)


def test_a_gpu_variant_label_names_its_runtime():
    from edgeport.runtimes.registry import CAPABILITIES, capabilities, runtime_of, variant_label

    for name, can in CAPABILITIES.items():
        for variant in can.gpu_variants:
            assert runtime_of(variant_label(name, variant)) == name
            assert capabilities(variant_label(name, variant)) is can
    assert runtime_of("keras.predict") == "keras.predict"  # a bench label, not a runtime's variant


def test_capabilities_are_checked():
    import pytest

    from edgeport.errors import UnknownNameError
    from edgeport.runtimes.registry import Capabilities, capabilities

    with pytest.raises(ValueError, match="devices"):
        Capabilities(devices=("tpu",))
    with pytest.raises(ValueError, match="CPU-only"):
        Capabilities(cpu_only="")  # no GPU and no reason given
    assert Capabilities(devices=("cpu", "gpu")).cpu_only == ""
    with pytest.raises(ValueError, match="variants"):
        Capabilities(cpu_only="why", gpu_variants={"x": {}})
    with pytest.raises(UnknownNameError):
        capabilities("no_such_runtime")
    assert capabilities("my.module:Session") == Capabilities()  # a custom runtime declares nothing more


def test_bench_plans_gpu_rows_from_the_capabilities(tmp_path):
    """On a GPU: a CPU-only runtime is noted with its reason, a GPU variant is one more row."""
    from edgeport.benchmarks.bench.command import runtime_rows
    from edgeport.benchmarks.bench.result import BenchReport

    report = BenchReport("m", tmp_path, "gpu", {}, 1.0)
    (tmp_path / "m.onnx").write_bytes(b"")
    (tmp_path / "m.tflite").write_bytes(b"")
    onnx = runtime_rows("onnx", tmp_path / "m.onnx", "gpu", report)
    assert [(rt, opts) for _, rt, _, opts in onnx] == [
        ("onnxruntime", {}), ("onnxruntime-tensorrt", {"providers": ["TensorrtExecutionProvider",
                                                                     "CUDAExecutionProvider"]})]
    assert runtime_rows("tflite_fp32", tmp_path / "m.tflite", "gpu", report) == []
    assert report.notes == ["tflite_fp32: no GPU path for TFLite in Python (LiteRT GPU delegates are mobile-only)"]
    assert [rt for _, rt, _, _ in runtime_rows("onnx", tmp_path / "m.onnx", "cpu", report)] == ["onnxruntime"]
