"""Interrupted and concurrent work: an export killed with SIGKILL at any point leaves the previous
artifacts and manifest intact with every sha256 matching, and the next export completes; two
exports of one model never interleave; two verify runs at once leave a whole verify.json."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgeport.errors import ExportError, IntegrityError, ModelFileError
from edgeport.export.commit import model_lock
from edgeport.export.pipeline import export_model
from edgeport.manifest import check_integrity, effective_entries, load_manifest

FORMATS = ["tflite_fp32", "tflite_fp16", "c_array"]
NAME = "kill_me"

#: Each kill point patches one step of the export in the child, which then SIGKILLs itself there.
KILLERS = {
    "in the converter": """
        import edgeport.export.tflite as t
        t.export_fp32 = lambda ctx, dest: (dest.write_bytes(b"half a model"), die())
    """,
    "after recording the pending entry": """
        real = commit.save_manifest
        def save(model_dir, manifest):
            real(model_dir, manifest)
            if manifest.get("pending"):
                die()
        commit.save_manifest = save
    """,
    "between the rename and the manifest update": """
        real = commit.os.replace
        def replace(src, dst):
            real(src, dst)
            if str(dst).endswith("model_fp32.tflite") and ".prev." not in str(dst):
                die()
        commit.os.replace = replace
    """,
    "between the .c and the .h": """
        real = commit.os.replace
        def replace(src, dst):
            real(src, dst)
            if str(dst).endswith("model_int8_data.c") and ".prev." not in str(dst):
                die()
        commit.os.replace = replace
    """,
    "before removing the backups": """
        commit.remove = lambda path: die() if path.exists() else None  # the cleanup after the commit
    """,
}


#: The format each kill point interrupts (None: the first format had finished, only cleanup was left).
KILLED = {"in the converter": "tflite_fp32", "after recording the pending entry": "tflite_fp32",
          "between the rename and the manifest update": "tflite_fp32", "between the .c and the .h": "c_array",
          "before removing the backups": None}


def _driver(killer: str, src: Path, out: Path, cal: Path) -> str:
    return textwrap.dedent("""
        import os, signal
        from edgeport.export import commit
        def die():
            os.kill(os.getpid(), signal.SIGKILL)
        {killer}
        from edgeport.export.pipeline import export_model
        export_model({src!r}, formats={formats!r}, out={out!r}, calibration_data={cal!r}, isolate=False)
    """).format(killer=textwrap.dedent(killer).strip().replace("\n", "\n"), src=str(src), formats=FORMATS,
                out=str(out), cal=str(cal))


def _model(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])


def _snapshot(model_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file() and not p.name.startswith(".")}


@pytest.fixture(scope="module")
def exported_once(tmp_path_factory):
    base = tmp_path_factory.mktemp("interrupt")
    np.save(base / "cal.npy", np.random.default_rng(0).uniform(-1, 1, (20, 6)).astype(np.float32))
    src = base / f"{NAME}.keras"
    _model(0).save(src)
    assert export_model(str(src), formats=FORMATS, out=base / "out", calibration_data=str(base / "cal.npy")).ok
    _model(1).save(src)  # the next export replaces every artifact with different bytes
    return base


@pytest.fixture
def first_export(exported_once, tmp_path):
    import shutil

    shutil.copytree(exported_once, tmp_path, dirs_exist_ok=True)
    return tmp_path


@pytest.mark.parametrize("point", list(KILLERS))
def test_an_export_killed_anywhere_leaves_a_whole_model_directory(first_export, point):
    tmp = first_export
    model_dir = tmp / "out" / NAME
    before = _snapshot(model_dir)
    before_manifest = load_manifest(model_dir)
    script = _driver(KILLERS[point], tmp / f"{NAME}.keras", tmp / "out", tmp / "cal.npy")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, (point, proc.stderr[-2000:])
    # what any reader sees right after the kill: every listed file matches its sha256, a two-file
    # artifact caught between its two renames included (the reader settles it first: no tamper alarm)
    manifest = load_manifest(model_dir)
    for entry in effective_entries(model_dir, manifest).values():
        check_integrity(model_dir, entry)
    # the next export settles the interruption (the previous state comes back), then completes
    assert effective_entries(model_dir, manifest).keys() == before_manifest["artifacts"].keys()
    from edgeport.manifest import recover

    with model_lock(model_dir):
        recover(model_dir, manifest)
    # formats are committed one by one: the one killed mid-way keeps its previous files and entry,
    # those finished before it are the new ones; every sha256 matches either way
    killed = KILLED[point]
    after = load_manifest(model_dir)
    for fmt, entry in after["artifacts"].items():
        check_integrity(model_dir, entry)
        finished = FORMATS.index(fmt) < FORMATS.index(killed) if killed else fmt == FORMATS[0]
        assert (entry == before_manifest["artifacts"][fmt]) != finished, (point, fmt)
    if killed:
        for name in load_manifest(model_dir)["artifacts"][killed]["files"]:
            assert (model_dir / name).read_bytes() == before[name], (point, name)
    report = export_model(str(tmp / f"{NAME}.keras"), formats=FORMATS, out=tmp / "out",
                          calibration_data=str(tmp / "cal.npy"))
    assert report.ok, report.render()
    final = load_manifest(model_dir)
    assert "pending" not in final and final["artifacts"]["tflite_fp32"]["sha256"] != \
        before_manifest["artifacts"]["tflite_fp32"]["sha256"]
    for entry in final["artifacts"].values():
        check_integrity(model_dir, entry)
    assert [p.name for p in model_dir.iterdir() if p.name.startswith(".")] == [".edgeport.lock"]


def test_a_second_export_of_the_same_model_is_refused_while_one_runs(first_export, capsys):
    model_dir = first_export / "out" / NAME
    with model_lock(model_dir):
        with pytest.raises(ExportError, match="another edgeport export is writing this model"):
            export_model(str(first_export / f"{NAME}.keras"), formats=["tflite_fp32"], out=first_export / "out")
    assert export_model(str(first_export / f"{NAME}.keras"), formats=["tflite_fp32"], out=first_export / "out",
                        calibration_data=str(first_export / "cal.npy")).ok


def test_two_exports_at_once_end_with_a_consistent_manifest(first_export):
    cmd = [sys.executable, "-m", "edgeport", "export", str(first_export / f"{NAME}.keras"), "--formats",
           "tflite_fp32", "tflite_fp16", "--out", str(first_export / "out"), "--calibration-data",
           str(first_export / "cal.npy")]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes[0] == 0, results
    if codes[1] != 0:  # the loser is told, in one line, why
        assert any("another edgeport export is writing this model" in err for _, err in results)
    model_dir = first_export / "out" / NAME
    for entry in load_manifest(model_dir)["artifacts"].values():
        check_integrity(model_dir, entry)


def test_two_verify_runs_at_once_leave_a_whole_verify_json(first_export):
    x = np.random.default_rng(1).uniform(-1, 1, (40, 6)).astype(np.float32)
    np.savez(first_export / "test.npz", x_test=x)
    cmd = [sys.executable, "-m", "edgeport", "verify", NAME, "--out", str(first_export / "out"), "--data-npz",
           str(first_export / "test.npz"), "--formats", "tflite_fp32", "--gates", "float32.min_agreement=0"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    codes = [p.wait(timeout=600) for p in procs]
    assert codes == [0, 0], [p.stdout.read()[-1500:] for p in procs]
    saved = json.loads((first_export / "out" / NAME / "verify.json").read_text())
    assert saved["ok"] is True and saved["results"]


def test_the_next_export_undoes_an_interrupted_one_by_itself(first_export):
    """No explicit recover: the next `edgeport export` settles the interruption first, says so, and
    leaves no pending entry, backup or file whose sha256 differs from its entry."""
    tmp = first_export
    model_dir = tmp / "out" / NAME
    before = load_manifest(model_dir)
    script = _driver(KILLERS["between the rename and the manifest update"], tmp / f"{NAME}.keras", tmp / "out",
                     tmp / "cal.npy")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert load_manifest(model_dir).get("pending")  # the interruption is on record
    report = export_model(str(tmp / f"{NAME}.keras"), formats=["tflite_fp16"], out=tmp / "out",
                          calibration_data=str(tmp / "cal.npy"))
    assert report.ok, report.render()
    assert any("tflite_fp32: an interrupted export was undone" in w for w in report.warnings), report.warnings
    after = load_manifest(model_dir)
    assert "pending" not in after and after["artifacts"]["tflite_fp32"] == before["artifacts"]["tflite_fp32"]
    for entry in after["artifacts"].values():
        check_integrity(model_dir, entry)
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".") and p.name != ".edgeport.lock"]


def _ort_entry(where: Path, tag: str) -> dict:
    """An ``ort`` entry over stand-in bytes at the registry's names (.ort and its operator config)."""
    from edgeport.export.registry import INFO
    from edgeport.files import sha256_file
    from edgeport.manifest import hash_files

    info = INFO["ort"]
    where.mkdir(parents=True, exist_ok=True)
    for name in (info.file, *info.extra_files):
        (where / name).write_text(f"{tag} {name}\n")
    return {"format": "ort", "file": info.file, "sha256": sha256_file(where / info.file), "bytes": 9,
            "files": hash_files(where, [info.file, *info.extra_files]), "source_sha256": None, "inputs": [],
            "outputs": [], "status": "ok", "precision": "float32", "versions": {}}


def test_an_ort_half_replaced_by_a_killed_export_is_settled_never_called_tampered(tmp_path, monkeypatch, capsys):
    """model.ort and its required_operators.config are renamed one by one; an export killed between
    the two leaves model.ort matching neither entry. Every reader (verify, bench, bundle, report: they
    all read effective_entries) settles it first, so every listed file matches its entry and no
    tamper alarm is raised for edgeport's own write; while an export holds the lock, it says to wait."""
    from edgeport.export import commit as commit_module
    from edgeport.export.registry import INFO
    from edgeport.manifest import save_manifest

    model_dir, ort = tmp_path / "m", INFO["ort"].file
    old = _ort_entry(model_dir, "old")
    save_manifest(model_dir, {"artifacts": {"ort": old}})
    new = _ort_entry(tmp_path / "staging", "new")
    real = commit_module.os.replace

    def replace(src, dst):  # the kill: right after model.ort is in place, before its config
        real(src, dst)
        if Path(dst).name == ort:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(commit_module.os, "replace", replace)
        with pytest.raises(KeyboardInterrupt):
            commit_module.commit(model_dir, load_manifest(model_dir), "ort", new, tmp_path / "staging",
                                 list(new["files"]))
    with pytest.raises(IntegrityError, match="changed after export"):  # what verify said before
        check_integrity(model_dir, old)
    with model_lock(model_dir):  # an export still running: its half-done write is its own
        with pytest.raises(ModelFileError, match="another edgeport export is writing this model"):
            effective_entries(model_dir, load_manifest(model_dir))
    manifest = load_manifest(model_dir)
    entries = effective_entries(model_dir, manifest)
    assert "interrupted export was undone" in capsys.readouterr().err
    assert entries == {"ort": old} and "pending" not in load_manifest(model_dir)
    for entry in entries.values():
        check_integrity(model_dir, entry)
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".prev.")]
