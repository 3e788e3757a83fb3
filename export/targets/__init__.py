"""Deployment targets: one module per target that packages a model's artifacts into what that
target's users expect (``edgeport bundle MODEL --target T``): a Raspberry Pi bundle with a
reference set, Android and iOS mobile models with standard TFLite Metadata, a microcontroller's
fixed-batch int8 model as C arrays. Nothing heavy is imported here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from edgeport.lazy import lookup

TARGETS: dict[str, str] = {
    "rpi": "edgeport.export.targets.rpi:build",
    "android": "edgeport.export.targets.mobile:build_android",
    "ios": "edgeport.export.targets.mobile:build_ios",
    "mcu": "edgeport.export.targets.mcu:build",
    "web": "edgeport.export.targets.web:build",
}


def bundle_model(model: str, *, target: Annotated[str, TARGETS], out: Path = Path("artifacts"),
                 dist: Path = Path("dist"), samples: int = 300, seed: int = 0, data_dir: str | None = None):
    """Package a verified model for a device: dist/MODEL-TARGET.tar.gz and its folder.

    model: model name or directory under --out (exported and verified first)
    target: the device to package for
    out: artifacts directory
    dist: where bundles go
    samples: real test inputs in the bundle's reference set (rpi) or in the proofs (the other targets)
    seed: seed that picks those inputs
    data_dir: data directory of the model's dataset
    """
    from edgeport.export.targets.bundle import BundleBuilder
    from edgeport.manifest import find_model_dir

    build = lookup(TARGETS, "bundle target", target)
    model_dir = find_model_dir(model, out)
    builder = BundleBuilder(model_dir.name, target, Path(dist))
    try:
        build(model_dir, builder, samples=samples, seed=seed, data_dir=data_dir)
        return builder.finish()
    except BaseException:
        builder.abort()
        raise
