"""The zoo of real published models (issue 22): 20+ models read out of public PyPI wheels, each run
through the invariants by the real CLI. Every invariant must hold on every model except the known
failures below, each with its finding: a new failure, or a known one that is fixed, fails the test
(fixing one means deleting its row here)."""
from __future__ import annotations

import numpy as np
import pytest

from edgeport.benchmarks.zoo import invariants as inv
from edgeport.benchmarks.zoo.commands import Cmd
from edgeport.benchmarks.zoo.recipes import RECIPES, Recipe

#: (model, invariant) -> (what its failure message says, the finding). Keep it the truth: the test fails
#: when a row here passes, and when it fails for another reason (its message without the words given).
KNOWN_FAILURES: dict[tuple[str, str], tuple[str, str]] = {}


def test_the_recipes_cover_the_issue():
    """20+ published models from pinned wheels, each file pinned by sha256, covering the kinds asked for."""
    assert len(RECIPES) >= 20 and len({r.name for r in RECIPES}) == len(RECIPES)
    assert len({r.sha256 for r in RECIPES}) == len(RECIPES)
    assert all(r.package.count("==") == 1 for r in RECIPES)
    kinds = {r.kind for r in RECIPES}
    for k in ("classifier", "detector-ssd", "detector-yolo", "segmentation", "landmarks", "ocr-detection",
              "ocr-ctc", "text-ids", "classifier-ids", "audio-stateful"):
        assert k in kinds, k
    assert {"float32", "fp16-weights", "fp16", "dynamic-range", "int8"} <= {r.precision for r in RECIPES}
    sources = [r for r in RECIPES if r.source]
    assert {r.member.rsplit(".", 1)[-1] for r in sources} >= {"hdf5", "h5"} and any(r.member.endswith("/")
                                                                                 for r in sources)
    assert any(len(r.feeds) > 1 for r in RECIPES) and any(not r.batched for r in RECIPES)
    for key, (says, finding) in KNOWN_FAILURES.items():
        assert key[0] in {r.name for r in RECIPES} and key[1] in inv.INVARIANTS, key
        assert says and len(finding) > len(says), key


def test_a_recipe_is_pinned():
    with pytest.raises(ValueError, match="pin the package"):
        Recipe("x", "pkg>=1", "a.onnx", "0" * 64, "", "classifier", "float32", {})


def test_a_command_ends_in_a_result_or_one_error_line():
    ok = Cmd(["run", "m.onnx"], 0, "out", "", 0.1)
    error = Cmd(["run", "m.onnx"], 2, "", "edgeport: error: m.onnx: bad\n", 0.1)
    traceback = Cmd(["run", "m.onnx"], 1, "", "Traceback (most recent call last):\n  ...\nIndexError: x\n", 0.1)
    died = Cmd(["run", "m.onnx"], -11, "", "", 0.1)
    assert ok.problem() is None and error.problem() is None
    assert "traceback: IndexError: x" in traceback.problem() and "died" in died.problem()
    assert "2 `edgeport: error:` lines" in Cmd(["x"], 2, "", "edgeport: error: a\nedgeport: error: b", 0).problem()


def test_the_edit_scales_exactly_one_weight_tensor(tmp_path):
    import onnx
    from onnx import helper, numpy_helper

    from edgeport.benchmarks.zoo.edits import scale_one_weight

    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal((8, 8)).astype(np.float32), rng.standard_normal((8, 4)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("MatMul", ["h", "w2"], ["y"])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    onnx.save(helper.make_model(graph), tmp_path / "m.onnx")
    what = scale_one_weight(tmp_path / "m.onnx", tmp_path / "s.onnx")
    assert what.startswith("w1 (float32, 8x8)")
    edited = {t.name: numpy_helper.to_array(t) for t in onnx.load(tmp_path / "s.onnx").graph.initializer}
    np.testing.assert_allclose(edited["w1"], w1 * 1.01, rtol=1e-6)
    np.testing.assert_array_equal(edited["w2"], w2)


def test_quantized_features_lie_in_the_range_the_input_stands_for():
    """A quantized input gets real values (edgeport quantizes them itself) in the range its quantization
    stands for (microWakeWord: scale 26/255, zero point -128: 0..26), at the recipe's level, on the
    quantization grid; the engine's own call quantizes them as edgeport does."""
    from edgeport.benchmarks.zoo.commands import _quantized
    from edgeport.benchmarks.zoo.inputs import features
    from edgeport.benchmarks.zoo.recipes import Feed

    feed = Feed("features", (3, 40), value=2.0)
    scale, zero = 26 / 255, -128
    real = features(feed, 50, (scale, zero, 0.0, 26.0))
    assert real.dtype == np.float32 and real.shape == (50, 3, 40)
    assert real.min() >= 2.0 - scale and 2.0 < np.median(real) < 4 and real.max() <= 26
    assert np.array_equal(real, features(feed, 50, (scale, zero, 0.0, 26.0)))  # seeded
    q = _quantized(real, {"quantization": (scale, zero), "dtype": np.int8})
    assert q.dtype == np.int8 and np.allclose((q.astype(np.float64) - zero) * scale, real, atol=1e-5)


def test_a_surname_is_coded_as_ethnicolr_codes_it():
    """Stripped and title-cased, its character bigrams' first places in the vocabulary (0, UNK, on a
    miss; tokens with a space kept), the last ``maxlen`` kept, 0s before them."""
    from edgeport.benchmarks.zoo.inputs import ngram_ids

    vocab = ["UNK", "Sm", "mi", "it", "th", "r ", " S", "sm"]
    assert ngram_ids(vocab, "  sMITH ", 6) == [0, 0, 1, 2, 3, 4]  # "Smith": "Sm", never "sm"
    assert ngram_ids(vocab, "vander smith", 6) == [5, 6, 1, 2, 3, 4]  # "Vander Smith", truncated in front
    assert ngram_ids(vocab, "x", 3) == [0, 0, 0]


def test_the_census_vocabulary_codes_known_surnames():
    """ethnicolr 0.9.6's census 2010 vocabulary (from the cached wheel): ids counted by hand in
    census2010_ln_vocab.csv (row 1 the header, row 2 UNK = id 0): Sm 159, mi 79, it 51, th 6;
    Zh 541, ha 48, an 16, ng 40."""
    import csv
    import io
    import zipfile

    from edgeport.benchmarks.zoo.fetch import _found, zoo_home
    from edgeport.benchmarks.zoo.inputs import ngram_ids

    wheels = _found(zoo_home() / "wheels", "ethnicolr==0.9.6")
    if not wheels:
        pytest.skip("ethnicolr==0.9.6 wheel not cached (python -m edgeport.benchmarks.zoo ethnicolr_census_lstm)")
    with zipfile.ZipFile(wheels[-1]) as zf:
        text = zf.read("ethnicolr/models/census/lstm/census2010_ln_vocab.csv").decode()
    vocab = [row["vocab"] for row in csv.DictReader(io.StringIO(text, newline=""))]
    assert ngram_ids(vocab, "smith", 20) == [0] * 16 + [159, 79, 51, 6]
    assert ngram_ids(vocab, "Zhang", 20) == [0] * 16 + [541, 48, 16, 40]


@pytest.mark.slow
def test_the_zoo_keeps_its_invariants(tmp_path):
    """Every zoo model through the real CLI (wheels cached under $EDGEPORT_DATA_HOME/zoo after the first run)."""
    from edgeport.benchmarks.zoo.run import run_zoo, table

    entries = run_zoo(out=tmp_path / "zoo", bench=False)
    print(table(entries))
    got = {(e["name"], k): e["checks"][k] for e in entries for k in inv.INVARIANTS}
    new = {f"{m}.{k}": c["message"] for (m, k), c in got.items() if c["status"] == inv.FAIL
           and (m, k) not in KNOWN_FAILURES}
    fixed = [f"{m}.{k}: {got[(m, k)]['status']}: {got[(m, k)]['message']}" for (m, k) in KNOWN_FAILURES
             if got[(m, k)]["status"] != inv.FAIL]
    other = {f"{m}.{k}": got[(m, k)]["message"] for (m, k), (says, _) in KNOWN_FAILURES.items()
             if got[(m, k)]["status"] == inv.FAIL and says not in got[(m, k)]["message"]}
    assert not new, f"new failures: {new}"
    assert not other, f"known failures that now fail for another reason (their finding is out of date): {other}"
    assert not fixed, f"known failures that now pass (delete their rows in KNOWN_FAILURES): {fixed}"
    assert (tmp_path / "zoo" / "zoo.json").is_file()
