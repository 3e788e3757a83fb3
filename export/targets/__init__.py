"""Deployment targets: one module per target that packages a model's artifacts into what that
target's users expect (``edgeport bundle MODEL --target T``): a Raspberry Pi bundle with a
reference set, Android and iOS mobile models with standard TFLite Metadata, a microcontroller's
fixed-batch int8 model as C arrays. Nothing heavy is imported here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from edgeport.errors import EdgeportError
from edgeport.lazy import lookup

TARGETS: dict[str, str] = {
    "rpi": "edgeport.export.targets.rpi:build",
    "android": "edgeport.export.targets.mobile:build_android",
    "ios": "edgeport.export.targets.mobile:build_ios",
    "mcu": "edgeport.export.targets.mcu:build",
    "web": "edgeport.export.targets.web:build",
}


def bundle_model(model: str, *, target: Annotated[str, TARGETS], out: Path = Path("artifacts"),
                 dist: Path = Path("dist"), samples: int = 300, seed: int = 0, data_dir: str | None = None,
                 formats: list[str] | None = None, skip_failing: bool = False, offline: bool = False):
    """Package a verified model for a device: dist/MODEL-TARGET.tar.gz and its folder.

    model: model name or directory under --out (exported and verified first)
    target: the device to package for
    out: artifacts directory
    dist: where bundles go
    samples: real test inputs in the bundle's reference set (rpi) or in the proofs (the other targets)
    seed: seed that picks those inputs
    data_dir: data directory of the model's dataset
    formats: ship only these of the target's formats (what is left out is said in the bundle's README.md and bundle.json)
    skip_failing: leave out the formats that did not pass the last verify (said, with why) instead of refusing the bundle
    offline: also pack the board's wheels (rpi: 64-bit Pi OS, Python 3.11), so install.sh needs no internet
    """  # noqa: E501 - edgeport.cli reads each parameter's help from its one line
    import inspect

    from edgeport.export.targets.bundle import BundleBuilder, Selection
    from edgeport.manifest import find_model_dir

    build = lookup(TARGETS, "bundle target", target)
    selection = Selection(tuple(formats or ()), skip_failing)
    if selection and "selection" not in inspect.signature(build).parameters:
        raise EdgeportError(f"--formats/--skip-failing: a {target} bundle is made and proved from fixed artifacts "
                            "and ships them all; choosing formats is for the targets that ship artifacts as they "
                            f"are ({', '.join(t for t in TARGETS if _selects(t))})")
    if offline and "offline" not in inspect.signature(build).parameters:
        raise EdgeportError(f"--offline: a {target} bundle installs nothing on its device; --offline is for "
                            f"{', '.join(t for t in TARGETS if _selects(t, 'offline'))}")
    model_dir = _model_dir(model, out, find_model_dir)
    builder = BundleBuilder(model_dir.name, target, Path(dist))
    try:
        build(model_dir, builder, samples=samples, seed=seed, data_dir=data_dir,
              **({"selection": selection} if selection else {}), **({"offline": True} if offline else {}))
        return builder.finish()
    except BaseException:
        builder.abort()
        raise


def _selects(target: str, option: str = "selection") -> bool:
    """Whether a target's build takes ``option`` (a :class:`~edgeport.export.targets.bundle.Selection`, offline)."""
    import inspect

    return option in inspect.signature(lookup(TARGETS, "bundle target", target)).parameters


def _model_dir(model: str, out: Path, find_model_dir) -> Path:
    """MODEL's directory. A source model file is told to go through export first; a bare artifact
    (.tflite, .onnx, .ort) is refused with what works for it: `edgeport export` takes a source model,
    not an artifact."""
    from edgeport import model_files

    p = Path(model)
    if (Path(out) / model).is_dir() or not (p.is_file() and model_files.is_model_file(p)):
        return find_model_dir(model, out)
    if model_files.model_file_kind(p) in model_files.SOURCE_KINDS:
        raise EdgeportError(f"{model}: a source model; bundle its model directory: edgeport export {model}, "
                            f"edgeport verify {p.stem}, then edgeport bundle {p.stem}")
    raise EdgeportError(f"{model}: a bare artifact; a bundle is made from a model directory that edgeport "
                        "exported from a source model and verified (edgeport export MODEL.keras|.h5|SAVEDMODEL_DIR, "
                        f"edgeport verify, edgeport bundle). This file as it is: edgeport verify {model} --reference "
                        "SOURCE --data-npz DATA.npz proves it, edgeport run and edgeport bench use it")
