"""A Pi bundle installs itself: it carries edgeport's wheel and install.sh, whose venv (this machine's
plain python3, no TensorFlow, no edgeport, no package index: the bundle's wheel and a local wheelhouse
only) proves the bundle with `edgeport verify --bundle`. The --offline wheelhouse is 64-bit Pi OS's."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgeport.benchmarks.devices import pi_venv
from edgeport.cli import main
from edgeport.errors import EdgeportError
from edgeport.export.pipeline import export_model
from edgeport.export.targets import bundle_model, rpi_install
from edgeport.names import data_home

PLAIN_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def bundle(tiny_models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("install")
    rng = np.random.default_rng(0)
    np.savez(tmp / "test.npz", x_test=rng.integers(0, 256, (80, 28, 28, 1)).astype(np.uint8),
             y_test=rng.integers(0, 10, 80))
    assert export_model(str(tiny_models["mlp"]), formats=["tflite_fp32"], out=tmp / "out").ok
    assert main(["verify", "tiny_mlp", "--out", str(tmp / "out"), "--data-npz", str(tmp / "test.npz")]) == 0
    result = bundle_model("tiny_mlp", target="rpi", out=tmp / "out", dist=tmp / "dist", formats=["tflite_fp32"],
                          samples=40)
    return result


def test_the_bundle_carries_its_wheel_and_installer(bundle):
    files = set(bundle.files)
    wheels = [f for f in files if f.startswith("wheels/edgeport-") and f.endswith(".whl")]
    assert len(wheels) == 1 and "install.sh" in files and "wheels/OFFLINE" not in files
    readme = (bundle.folder / "README.md").read_text()
    first = next(line for line in readme.splitlines() if line and not line.startswith(("#", "`", "Proved", "Rasp")))
    assert first.startswith(f"tar xzf {bundle.archive.name} && sh {bundle.folder.name}/install.sh"), first
    assert "pip install 'edgeport" not in readme  # edgeport is on no index
    with tarfile.open(bundle.archive) as tar:
        assert f"{bundle.folder.name}/install.sh" in tar.getnames()


def test_offline_is_for_the_rpi_bundle_and_resolves_the_pi_os_engines(bundle):
    with pytest.raises(EdgeportError, match="--offline is for rpi"):
        bundle_model("tiny_mlp", target="mcu", offline=True)
    whl = next(bundle.folder.glob("wheels/edgeport-*.whl"))
    reqs = {r.name: str(r.specifier) for r in
            pi_venv.target_requirements(pi_venv.wheel_metadata(whl), "pi", rpi_install.PI_OS_64)}
    assert {"ai-edge-litert", "onnxruntime", "numpy"} <= set(reqs) and "tflite-runtime" not in reqs
    cmd = pi_venv.download_command(list(pi_venv.target_requirements(pi_venv.wheel_metadata(whl), "pi",
                                                                    rpi_install.PI_OS_64)), rpi_install.PI_OS_64,
                                   Path("x"), deps=True)
    assert "--only-binary=:all:" in cmd and "manylinux_2_36_aarch64" in cmd and "3.11" in cmd


def _host_wheelhouse(whl: Path) -> Path:
    """This machine's wheels of edgeport[pi] (pip download, once per requirement list: PyPI here)."""
    reqs = sorted(str(r) for r in pi_venv.target_requirements(pi_venv.wheel_metadata(whl), "pi", _here()))
    dest = data_home() / "devices" / "host-wheels"
    stamp = dest / "REQUIREMENTS"
    if not stamp.is_file() or stamp.read_text() != "\n".join(reqs):
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                        "--only-binary=:all:", "-d", str(dest), *reqs], check=True, timeout=900)
        stamp.write_text("\n".join(reqs))
    return dest


def _here() -> dict[str, str]:
    out = subprocess.run([PLAIN_PYTHON, "-I", "-c", pi_venv.MARKER_ENV], capture_output=True, text=True, check=True)
    import json

    return json.loads(out.stdout)


@pytest.mark.skipif(not os.access(PLAIN_PYTHON, os.X_OK), reason=f"no {PLAIN_PYTHON}")
def test_install_sh_from_the_bundle_alone_proves_it(bundle, tmp_path):
    """~20 s: install.sh's venv (NumPy, LiteRT, ONNX Runtime from local wheels) and verify --bundle; the first
    run downloads this machine's wheels once."""
    whl = next(bundle.folder.glob("wheels/edgeport-*.whl"))
    house = _host_wheelhouse(whl)
    shutil.copy(bundle.archive, tmp_path)  # the Pi's folder: the archive only
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PIP_INDEX_URL")}
    env["PYTHON"] = PLAIN_PYTHON
    readme = (bundle.folder / "README.md").read_text()
    first = next(line for line in readme.splitlines() if line.startswith("tar xzf")).split("#")[0].strip()
    start = time.monotonic()
    done = subprocess.run(f"{first} {tmp_path / 'venv'} --no-index --find-links {house}", shell=True, cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=900)
    took = time.monotonic() - start
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    edgeport = tmp_path / "venv" / "bin" / "edgeport"
    no_tf = subprocess.run([str(tmp_path / "venv/bin/python"), "-c", "import importlib.util as u, edgeport; "
                            "print(u.find_spec('tensorflow') is None, edgeport.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert no_tf.stdout.startswith("True " + str(tmp_path / "venv")), no_tf.stdout + no_tf.stderr
    proved = subprocess.run([str(edgeport), "verify", "--bundle", bundle.archive.name], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert proved.returncode == 0, proved.stdout[-3000:] + proved.stderr[-3000:]
    assert "all artifacts pass their gates" in proved.stdout
    bench = subprocess.run([str(edgeport), "bench", "--bundle", bundle.archive.name, "--seconds", "0.2",
                            "--threads", "1"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert bench.returncode == 0, bench.stdout[-3000:] + bench.stderr[-3000:]
    import json

    measured = json.loads((tmp_path / "tiny_mlp-rpi.bench.json").read_text())
    assert "tensorflow" not in measured["device"]["versions"] and measured["models"]["tiny_mlp"]["rows"]
    print(f"install.sh from the bundle alone: {took:.1f} s", file=sys.stderr)


def _fake_python(tmp_path: Path, answer: str) -> str:
    """A python3 whose answer to install.sh's board question is ``answer`` (another machine, an old Python)."""
    path = tmp_path / "python3"
    path.write_text(f"#!/bin/sh\ncase \"$*\" in *platform.machine*) echo '{answer}';; "
                    f"*version_info\\ \\<*) exit {int(answer.endswith('3.9'))};; *) exit 0;; esac\n")
    path.chmod(0o755)
    return str(path)


def test_install_sh_says_what_cannot_work_before_making_anything(bundle, tmp_path):
    for answer, said in (("armv6l 3.11", "armv6l (Pi Zero/1): no LiteRT or ONNX Runtime wheel"),
                         ("aarch64 3.9", "too old: edgeport needs Python 3.10 or newer")):
        env = {**os.environ, "PYTHON": _fake_python(tmp_path, answer)}
        done = subprocess.run(["sh", str(bundle.folder / "install.sh"), str(tmp_path / "venv")], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and said in done.stderr, done.stderr
        assert not (tmp_path / "venv").exists()


def test_an_installed_edgeport_remakes_its_own_wheel(bundle, tmp_path):
    """edgeport installed from its wheel (not editable: no source tree) still puts its wheel in a Pi bundle:
    re-made from its RECORD, it installs the same files."""
    whl = next(bundle.folder.glob("wheels/edgeport-*.whl"))
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check", "--target"]
    subprocess.run([*pip, str(tmp_path / "site"), str(whl)], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "EDGEPORT_DATA_HOME": str(tmp_path / "data")}
    made = subprocess.run([sys.executable, "-c", "import edgeport, edgeport.devices.remote as r; "
                           "print(edgeport.__file__); print(r.wheel())"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, check=True).stdout.split()
    assert made[0].startswith(str(tmp_path / "site")) and made[1].startswith(str(tmp_path / "data")), made
    listed = zipfile.ZipFile(made[1]).namelist()
    assert "edgeport/cli.py" in listed and "edgeport-0.1.0.dist-info/entry_points.txt" in listed
    assert not [n for n in listed if n.startswith(("bin/", "../")) or "__pycache__" in n]
    subprocess.run([*pip, str(tmp_path / "again"), made[1]], check=True, capture_output=True)
    assert (tmp_path / "again/edgeport/cli.py").read_bytes() == (tmp_path / "site/edgeport/cli.py").read_bytes()
    assert (tmp_path / "again/bin/edgeport").is_file()
