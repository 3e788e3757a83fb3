"""One home for the file names edgeport writes and reads, and for where its data lives.

Every module that names one of these files imports it from here; nothing spells them again.
Imports nothing heavy (runtimes on a Pi use it too).
"""
from __future__ import annotations

import os
from pathlib import Path

MANIFEST_FILE = "manifest.json"  # a model directory's artifact list (edgeport.manifest)
VERIFY_FILE = "verify.json"  # the last `edgeport verify` of a model directory
LABELS_FILE = "labels.txt"  # class names, one a line, beside the artifacts and in bundles
REFERENCE_FILE = "reference_outputs.npz"  # cached reference outputs (edgeport.reference_set)
TRAINING_FILE = "training.json"  # what `edgeport train` did (edgeport.training_record)
BUNDLE_FILE = "bundle.json"  # a deploy bundle's file list with sha256 (edgeport.bundle)
DATA_HOME_ENV = "EDGEPORT_DATA_HOME"


def data_home() -> Path:
    """Where `make data` and the checks keep downloaded packages and caches:
    ``$EDGEPORT_DATA_HOME``, default ``~/.cache/edgeport``."""
    return Path(os.environ.get(DATA_HOME_ENV) or Path.home() / ".cache" / "edgeport")
