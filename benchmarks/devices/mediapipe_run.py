"""`make mobile-check`'s two engines on the same PNG files: MediaPipe Tasks' ImageClassifier
(``mediapipe==1.2.2``) in a child process of its own virtualenv (``.venv-mediapipe``, created and
filled here when missing; the child imports mediapipe and numpy only), and `edgeport run`'s own code
in this process; and the RGB PNG files they both read.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import EdgeportError

MEDIAPIPE = "mediapipe==1.2.2"
VENV = Path(".venv-mediapipe")
PIP_TIMEOUT = 1800.0

#: Runs inside .venv-mediapipe: `python -c MP_SCRIPT JOB.json`. Imports mediapipe and numpy only.
MP_SCRIPT = r'''
import json, sys, time
import numpy as np
import mediapipe as mp
from mediapipe.tasks import python as mp_tasks
from mediapipe.tasks.python import vision

job = json.load(open(sys.argv[1]))
start = time.perf_counter()
options = vision.ImageClassifierOptions(
    base_options=mp_tasks.BaseOptions(model_asset_path=job["model"]), max_results=-1)
classifier = vision.ImageClassifier.create_from_options(options)
create_s = time.perf_counter() - start
rows, seconds, formats = [], [], set()
try:
    for path in job["images"]:
        image = mp.Image.create_from_file(path)
        formats.add(f"{mp.ImageFormat(image.image_format).name} {image.width}x{image.height}x{image.channels}")
        t = time.perf_counter()
        result = classifier.classify(image)
        seconds.append(time.perf_counter() - t)
        categories = result.classifications[0].categories
        scores = np.full(job["classes"], np.nan)
        for c in categories:
            scores[c.index] = c.score
        rows.append({"index": int(categories[0].index), "name": categories[0].category_name,
                     "categories": len(categories), "scores": [float(s) for s in scores]})
finally:
    classifier.close()  # an open classifier can hang the next one in this process
with open(job["result"], "w") as fh:
    json.dump({"mediapipe": mp.__version__, "numpy": np.__version__, "create_s": create_s,
               "classify_s": seconds, "image_formats": sorted(formats), "rows": rows}, fh)
'''


class CheckError(EdgeportError):
    """A check that could not run: counted as a failure, with why."""


# -- the MediaPipe side ------------------------------------------------------------------------------

def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _mediapipe_version(python: Path) -> str | None:
    if not python.is_file():
        return None
    try:
        run = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('mediapipe'))"],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return run.stdout.strip() if run.returncode == 0 else None


def ensure_venv(venv: Path = VENV, *, say=print) -> tuple[Path, bool]:
    """(python of a virtualenv holding mediapipe==1.2.2, whether it was installed now)."""
    venv = Path(venv).absolute()  # the children run in other folders
    python = venv_python(venv)
    wanted = MEDIAPIPE.split("==")[1]
    if _mediapipe_version(python) == wanted:
        return python, False
    if not python.is_file():
        say(f"mediapipe-check: creating {venv} (a virtualenv of its own: MediaPipe pulls OpenCV and matplotlib)")
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        if made.returncode != 0:
            raise CheckError(f"could not create {venv}: {_tail(made)} (apt-get install -y python3-venv)")
    say(f"mediapipe-check: pip install {MEDIAPIPE} into {venv} (downloads ~170 MB of wheels from PyPI: "
        "opencv-contrib-python 82 MB, mediapipe 43 MB, numpy 17 MB, matplotlib 10 MB, pillow, fonttools, "
        "absl-py, flatbuffers, sounddevice; ~540 MB installed)")
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", MEDIAPIPE]
    try:
        pip = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise CheckError(f"pip install {MEDIAPIPE} into {venv} took over {PIP_TIMEOUT:g} s; killed") from None
    if pip.returncode != 0:
        raise CheckError(f"pip install {MEDIAPIPE} into {venv} failed: {_tail(pip)}")
    if (got := _mediapipe_version(python)) != wanted:
        raise CheckError(f"{venv} has mediapipe {got} after installing {MEDIAPIPE}")
    return python, True


def _tail(proc: subprocess.CompletedProcess, lines: int = 6) -> str:
    text = ((proc.stderr or "") + (proc.stdout or "")).strip().splitlines()
    return " | ".join(text[-lines:]) or f"exit {proc.returncode}"


def run_mediapipe(python: Path, model: Path, images: list[Path], classes: int, work: Path,
                  timeout: float) -> dict[str, Any]:
    """MediaPipe's ImageClassifier on every image, in a child process of its own."""
    job = {"model": str(model.resolve()), "images": [str(p) for p in images], "classes": classes,
           "result": str(work / "mediapipe.json")}
    (work / "job.json").write_text(json.dumps(job))
    start = time.perf_counter()
    try:
        proc = subprocess.run([str(python), "-c", MP_SCRIPT, str(work / "job.json")], capture_output=True,
                              text=True, timeout=timeout, cwd=work, env={**os.environ, "GLOG_minloglevel": "2"})
    except subprocess.TimeoutExpired:
        raise CheckError(f"{model.name}: MediaPipe did not finish {len(images)} images in {timeout:g} s (killed); "
                         "raise --timeout if this machine is busy") from None
    except OSError as exc:
        raise CheckError(f"{model.name}: cannot start {python}: {exc}") from None
    if proc.returncode != 0 or not (work / "mediapipe.json").is_file():
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        raise CheckError(f"{model.name}: MediaPipe failed ({how}): {_tail(proc)}")
    out = json.loads((work / "mediapipe.json").read_text())
    out["process_s"] = time.perf_counter() - start
    return out


# -- the edgeport side -------------------------------------------------------------------------------

def run_edgeport(artifact: Path, images: list[Path], classes: int) -> dict[str, Any]:
    """`edgeport run ARTIFACT IMAGES... --json --top-k N` in this process, its JSON document."""
    from edgeport.runtimes.cli import run_artifact

    buf = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(buf):
        run_artifact(str(artifact), [str(p) for p in images], top_k=classes, json=True)
    doc = json.loads(buf.getvalue())
    doc["seconds"] = time.perf_counter() - start
    return doc


def write_pngs(x: np.ndarray, folder: Path) -> list[Path]:
    """uint8 images (N, H, W, 1 or 3) as RGB PNG files."""
    from PIL import Image

    from edgeport.export.targets.mobile_model import camera_form

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(camera_form(x)):
        path = folder / f"{i:05d}.png"
        Image.fromarray(img, "RGB").save(path)
        paths.append(path)
    return paths
