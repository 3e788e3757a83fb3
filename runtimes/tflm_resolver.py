"""The C++ op resolver of a TFLite Micro model: the ``tflite::MicroMutableOpResolver`` method of each
builtin op, and the code that registers exactly a model's ops (pure Python, no engine needed).
"""
from __future__ import annotations

from typing import Sequence

from edgeport.errors import EdgeportError

#: Builtin ops whose MicroMutableOpResolver method the naming rule below does not produce.
RESOLVER_EXCEPTIONS = {"CUMSUM": "AddCumSum", "PADV2": "AddPadV2"}


def resolver_method(op: str) -> str:
    """The ``tflite::MicroMutableOpResolver`` method that registers builtin ``op``:
    ``CONV_2D`` -> ``AddConv2D``, ``FULLY_CONNECTED`` -> ``AddFullyConnected`` (TFLM's own
    generator rule: split on ``_``, capitalise alphabetic parts, keep digit-led parts upper)."""
    if op in RESOLVER_EXCEPTIONS:
        return RESOLVER_EXCEPTIONS[op]
    parts = [p.upper() if p[:1].isdigit() else p[:1].upper() + p[1:].lower() for p in op.split("_") if p]
    return "Add" + "".join(parts).replace("Lstm", "LSTM").replace("BatchMatmul", "BatchMatMul")


def micro_op_resolver(ops: Sequence[str], *, function: str = "RegisterOps") -> str:
    """C++ that registers exactly ``ops`` (builtin names, as ``builtin_ops`` lists them):

        static tflite::MicroMutableOpResolver<kEdgeportOpCount> resolver;
        if (RegisterOps(resolver) != kTfLiteOk) { ... }

    Custom ops (``CUSTOM:name``) refuse: TFLM has no builtin kernel for them."""
    custom = [op for op in ops if op.startswith("CUSTOM:")]
    if custom:
        raise EdgeportError(f"the model uses custom ops {custom}: TFLite Micro has no kernel for them; "
                            "register your own with resolver.AddCustom(...)")
    ops = sorted(set(ops))
    lines = [f"constexpr unsigned int kEdgeportOpCount = {len(ops)};",
             "using EdgeportOpResolver = tflite::MicroMutableOpResolver<kEdgeportOpCount>;",
             "",
             "// Registers exactly the builtin ops the model uses; kTfLiteError if one does not fit.",
             f"inline TfLiteStatus {function}(EdgeportOpResolver& resolver) {{"]
    lines += [f"  if (resolver.{resolver_method(op)}() != kTfLiteOk) return kTfLiteError;  // {op}" for op in ops]
    lines += ["  return kTfLiteOk;", "}"]
    return "\n".join(lines) + "\n"
