"""Where a failing int8 model loses its accuracy: its int8 weights or its int8 activations.

The int16-activation format keeps the very int8 weights of the full-integer one but carries activations in 16 bits.
When it loses about as much as int8, the 8-bit activations are not the problem: the int8 weights
are, and no activation width helps (the signature of a kernel whose output channel holds a few huge
values: per-channel int8 rounds the rest of that channel to zero). When int16x8 recovers most of it,
the 8-bit activation ranges are the limit. The dynamic-range format (int8 weights, activations quantized
on the fly, small kernels left float) is shown for context. Either way ``edgeport fix`` keeps the
worst layers in float.
"""
from __future__ import annotations

from typing import Any

from edgeport.export import registry

SHARE = 0.5


def _role(fmt: str) -> str | None:
    """Which part of the budget a format measures: full int8, int16 activations, int8 weights only."""
    if not registry.known(fmt):
        return None
    i = registry.info(fmt)
    if i.weights != "int8" or i.proof is not registry.Proof.RUN:
        return None
    return {"int8": "full", "int16": "act16", "float32": "weights"}.get(i.activations)


def error_budget(results: list[Any]) -> list[str]:
    """One-line diagnoses for each failing full-integer int8 artifact, from its family's siblings
    (int8 weights with int16 activations; int8 weights with float activations) run in the same verify."""
    by_family: dict[tuple[str, str], dict[str, Any]] = {}
    for r in results:
        if (role := _role(r.format)) is not None:
            by_family.setdefault((registry.info(r.format).family, r.runtime), {})[role] = r
    lines = []
    for (family, _), roles in by_family.items():
        exists = {_role(f) for f in registry.of_family(family)}
        if not {"full", "weights", "act16"} <= exists:
            continue  # the family has no siblings to split the budget with
        if (line := _budget(roles)) is not None:
            lines.append(line)
    return lines


def _budget(roles: dict[str, Any]) -> str | None:
    int8 = roles.get("full")
    kl = {role: r.figures.get("kl_divergence") for role, r in roles.items()}
    if int8 is None or int8.status == "pass" or not kl.get("full"):
        return None
    full, weights, act16 = kl["full"], kl.get("weights"), kl.get("act16")
    names = {role: r.format for role, r in roles.items()}
    if weights is None or act16 is None:
        return (f"int8 error budget for {int8.format}: export its int16-activation and dynamic-range siblings too "
                "to tell whether the weights or the activations lose it")
    figures = (f"KL against the float model: full int8 ({names['full']}) {full:.3g}, int8 weights + int16 "
               f"activations ({names['act16']}) {act16:.3g}, dynamic range ({names['weights']}) {weights:.3g}")
    if act16 >= SHARE * full:
        return (f"int8 error budget: the int8 WEIGHTS lose it, not the activations ({figures}): 16-bit activations do "
                "not help, and int16x8 keeps the same int8 weights (dynamic range leaves kernels under 1,024 "
                "values in float, so it may pass); keep the worst layers in float: edgeport fix")
    return (f"int8 error budget: the 8-bit ACTIVATIONS lose it ({figures}): int16 activations recover it; "
            "calibrate better or keep the worst layers in float: edgeport fix")
