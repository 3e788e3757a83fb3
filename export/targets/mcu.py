"""Microcontroller bundle (TensorFlow Lite Micro): a fixed batch-1, full-integer int8 model, its C
array, an op resolver with exactly its ops, the tensor arena it needs, and a proof.

The model is converted again from the source model (``model.keras``, ``model.h5`` or the source
SavedModel) with a batch-1 input signature, so that no SHAPE / STRIDED_SLICE / PACK ops (the
dynamic batch's bookkeeping) reach the firmware, calibrated on the very samples the verified
``tflite_int8`` artifact was calibrated on (the manifest's record, rebuilt exactly). int8 inputs
and outputs (``IO_TYPE``).

The proof, at bundle time: the batch-1 model runs in TFLite Micro (its Python interpreter, the
same C++ kernels and memory planner firmware links, in a child process, with exactly the arena
measured) and in LiteRT without default delegates on real test inputs; every output must be
identical or one quantization step apart, else the bundle fails. Top-1 agreement with the Keras
model is reported for information. Only a model whose ``tflite_int8`` passed `edgeport verify`
is bundled.
"""
from __future__ import annotations

import hashlib
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgeport import __version__
from edgeport.errors import EdgeportError, ExportError
from edgeport.export import c_array
from edgeport.export.registry import INFO, Format
from edgeport.export.targets.bundle import BundleBuilder
from edgeport.export.targets.bundle import VERIFY_FILE, require_verified
from edgeport.files import sha256_file
from edgeport.manifest import check_fresh, check_integrity, effective_entries, load_manifest

MODEL_FILE = "model_int8_b1.tflite"
SOURCE_FILE = INFO[Format.C_ARRAY.value].file  # model_int8_data.c
HEADER_FILE = c_array.HEADER  # model_int8_data.h
RESOLVER_FILE = "micro_op_resolver.h"
PROOF_FILE = "tflm_proof.json"
IO_TYPE = "int8"
#: Ops of a free batch dimension: a microcontroller model must not carry them.
FORBIDDEN_OPS = ("SHAPE", "STRIDED_SLICE", "PACK")
MIN_SAMPLES = 200
#: TFLite Micro against LiteRT (no delegates): at most this many quantization steps apart.
MAX_STEPS = 1
METADATA_FORMAT = "tflite_int8_b1"


# -- the batch-1 model --------------------------------------------------------------------------

def _fixed_keras(path: Path, kind: str, samples: dict[str, np.ndarray], dest: Path) -> None:
    import tensorflow as tf

    from edgeport.export.source import load_keras

    model = load_keras(path, kind=kind)
    names = [t.name for t in model.inputs]
    if sorted(names) != sorted(samples):
        raise ExportError(f"{path}: the model's inputs {names} are not the calibration record's {list(samples)}")
    specs = [tf.TensorSpec((1, *samples[n].shape[1:]), tf.float32, name=n) for n in names]
    model.export(str(dest), format="tf_saved_model", verbose=False,
                 input_signature=[specs[0]] if len(specs) == 1 else [specs])


def _fixed_saved_model(path: Path, dest: Path) -> None:
    """The source SavedModel's serving signature, re-traced with a batch of 1."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures["serving_default"]
    specs = fn.structured_input_signature[1]
    names = sorted(specs)
    free = [n for n in names if None in specs[n].shape.as_list()[1:]]
    if free:
        raise ExportError(f"{path}: inputs {free} have free dimensions besides the batch; a microcontroller "
                          "model needs every dimension fixed")
    fixed = [tf.TensorSpec((1, *specs[n].shape.as_list()[1:]), specs[n].dtype, name=n) for n in names]
    serve = tf.function(lambda *args: fn(**dict(zip(names, args))), input_signature=fixed)
    module = tf.Module()
    module.source = loaded  # keeps the variables reachable from the new SavedModel
    tf.saved_model.save(module, str(dest), signatures={"serving_default": serve.get_concrete_function()})


def convert_batch1(path: Path, kind: str, samples: dict[str, np.ndarray], *, io_type: str = IO_TYPE) -> bytes:
    """A full-integer TFLite model with a fixed batch of 1 from a ``.keras``/``.h5`` file or a
    SavedModel (``kind``: keras, h5, saved_model), calibrated on ``samples`` (by input name, one
    sample per row), with ``io_type`` (int8 or uint8) inputs and outputs."""
    import tensorflow as tf

    if io_type not in ("int8", "uint8"):
        raise ExportError(f"a microcontroller model has int8 or uint8 inputs and outputs, not {io_type!r}")
    with tempfile.TemporaryDirectory(prefix="edgeport-mcu-") as tmp:
        saved = Path(tmp) / "saved_model_b1"
        if kind == "saved_model":
            _fixed_saved_model(path, saved)
        else:
            _fixed_keras(path, kind, samples, saved)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        count = len(next(iter(samples.values())))
        feed = [{k: v[i:i + 1] for k, v in samples.items()} for i in range(count)]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: iter(feed)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = getattr(tf, io_type)
        with warnings.catch_warnings():  # TF's calibrator builds a deprecated tf.lite.Interpreter itself
            warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
            try:
                return converter.convert()
            except Exception as exc:
                from edgeport.export.context import cause_line

                raise ExportError(f"{path}: the full-integer batch-1 conversion failed: {cause_line(exc)}") from None


# -- inputs: the source, its calibration, the test set ---------------------------------------------

def _source(model_dir: Path, manifest: dict[str, Any]):
    from edgeport.export.source import installed

    src = installed(model_dir)
    recorded = manifest.get("source") or {}
    if src is None:
        raise EdgeportError(f"{model_dir.name}: no source model (model.keras, model.h5 or source_saved_model/) in "
                            f"{model_dir}: the microcontroller model is converted from it")
    if recorded.get("sha256") and sha256_file(src.path) != recorded["sha256"]:
        raise EdgeportError(f"{src.path}: changed since export; re-export and verify: "
                            f"`edgeport export {model_dir}` then `edgeport verify {model_dir}`")
    return src


def _calibration(model_dir: Path, entry: dict[str, Any]) -> dict[str, np.ndarray]:
    from edgeport.export import calibration

    if entry.get("keep_float") or entry.get("kept_float_to_load"):
        kept = entry.get("keep_float") or entry.get("kept_float_to_load")
        raise EdgeportError(f"{model_dir.name}: the verified int8 artifact keeps {kept} in float; a microcontroller "
                            "model must be full integer (TFLite Micro runs no mixed float/int8 graph here)")
    record = entry.get("calibration")
    if not record:
        raise EdgeportError(f"{model_dir.name}: the manifest's tflite_int8 entry records no calibration "
                            f"(exported by an older edgeport); re-export: `edgeport export {model_dir} "
                            "--formats tflite_int8` and verify")
    return calibration.rebuild(record)


def _testset(model_dir: Path, manifest: dict[str, Any], verify: dict[str, Any], data_dir: str | None):
    from edgeport.training.testset import load_testset, npz_testset

    data = verify.get("data") or {}
    if data.get("dataset") == "npz":
        test = npz_testset(data["source"], labels=tuple(manifest.get("labels") or ()), task=manifest.get("task"))
    else:
        test = load_testset(model_dir, manifest, data_dir=data_dir)
    if data.get("sha256") and test.fingerprint() != data["sha256"]:
        raise EdgeportError(f"{model_dir.name}: the test data changed since the last verify ({model_dir / VERIFY_FILE}); "
                            "verify again")
    return test


def _rows(x: Any, idx: np.ndarray) -> Any:
    return x[idx] if isinstance(x, np.ndarray) else {k: v[idx] for k, v in x.items()}


# -- the proof ---------------------------------------------------------------------------------

def _as_list(y: Any) -> list[np.ndarray]:
    return list(y) if isinstance(y, list) else [y]


def _top1(y: np.ndarray) -> np.ndarray:
    y = y.reshape(len(y), -1)
    return y.argmax(1) if y.shape[1] > 1 else (y[:, 0] > 0.5).astype(np.int64)


def _litert_rows(path: Path, x: Any, n: int) -> tuple[list[np.ndarray], Any]:
    """LiteRT without default delegates (TFLite's reference/optimized builtin kernels, no
    XNNPACK: its int8 kernels round differently from TFLite Micro's), one row at a time."""
    from edgeport.runtimes.registry import load

    session = load(path, runtime="litert", xnnpack=False, threads=1)
    rows = [_as_list(session.predict(_rows(x, np.arange(i, i + 1)))) for i in range(n)]
    return [np.concatenate([r[j] for r in rows]) for j in range(len(session.outputs))], session


def prove(model_path: Path, source_path: Path, x: Any, y: np.ndarray | None, *, arena_size: int,
          task: str = "classification") -> dict[str, Any]:
    """Run the batch-1 model in TFLite Micro (child process, ``arena_size`` bytes) and LiteRT (no
    delegates) on ``x``, and the source model for top-1 agreement; the figures, and ``ok``."""
    from edgeport.runtimes import tflm
    from edgeport.runtimes.registry import load

    n = len(x) if isinstance(x, np.ndarray) else len(next(iter(x.values())))
    t0 = time.perf_counter()
    micro, micro_engine = tflm.predict_isolated(model_path, x, arena_size=arena_size)
    t_micro = time.perf_counter() - t0
    lite, session = _litert_rows(model_path, x, n)
    specs = session.outputs
    # no child probe: convert_batch1 has loaded this very source in this process already
    reference = load(source_path, probe=False)
    keras = dict(zip([s.name for s in reference.outputs], _as_list(reference.predict(x))))
    outputs, identical_rows = {}, np.ones(n, bool)
    for j, spec in enumerate(specs):
        if not spec.quantized:
            raise EdgeportError(f"{model_path}: output {spec.name!r} is {spec.dtype}, not quantized: "
                                "not a full-integer model")
        m, r = micro[j].reshape(n, -1), lite[j].reshape(n, -1)
        steps = np.rint(np.abs(m.astype(np.float64) - r) / spec.scale).astype(np.int64)
        identical_rows &= (steps == 0).all(1)
        worst = int(np.unravel_index(steps.argmax(), steps.shape)[0]) if steps.max() else None
        out: dict[str, Any] = {"dtype": spec.dtype, "scale": spec.scale, "zero_point": spec.zero_point,
                               "max_steps": int(steps.max()), "worst_input": worst,
                               "identical_values": float((steps == 0).mean()),
                               "inputs_differing": int((steps > 0).any(1).sum())}
        if task == "classification":
            out["top1_agreement_litert"] = float((_top1(m) == _top1(r)).mean())
            if spec.name in keras:
                out["top1_agreement_keras"] = float((_top1(m) == _top1(keras[spec.name])).mean())
            if y is not None and len(specs) == 1:
                out["accuracy"] = {"tflm": float((_top1(m) == y).mean()), "litert": float((_top1(r) == y).mean()),
                                   "keras": float((_top1(keras[spec.name]) == y).mean()) if spec.name in keras
                                   else None}
        outputs[spec.name] = out
    max_steps = max(o["max_steps"] for o in outputs.values())
    agree = [o["top1_agreement_keras"] for o in outputs.values() if "top1_agreement_keras" in o]
    return {"ok": max_steps <= MAX_STEPS, "n": n, "max_steps": max_steps, "allowed_steps": MAX_STEPS,
            "identical_fraction": float(identical_rows.mean()),
            "top1_agreement_keras": min(agree) if agree else None,
            "arena_bytes": arena_size, "tflm": micro_engine, "litert": session.engine,
            "litert_op_resolver": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
            "io": {"inputs": [s.to_dict() for s in session.inputs], "outputs": [s.to_dict() for s in specs]},
            "reference": f"{reference.engine}: {source_path.name}", "outputs": outputs,
            "tflm_seconds": round(t_micro, 2)}


def _proof_error(name: str, proof: dict[str, Any], idx: np.ndarray) -> EdgeportError:
    bad = [(k, o) for k, o in proof["outputs"].items() if o["max_steps"] > MAX_STEPS]
    parts = [f"output {k!r} is up to {o['max_steps']} quantization steps apart (at test input #"
             f"{idx[o['worst_input']]}; {o['inputs_differing']} of {proof['n']} inputs differ)" for k, o in bad]
    return EdgeportError(f"{name}: TFLite Micro and LiteRT (no delegates) disagree on {MODEL_FILE}: "
                         f"{'; '.join(parts)}; allowed {MAX_STEPS} step: the microcontroller bundle is not made")


# -- the files -----------------------------------------------------------------------------------

def _header(model: bytes, ops: list[str], *, name: str, arena: int) -> str:
    """c_array's header, with the RAM the model needs beside its flash size."""
    text = c_array.header_text(model, ops, name=name, source=MODEL_FILE)
    sym = c_array.SYMBOL.upper()
    at = re.search(rf"^#define {sym}_OP_COUNT .*\n", text, re.M)
    if at is None:
        raise EdgeportError(f"{HEADER_FILE}: no {sym}_OP_COUNT line in edgeport.export.c_array's header")
    extra = (f"/* Flash: the model array, {len(model)} bytes. RAM: the tensor arena TFLite Micro needs, "
             f"{arena} bytes\n * (measured by edgeport: recording allocator, one inference, reference kernels). "
             f"Op resolver: {RESOLVER_FILE} */\n"
             f"#define {sym}_FLASH_BYTES {len(model)}u\n#define {sym}_ARENA_BYTES {arena}u\n")
    return text[:at.end()] + extra + text[at.end():]


def _resolver_header(ops: list[str], *, name: str) -> str:
    from edgeport.runtimes.tflm import micro_op_resolver

    return f"""/* {RESOLVER_FILE}: TensorFlow Lite Micro op resolver for "{name}" (generated by edgeport).
 * Registers exactly the {len(ops)} builtin ops of {MODEL_FILE} ({SOURCE_FILE}): {', '.join(ops)}.
 */
#ifndef EDGEPORT_MICRO_OP_RESOLVER_H_
#define EDGEPORT_MICRO_OP_RESOLVER_H_

#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"

namespace edgeport {{

{micro_op_resolver(ops)}
}}  // namespace edgeport

#endif  // EDGEPORT_MICRO_OP_RESOLVER_H_
"""


def _io_line(spec: dict[str, Any]) -> str:
    shape = ", ".join(str(d) for d in spec["shape"])
    return f"`{spec['name']}` {spec['dtype']} [{shape}], scale {spec['scale']:.8g}, zero point {spec['zero_point']}"


def _text_table(rows: list[tuple[str, str]], title: str) -> str:
    width = max(len(a) for a, _ in rows)
    return "\n".join([title] + [f"  {a:<{width}}  {b}" for a, b in rows])


def _summary_rows(info: dict[str, Any], proof: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows of the table `edgeport bundle` prints (``info``: the proof record's top level)."""
    rows = [("flash: model bytes", f"{info['flash_bytes']:,}"),
            ("RAM: tensor arena bytes", f"{info['arena_bytes']:,} (recorded: planned tensors {info['arena_head']:,} + "
                                        f"persistent {info['arena_tail']:,})"),
            (f"ops ({len(info['ops'])})", ", ".join(info["ops"])),
            ("TFLM = LiteRT (no delegates)", f"{proof['identical_fraction']:.1%} of {proof['n']} inputs identical, "
                                             f"max {proof['max_steps']} step(s) (allowed {MAX_STEPS})")]
    if proof.get("top1_agreement_keras") is not None:
        rows.append(("top-1 agreement with source", f"{proof['top1_agreement_keras']:.1%} (information)"))
    return rows


README = """# {model} on a microcontroller (TensorFlow Lite Micro)

A fixed batch-1, full-integer int8 model with {io} inputs and outputs, as a C array for firmware.

| memory | what | bytes |
| --- | --- | ---: |
| flash | the model: `{symbol}[]` in `{source}` (16-byte aligned) | {flash:,} |
| RAM | the tensor arena: `{symbol_upper}_ARENA_BYTES` in `{header}` | {arena:,} |

The flash figure is the model alone; the TFLite Micro library and the kernels of the {nops} ops
add their code. The arena was measured with TFLite Micro's recording allocator after one inference
({head:,} bytes of planned tensors and scratch, {tail:,} of persistent structures{short}), on a
64-bit host with the reference kernels: the persistent part is smaller on a 32-bit
microcontroller, and optimized kernels (CMSIS-NN, ESP-NN) may ask for scratch buffers of other
sizes, so confirm it on the device (tflite::RecordingMicroInterpreter) or keep a margin.

Ops ({nops}, registered by `{resolver}`): {ops}.

- input {inputs}: q = round(x / scale) + zero_point, clipped to the int8 range ({contract})
- output {outputs}: x = (q - zero_point) * scale

## Proof (made when this bundle was built)

- inputs: {n} real test inputs of {dataset}, drawn with seed {seed} (indices in `{proof}`)
- TFLite Micro ({tflm}), with exactly the arena above, against LiteRT without default delegates
  ({litert}; XNNPACK's int8 kernels round differently): {identical:.1%} of the inputs give
  identical outputs, the largest difference is {max_steps} quantization step(s) (allowed: {allowed})
{keras_line}
## Use

```c++
#include "{header}"
#include "{resolver}"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"

alignas(16) static uint8_t tensor_arena[{symbol_upper}_ARENA_BYTES];

TfLiteStatus setup(tflite::MicroInterpreter** out) {{
  static edgeport::EdgeportOpResolver resolver;
  if (edgeport::RegisterOps(resolver) != kTfLiteOk) return kTfLiteError;
  static tflite::MicroInterpreter interpreter(tflite::GetModel({symbol}), resolver,
                                              tensor_arena, sizeof(tensor_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) return kTfLiteError;
  *out = &interpreter;  // then: fill interpreter.input(0)->data.int8, Invoke(), read output(0)
  return kTfLiteOk;
}}
```

Files: {files}.
"""


def _readme(model: str, record: dict[str, Any], contract: dict[str, Any] | None, files: list[str]) -> str:
    proof, io, data = record["proof"], record["io"], record["data"]
    scaling = ("raw pixels 0-255, NHWC; the scaling is inside the model" if (contract or {}).get("kind") == "image"
               else "the model's raw input values")
    short = ("" if record["arena_bytes"] == record["arena_recorded_total"] else
             f"; that total, {record['arena_recorded_total']:,}, did not run: the arena is the smallest size that did")
    keras_line = "" if proof.get("top1_agreement_keras") is None else (
        f"- top-1 agreement with the source model ({proof['reference']}): {proof['top1_agreement_keras']:.1%}\n"
        "  (information, not a gate: `edgeport verify` gates the int8 quantization)\n")
    return README.format(
        model=model, io=IO_TYPE, symbol=c_array.SYMBOL, symbol_upper=c_array.SYMBOL.upper(), source=SOURCE_FILE,
        header=HEADER_FILE, resolver=RESOLVER_FILE, flash=record["flash_bytes"], arena=record["arena_bytes"],
        head=record["arena_head"], tail=record["arena_tail"], short=short, nops=len(record["ops"]),
        ops=", ".join(record["ops"]), inputs="; ".join(map(_io_line, io["inputs"])),
        outputs="; ".join(map(_io_line, io["outputs"])), contract=scaling, n=proof["n"],
        dataset=f"{data.get('dataset')} ({data.get('source')})", seed=data.get("seed"), tflm=proof["tflm"],
        litert=proof["litert"], identical=proof["identical_fraction"], max_steps=proof["max_steps"],
        allowed=MAX_STEPS, keras_line=keras_line, proof=PROOF_FILE, files=", ".join(files))


# -- the target --------------------------------------------------------------------------------

def _checked(model_dir: Path, samples: int) -> dict[str, Any]:
    """Everything the bundle is made from, checked before any work: a verified tflite_int8 from
    the source beside it now, its calibration record, TFLite Micro installed."""
    from edgeport.runtimes import tflm

    name = model_dir.name
    if samples < MIN_SAMPLES:
        raise EdgeportError(f"a microcontroller bundle is proved on at least {MIN_SAMPLES} real test inputs; "
                            f"--samples {samples} is too few")
    try:
        tflm.import_engine()
    except ImportError as exc:
        raise EdgeportError(f"{name}: the microcontroller proof runs TFLite Micro: {exc}") from None
    manifest = load_manifest(model_dir)
    entries = effective_entries(model_dir, manifest)
    if "tflite_int8" not in entries:
        raise EdgeportError(f"{name}: a microcontroller bundle needs the verified tflite_int8 artifact; "
                            f"export it first: `edgeport export {model_dir} --formats tflite_int8`")
    verify = require_verified(model_dir, ["tflite_int8"])
    entry = entries["tflite_int8"]
    src = _source(model_dir, manifest)
    source_sha = (manifest.get("source") or {}).get("sha256", "")
    check_integrity(model_dir, entry)
    check_fresh(manifest, "tflite_int8", entry, source_sha, f"edgeport export {model_dir} --formats tflite_int8")
    return {"manifest": manifest, "verify": verify, "entry": entry, "source": src, "source_sha256": source_sha}


def _batch1_model(model_dir: Path, inputs: dict[str, Any]) -> tuple[bytes, list[str]]:
    from edgeport.export.tflite_meta import add_metadata, builtin_ops

    name, manifest, src = model_dir.name, inputs["manifest"], inputs["source"]
    model = convert_batch1(src.path, src.kind, _calibration(model_dir, inputs["entry"]), io_type=IO_TYPE)
    ops = builtin_ops(model)
    if bad := [op for op in ops if op in FORBIDDEN_OPS]:
        raise EdgeportError(f"{name}: the batch-1 model still has {', '.join(bad)} ops (ops: {', '.join(ops)}); "
                            "a microcontroller model must not compute shapes at run time")
    meta = {"model": name, "labels": manifest.get("labels") or [], "input_contract": manifest.get("input_contract"),
            "input_names": manifest.get("input_names"), "format": METADATA_FORMAT,
            "source_sha256": inputs["source_sha256"], "edgeport": __version__}
    return add_metadata(model, meta), ops


def build(model_dir: Path, builder: BundleBuilder, *, samples: int, seed: int, data_dir: str | None) -> None:
    from edgeport.runtimes import tflm

    clock = [time.perf_counter()]

    def lap() -> float:
        clock.append(time.perf_counter())
        return round(clock[-1] - clock[-2], 2)

    name = model_dir.name
    inputs = _checked(model_dir, samples)
    model, ops = _batch1_model(model_dir, inputs)
    model_path = builder.add_bytes(MODEL_FILE, model)
    seconds = {"convert": lap()}
    use = tflm.arena_use(model, where=f"{name}/{MODEL_FILE}")
    seconds["arena"] = lap()
    test = _testset(model_dir, inputs["manifest"], inputs["verify"], data_dir)
    idx = np.sort(np.random.default_rng(seed).choice(len(test), size=min(samples, len(test)), replace=False))
    if len(idx) < MIN_SAMPLES:
        builder.notes.append(f"the test set has {len(test)} inputs: the proof ran on all of them "
                             f"(fewer than the {MIN_SAMPLES} a proof should have)")
    proof = prove(model_path, inputs["source"].path, _rows(test.x, idx),
                  test.y[idx] if test.y is not None else None, arena_size=use["arena"], task=test.task)
    seconds.update(proof=lap(), tflm_run=proof.pop("tflm_seconds"))
    if not proof["ok"]:
        raise _proof_error(name, proof, idx)
    record = {"model": name, "file": MODEL_FILE, "flash_bytes": len(model), "arena_bytes": use["arena"],
              "arena_recorded_total": use["total"], "arena_head": use["head"], "arena_tail": use["tail"],
              "arena_measured": "TFLite Micro's recording allocator after one inference, then run with exactly "
                                "that arena (64-bit host, reference kernels)",
              "ops": ops, "model_sha256": hashlib.sha256(model).hexdigest(),
              "io": {"type": IO_TYPE, **proof.pop("io")}, "calibration": inputs["entry"].get("calibration"),
              "source_sha256": inputs["source_sha256"],
              "data": {**(inputs["verify"].get("data") or {}), "n": int(len(idx)), "seed": seed,
                       "indices_of": "the verify test set"},
              "indices": idx.tolist(), "proof": proof}
    _write(model_dir, builder, model, record, inputs["manifest"].get("input_contract"))
    seconds["total"] = round(time.perf_counter() - clock[0], 2)
    builder.meta.update(mcu={k: v for k, v in record.items() if k not in ("indices", "calibration")} | {
        "seconds": seconds}, source_sha256=inputs["source_sha256"])
    builder.tables.append(_text_table(_summary_rows(record, proof), f"{name} on a microcontroller ({proof['tflm']}):"))


def _write(model_dir: Path, builder: BundleBuilder, model: bytes, record: dict[str, Any],
           contract: dict[str, Any] | None) -> None:
    name, ops = model_dir.name, record["ops"]
    builder.add_text(SOURCE_FILE, c_array.source_text(model, name=name))
    builder.add_text(HEADER_FILE, _header(model, ops, name=name, arena=record["arena_bytes"]))
    builder.add_text(RESOLVER_FILE, _resolver_header(ops, name=name))
    files = [MODEL_FILE, SOURCE_FILE, HEADER_FILE, RESOLVER_FILE, PROOF_FILE]
    if (model_dir / "labels.txt").is_file():
        builder.add_file("labels.txt", model_dir / "labels.txt")
        files.append("labels.txt")
    builder.add_json(PROOF_FILE, record)
    builder.add_text("README.md", _readme(name, record, contract, files))
