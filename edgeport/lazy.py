"""Lazy registries: names map to "module:attr" strings imported on first use."""
from __future__ import annotations

import importlib
from typing import Any, Mapping

from edgeport.errors import UnknownNameError


def resolve(target: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute."""
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def lookup(registry: Mapping[str, str], kind: str, name: str) -> Any:
    """Resolve ``name`` in ``registry`` or raise an error that lists the valid names."""
    if name not in registry:
        raise UnknownNameError(kind, name, list(registry))
    return resolve(registry[name])
