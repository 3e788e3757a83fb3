"""What the microcontroller and mobile targets share: the checks on a verified artifact before a
bundle is made, the real test set `edgeport verify` used and the seeded draw of proof inputs from
it (batch-1 models are made by :mod:`edgeport.export.fixed_batch`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np

from edgeport.manifest import check_fresh, check_integrity

# -- the verified artifacts and their test set ------------------------------------------------------

def check_artifacts(model_dir: Path, manifest: dict[str, Any], entries: dict[str, dict[str, Any]],
                    formats: Iterable[str], source_sha: str) -> None:
    """Each of ``formats`` intact (its sha256) and exported from the source as it is now."""
    for fmt in formats:
        check_integrity(model_dir, entries[fmt])
        check_fresh(manifest, fmt, entries[fmt], source_sha, f"edgeport export {model_dir} --formats {fmt}")


def verified_testset(model_dir: Path, manifest: dict[str, Any], verify: dict[str, Any], data_dir: str | None):
    """The real test set the last `edgeport verify` ran on (``verify.json``'s ``data``: a user's .npz
    or the model's dataset)."""
    from edgeport.training.testset import load_testset, npz_testset

    data = verify.get("data") or {}
    if data.get("dataset") == "npz":
        return npz_testset(data["source"], labels=tuple(manifest.get("labels") or ()), task=manifest.get("task"))
    return load_testset(model_dir, manifest, data_dir=data_dir)


def seeded_indices(n: int, samples: int, seed: int) -> np.ndarray:
    """``samples`` of ``n`` test inputs (all of them if fewer), drawn with ``seed``, sorted: the same
    model, samples and seed always give the same proof inputs."""
    return np.sort(np.random.default_rng(seed).choice(n, size=min(samples, n), replace=False))


def take_rows(x: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` of one input array or of each array of a dict of inputs."""
    return x[idx] if isinstance(x, np.ndarray) else {k: v[idx] for k, v in x.items()}
