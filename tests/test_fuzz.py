"""A small seeded slice of `make fuzz`: every file kind edgeport reads, mutated; no crash, no hang,
no traceback, every refusal one line naming the file. Cases replay byte for byte."""
from __future__ import annotations

from edgeport.benchmarks.fuzz.mutate import mutate
from edgeport.benchmarks.fuzz.run import SHARES, fuzz, replay


def test_mutations_are_deterministic_per_kind_and_seed():
    data = bytes(range(256)) * 8
    for kind in SHARES:
        assert mutate(kind, data, 17) == mutate(kind, data, 17)
    assert mutate("tflite", data, 1) != mutate("tflite", data, 2)


def test_a_seeded_slice_has_no_crash_hang_or_unclean_error(tmp_path):
    report = fuzz(84, seed=11, corpus=tmp_path / "corpus", out=tmp_path / "fuzz.json", timeout=300)
    assert {k.kind for k in report.kinds} == set(SHARES)
    assert sum(len(k.cases) for k in report.kinds) >= 80
    assert report.ok, report.render()
    clean = sum(k.count("clean") for k in report.kinds)
    assert clean > 20 and sum(k.count("ran") for k in report.kinds) > 0  # both paths exercised
    first = report.kinds[0].cases[0]
    again = replay(report.kinds[0].kind, first["seed"], tmp_path / "corpus")
    assert again["mutator"] == first["mutator"] and again["bytes"] == first["bytes"]
    assert again["outcome"] == first["outcome"]


def test_the_input_kinds_run_through_the_harness_without_crash_hang_or_unclean_error(tmp_path):
    """Mutated multi-input .npz files (a 3-input stateful model) and --input-shape strings (a model with
    symbolic height/width), each case in the harness's worker: every outcome ran or clean."""
    from edgeport.benchmarks.fuzz import input_models
    from edgeport.benchmarks.fuzz.harness import fuzz_kind

    corpus = input_models.build(tmp_path / "inputs")
    for kind in ("inputs.npz", "input_shape"):
        assert kind in SHARES
        result = fuzz_kind(kind, list(range(40)), corpus, timeout=120)
        assert len(result.cases) == 40
        bad = [c for c in result.cases if c["outcome"] not in ("ran", "clean")]
        assert not bad, bad[:3]
        assert result.count("clean") > 10 and result.count("ran") > 0, kind  # both paths exercised
