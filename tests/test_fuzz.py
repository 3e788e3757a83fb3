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
