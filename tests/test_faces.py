"""The faces image folder: lfw_subset.npy read out of a (generated) scikit-image wheel, validated,
split 80/20 per class with a fixed seed, written atomically, rebuilt when damaged; image models
train on it by default. No network: the wheel is generated and pip is never run."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgeport.cli import main
from edgeport.training import faces
from edgeport.training.data import data_home

WHEEL = "scikit_image-0.26.0-cp311-cp311-manylinux_2_28_x86_64.whl"


def fake_lfw(seed: int = 0) -> np.ndarray:
    """200 25x25 images in [0, 1]: 100 bright centred blobs ("faces"), then 100 dark noise patches."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[:25, :25]
    blob = np.exp(-((yy - 12) ** 2 + (xx - 12) ** 2) / 40.0)
    face = np.clip(blob[None] * 0.8 + r.random((100, 25, 25)) * 0.2, 0, 1)
    other = r.random((100, 25, 25)) * 0.4
    return np.concatenate([face, other])


def write_wheel(path: Path, images: np.ndarray | None = None, *, member: str = faces.MEMBER) -> Path:
    """A zip laid out like the scikit-image wheel, holding ``images`` as lfw_subset.npy."""
    buf = io.BytesIO()
    np.save(buf, fake_lfw() if images is None else images)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("skimage/__init__.py", "")
        zf.writestr(member, buf.getvalue())
    return path


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """EDGEPORT_DATA_HOME in tmp with a generated wheel in wheels/; no installed skimage, no pip."""
    monkeypatch.setenv("EDGEPORT_DATA_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(faces, "installed_file", lambda: None)

    def no_pip(*args, **kwargs):
        raise AssertionError(f"tests must not download anything: {args}")

    monkeypatch.setattr(faces, "_run_pip", no_pip)
    write_wheel(data_home() / "wheels" / WHEEL)
    return data_home()


# -- reading and validating ------------------------------------------------------------------------
def test_reads_lfw_subset_out_of_the_cached_wheel(home):
    images, source = faces.load_lfw_subset()
    assert images.shape == (200, 25, 25) and np.allclose(images, fake_lfw())
    assert source == f"{home / 'wheels' / WHEEL}!{faces.MEMBER}"


def test_an_installed_skimage_is_preferred(home, tmp_path, monkeypatch):
    npy = tmp_path / "skimage" / "data" / "lfw_subset.npy"
    npy.parent.mkdir(parents=True)
    np.save(npy, fake_lfw(seed=5))
    monkeypatch.setattr(faces, "installed_file", lambda: npy)
    images, source = faces.load_lfw_subset()
    assert source == str(npy) and np.allclose(images, fake_lfw(seed=5))


@pytest.mark.parametrize("images,needle", [
    (np.zeros((199, 25, 25)), "shape (199, 25, 25), expected (200, 25, 25)"),
    (np.full((200, 25, 25), np.nan), "non-finite"),
    (np.full((200, 25, 25), 2.0), "expected [0, 1]"),
    (np.full((200, 25, 25), "x"), "not numeric"),
])
def test_bad_arrays_are_refused_naming_the_file(tmp_path, images, needle):
    wheel = write_wheel(tmp_path / WHEEL, images)
    with pytest.raises(faces.FacesFileError) as err:
        faces.read_wheel(wheel)
    msg = str(err.value)
    assert needle in msg and f"{wheel}!{faces.MEMBER}" in msg and "\n" not in msg


def test_a_wheel_without_the_file_or_not_a_zip_is_refused(tmp_path):
    other = write_wheel(tmp_path / "a" / WHEEL, member="skimage/data/other.npy")
    with pytest.raises(faces.FacesFileError, match="has no skimage/data/lfw_subset.npy"):
        faces.read_wheel(other)
    junk = tmp_path / "b" / WHEEL
    junk.parent.mkdir()
    junk.write_bytes(b"not a zip")
    with pytest.raises(faces.FacesFileError, match=f"{junk}: not a readable wheel.*delete it"):
        faces.read_wheel(junk)


def test_a_failed_download_is_one_line_with_the_fix(tmp_path, monkeypatch):
    class Failed:
        returncode, stdout = 1, ""
        stderr = "ERROR: Could not find a version\nERROR: No matching distribution found for scikit-image==0.26.*"

    calls = []
    monkeypatch.setattr(faces, "_run_pip", lambda cmd: calls.append(cmd) or Failed())
    with pytest.raises(faces.FacesSourceError) as err:
        faces.download_wheel(tmp_path / "wheels")
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "wheels") in msg and "No matching distribution" in msg
    assert "pip install" in msg
    assert calls[0][1:4] == ["-m", "pip", "download"] and "--only-binary=:all:" in calls[0]
    assert "--no-deps" in calls[0] and calls[0][-1] == faces.SKIMAGE


# -- the split and the folder ----------------------------------------------------------------------
def test_split_rule_and_counts():
    parts = faces.split(0)
    assert {p: {c: len(r) for c, r in classes.items()} for p, classes in parts.items()} == {
        "train": {"face": 80, "non_face": 80}, "validation": {"face": 20, "non_face": 20}}
    for k, cls in enumerate(faces.CLASSES):
        rows = parts["train"][cls] + parts["validation"][cls]
        assert sorted(rows) == list(range(100 * k, 100 * (k + 1)))  # disjoint, complete, in class
    # the documented rule, spelled out: one generator, faces' permutation first, then non-faces'
    rng = np.random.default_rng(0)
    perm_face, perm_other = rng.permutation(100), rng.permutation(100)
    assert parts["validation"]["face"] == sorted(perm_face[80:].tolist())
    assert parts["validation"]["non_face"] == sorted((100 + perm_other[80:]).tolist())
    assert faces.split(0) == parts and faces.split(1) != parts


def test_materialize_writes_the_folder(home):
    dest = faces.materialize_faces()
    assert dest == home / "faces" and faces.is_complete(dest, 0)
    from PIL import Image

    pixels = np.rint(fake_lfw() * 255).astype(np.uint8)
    for part, classes in faces.split(0).items():
        for cls, rows in classes.items():
            files = sorted((dest / part / cls).iterdir())
            assert [f.name for f in files] == [f"{cls}_{r:03d}.png" for r in rows]
    with Image.open(dest / "train" / "face" / f"face_{faces.split(0)['train']['face'][0]:03d}.png") as im:
        assert im.mode == "L" and im.size == (25, 25)
        assert np.array_equal(np.asarray(im), pixels[faces.split(0)["train"]["face"][0]])
    stamp = json.loads((dest / faces.STAMP).read_text())
    assert stamp["seed"] == 0 and WHEEL in stamp["source"] and len(stamp["files"]) == 200
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_a_second_run_is_a_no_op(home, monkeypatch):
    dest = faces.materialize_faces()
    before = {p: p.stat().st_mtime_ns for p in dest.rglob("*")}
    monkeypatch.setattr(faces, "load_lfw_subset", lambda: pytest.fail("a complete folder was rebuilt"))
    assert faces.materialize_faces() == dest
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*")} == before


@pytest.mark.parametrize("damage", ["truncate", "delete", "stray", "stamp", "extra_class"])
def test_a_damaged_folder_is_rebuilt(home, damage, capsys):
    dest = faces.materialize_faces()
    png = next((dest / "validation" / "non_face").iterdir())
    if damage == "truncate":
        png.write_bytes(png.read_bytes()[:20])
    elif damage == "delete":
        png.unlink()
    elif damage == "stray":
        (dest / "train" / "face" / "holiday.png").write_bytes(png.read_bytes())
    elif damage == "stamp":
        (dest / faces.STAMP).write_text("{not json")
    else:
        (dest / "train" / "cat").mkdir()
    assert not faces.is_complete(dest)
    assert faces.materialize_faces() == dest and faces.is_complete(dest, 0)
    assert "rebuilding" in capsys.readouterr().err
    assert not (dest / "train" / "cat").exists() and not (dest / "train" / "face" / "holiday.png").exists()


def test_another_seed_rebuilds_with_its_split(home):
    dest = faces.materialize_faces()
    faces.materialize_faces(seed=3)
    assert faces.is_complete(dest, 3) and not faces.is_complete(dest, 0)
    names = {p.name for p in (dest / "validation" / "face").iterdir()}
    assert names == {f"face_{r:03d}.png" for r in faces.split(3)["validation"]["face"]}


def test_an_interrupted_rebuild_leaves_the_old_folder(home, monkeypatch):
    dest = faces.materialize_faces()
    victim = next((dest / "train" / "face").iterdir())
    victim.unlink()  # damaged: the next run rebuilds
    stamp = (dest / faces.STAMP).read_text()

    def crash(root, images, seed, source):
        (root / "train" / "face").mkdir(parents=True)
        (root / "train" / "face" / "face_000.png").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(faces, "_write_folder", crash)
    with pytest.raises(KeyboardInterrupt):
        faces.materialize_faces()
    assert (dest / faces.STAMP).read_text() == stamp and not victim.exists()  # untouched, still damaged
    assert sorted(p.name for p in dest.parent.iterdir()) == ["faces", "wheels"]  # no temporaries


def test_command_line_entry_point(home, tmp_path, capsys, monkeypatch):
    dest = tmp_path / "elsewhere"
    assert faces.main(["--dest", str(dest)]) == 0
    assert capsys.readouterr().out.strip() == str(dest) and faces.is_complete(dest)
    monkeypatch.setattr(faces, "installed_file", lambda: None)
    for whl in (home / "wheels").iterdir():
        whl.write_bytes(b"broken")
    assert faces.main(["--dest", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgeport: error: ") and "not a readable wheel" in err and "\n" not in err


# -- image models use it by default ----------------------------------------------------------------
def test_without_data_dir_and_without_the_folder_the_error_says_make_data(home, tmp_path, capsys):
    assert main(["train", "image_cnn", "--out", str(tmp_path / "art")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(home / "faces") in err and "does not exist" in err
    assert "make data" in err and "--data-dir" in err


def test_an_incomplete_default_folder_is_refused_not_used(home, tmp_path, capsys):
    dest = faces.materialize_faces()
    next((dest / "train" / "face").iterdir()).unlink()
    assert main(["train", "mobilenet_v2_transfer", "--out", str(tmp_path / "art")]) == 2
    err = capsys.readouterr().err
    assert "incomplete or changed" in err and "make data" in err


def test_image_cnn_trains_on_the_default_faces_folder(home, tmp_path, capsys):
    from edgeport.training.train import train

    dest = faces.materialize_faces()
    rec = train("image_cnn", epochs=1, batch_size=32, input_size=32, out=tmp_path / "art", verbose=0)
    out = capsys.readouterr().out
    assert f"no --data-dir given: training on the default image folder {dest}" in out
    assert "160 train / 40 validation" in out
    assert rec["data_source"] == str(dest) and rec["data_default"] is True
    assert rec["labels"] == ["face", "non_face"]
    saved = json.loads((tmp_path / "art" / "image_cnn" / "training.json").read_text())
    assert saved["data_default"] is True and saved["data_source"] == str(dest)

# The real folder: test_faces_models.py trains both image models on it (slow).
