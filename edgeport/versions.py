"""Installed package versions from package metadata (no imports of the packages themselves)."""
from __future__ import annotations

import platform
from importlib import metadata
from typing import Iterable, Mapping


def dist_version(*dists: str) -> str | None:
    """The version of the first of ``dists`` that is installed (e.g. tensorflow, tensorflow-cpu)."""
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def package_versions(packages: Iterable[str] | Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """``{"python": ..., name: version}`` for each installed package; a mapping gives each name the
    distributions that may provide it (first installed wins)."""
    items = packages.items() if isinstance(packages, Mapping) else ((p, (p,)) for p in packages)
    out = {"python": platform.python_version()}
    for name, dists in items:
        if (v := dist_version(*dists)) is not None:
            out[name] = v
    return out
