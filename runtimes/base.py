"""The Session every runtime returns, and the input checking shared by all of them (numpy only).

A session takes what the model's contract says (raw 0-255 pixels for image models, plain floats
for value models) in a batch of any size and returns float outputs. Quantized tensors are
handled here: inputs are quantized with the tensor's scale/zero point, outputs dequantized.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edgeport.errors import EdgeportError, EngineError, InputError, LoadError
from edgeport.runtimes import batching
from edgeport.runtimes.dims import (  # noqa: F401 - re-exported: the runtimes import them from here
    _all_finite, _matches, _spec_bytes, _to_array, available_memory, cast_to_feed, fmt_dims, fmt_shape,
    has_batch_axis, matches_exactly, order_inputs, shape_message, spec_shape, tensor_key, tensor_keys,
    unbatched_reason)
from edgeport.runtimes.quant import QUANT_RANGES, Dequantizer, Quantizer
from edgeport.types import TensorSpec

#: The largest batch one engine call is given (bigger ones run in chunks of it).
MAX_BATCH = 4096


class Session:
    """One loaded artifact in one engine.

    ``inputs`` / ``outputs``: :class:`TensorSpec` per tensor (name, shape with ``None`` for a free
    batch dimension, dtype, and the quantization scale/zero point when quantized), in the order
    ``predict`` takes and returns them. ``predict(x)`` takes one array (single-input models), a
    list in ``inputs`` order, or a dict by input name; it returns one float array (single-output
    models) or a list of them. A model whose inputs share no batch axis (``batched`` False: a scalar
    input, a state tensor whose first axis is not the batch) is fed exactly as given, one call.
    """

    runtime: str = ""
    #: Whether ``load`` probes this runtime in a child process by default (see ``guard``).
    probe_by_default: bool = True

    def __init__(self, path: str | Path, *, threads: int | None = None, device: str = "cpu",
                 allow_nonfinite: bool = False):
        self.path = Path(path)
        self.threads = threads
        self.device = device
        self.allow_nonfinite = allow_nonfinite
        self.engine = ""  # e.g. "ai_edge_litert 2.3.0"
        #: What a caller must be told about how this session runs: an engine fallback, say.
        self.notes: list[str] = []
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []
        #: Symbolic names of input dimensions by input key (``{"images": (None, None, "height", "width")}``),
        #: for engines that have them (ONNX ``dim_param``); set before ``_finish_setup``.
        self.dim_names: dict[str, tuple[str | None, ...]] = {}

    # -- set up by subclasses once inputs/outputs are known ------------------------------------
    def _finish_setup(self) -> None:
        """Precompute what the per-call checks need; call at the end of a subclass __init__. A model
        whose declared inputs and outputs alone need more memory than this machine has at batch 1 is
        refused here, for every engine, before anything of that size is allocated."""
        need = sum(_spec_bytes(s) for s in (*self.inputs, *self.outputs))
        if need > (available := available_memory()):
            raise LoadError(f"{self.path}: its inputs and outputs need {need / 2**30:.1f} GiB at batch 1 and this "
                            f"machine has {available / 2**30:.1f} GiB available: refused before allocating")
        self._keys = self.input_keys = tensor_keys([s.name for s in self.inputs])
        self.output_keys = tensor_keys([s.name for s in self.outputs])
        self._sample_shapes = [tuple(s.shape[1:]) for s in self.inputs]
        self._quantizers = [Quantizer(s) if s.quantized and s.dtype in QUANT_RANGES else None
                            for s in self.inputs]
        self._feed_dtypes = [np.dtype(s.dtype) for s in self.inputs]
        # integer inputs that are not quantized (ids, a sample rate): fed as their own dtype, checked
        self._int_inputs = [q is None and d.kind in "iu" for q, d in zip(self._quantizers, self._feed_dtypes)]
        self.batched = has_batch_axis(self.inputs)
        # A batch declared fixed at 1 is never resized (runtimes/batching.py): rows run one at a time.
        self.fixed_batch = self.inputs[0].shape[0] if self.batched and self.inputs else None
        self.row_by_row: bool | None = (self.fixed_batch == 1) if self.fixed_batch else None  # None: unchecked
        self._stacked = [False] * len(self.outputs)
        self._shapes_said = False
        self._out_quant = [Dequantizer(s) if s.quantized and s.dtype in QUANT_RANGES else None
                           for s in self.outputs]
        self._single_out = len(self.outputs) == 1

    # -- the public call ----------------------------------------------------------------------
    def predict(self, x: Any, *, allow_nonfinite: bool | None = None) -> Any:
        """Run a batch; returns float32 outputs (one array, or a list for several outputs). A batch
        larger than the memory budget allows (``max_batch``) runs in chunks: whole output, bounded memory."""
        feeds = self.prepare(x, allow_nonfinite=allow_nonfinite)
        n = feeds[0].shape[0] if self.batched else 1
        limit = self.max_batch
        try:
            if self.batched and self.row_by_row is None and n > 1:
                self._check_batch(feeds)
            if self.batched and self.row_by_row:
                raw = self._by_rows(feeds, n)
            elif n <= limit or not self.batched:
                raw = self._run(feeds)
            else:
                parts = [self._run([f[i:i + limit] for f in feeds]) for i in range(0, n, limit)]
                raw = [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
        except EdgeportError:
            raise
        except Exception as exc:  # noqa: BLE001 - an engine's own exception types (RuntimeError, pybind ...)
            raise self.engine_error(exc) from None
        if not self._shapes_said:
            self._shapes_said = True
            self.notes += batching.shape_notes(self.outputs, self.output_keys, raw, n, self._stacked)
        return self.finish(raw)

    def batch_major(self, outputs: Any, n: int) -> list[np.ndarray]:
        """``predict``'s outputs (one array or a list) for ``n`` rows as a list with the rows on axis 0,
        each row's output as the engine returns it for one row (``batching.batch_major``)."""
        outs = outputs if isinstance(outputs, list) else [outputs]
        return batching.batch_major(outs, n, self._stacked, self.path.name)

    def _by_rows(self, feeds: list[np.ndarray], n: int) -> list[np.ndarray]:
        if n > 1 and self.fixed_batch == 1 and not any("never resized" in m for m in self.notes):
            self.notes.append(f"its batch is fixed at 1 (declared input shape {tuple(self.inputs[0].shape)}): "
                              "rows run one at a time, never resized")
        raw, self._stacked = batching.by_rows(self._run, feeds, n)
        if any(self._stacked):
            self._fast = False  # an engine's batch-1 fast path would return a row's output unstacked
        return raw

    def _check_batch(self, feeds: list[np.ndarray]) -> None:
        why, _ = batching.check(self._run, feeds, self.output_keys)
        self.row_by_row = bool(why)
        if why:
            self.notes.append(f"{why}: rows run one at a time")

    def engine_error(self, exc: BaseException) -> EngineError:
        return EngineError(f"{self.path}: {self.engine or self.runtime} failed while running it: "
                           f"{type(exc).__name__}: {exc}")

    @property
    def max_batch(self) -> int:
        """The largest batch one engine call gets: a quarter of the available memory over an estimate
        of one sample's footprint (``sample_bytes``: every tensor when the engine says, else 64 x the
        input), at most MAX_BATCH."""
        cached = getattr(self, "_max_batch", None)
        if cached is None:
            per = max(1, self.sample_bytes())
            cached = self._max_batch = int(max(1, min(MAX_BATCH, available_memory() // 4 // per)))
        return cached

    def tensor_storage(self) -> dict[str, int]:
        """What the artifact's tensors are stored as, counted: ``{"float32": n, "float16": n,
        "int8_quantized": n, "int16_quantized": n, "integer_io": n}`` (what a bare file's precision
        class is read from). Empty when the engine does not say."""
        return {}

    def float16_weights(self, dest_dir: Path) -> tuple[Path, int] | None:
        """This artifact with every float32 constant rounded to float16 and kept float32 (the fp16
        baseline of a float32 artifact), written into ``dest_dir``, and how many tensors were rounded;
        None where the engine's files cannot be rewritten so."""
        return None

    def sample_bytes(self) -> int:
        """Bytes one sample needs in the engine (an estimate; engines that know say better)."""
        return 64 * sum(int(np.prod([d or 1 for d in s.shape[1:]])) * np.dtype(s.dtype).itemsize
                        for s in self.inputs)

    def _run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:  # pragma: no cover - abstract
        """Feed the engine (arrays already checked and quantized); return its raw outputs."""
        raise NotImplementedError

    def _deq(self, i: int, y: np.ndarray) -> np.ndarray:
        d = self._out_quant[i]
        if d is None:
            return y if y.dtype == np.float32 else y.astype(np.float32)
        return d(y)

    def finish(self, raw: list[np.ndarray]) -> Any:
        """Raw engine outputs -> float32 (dequantized), one array or a list."""
        out = [self._deq(i, y) for i, y in enumerate(raw)]
        return out[0] if self._single_out else out

    def self_test(self) -> None:
        """Run one sample of zeros (the child-process probe calls this after loading). A model with
        free dimensions other than the batch may refuse size 1 there (a Concat of two branches): its
        engine error is no crash, so it is noted, not raised; real sizes come from data or --input-shape."""
        zeros = [np.zeros(self.sample_shape(i, 1), self._feed_dtypes[i] if self._int_inputs[i] else np.float32)
                 for i in range(len(self.inputs))]
        try:
            self.predict(zeros if len(zeros) > 1 else zeros[0], allow_nonfinite=True)
        except EngineError as exc:
            if not self.free_dims():
                raise
            self.notes.append(f"a zero input with every free dimension 1 does not run ({exc}); "
                              "give real sizes (data or --input-shape)")

    def sample_shape(self, i: int, batch: int = 1) -> tuple[int, ...]:
        """Input ``i``'s shape at ``batch`` (a batchless model: its own shape), free dimensions as 1."""
        shape = self.inputs[i].shape
        rest = tuple(int(d) if d is not None and d >= 0 else 1 for d in (shape[1:] if self.batched else shape))
        return (batch, *rest) if self.batched else rest

    def free_dims(self) -> list[tuple[str, int, str]]:
        """(input key, axis, name) of every free dimension a caller must give a size for: a batched
        model's free dimensions past the batch axis, every free dimension of a batchless model.
        Unnamed ones are called ``dimAXIS``."""
        out = []
        for key, spec in zip(self._keys, self.inputs):
            names = self.dim_names.get(key, ())
            for axis, d in enumerate(spec.shape):
                if (d is None or d < 0) and (axis > 0 or not self.batched):
                    out.append((key, axis, (names[axis] if axis < len(names) else None) or f"dim{axis}"))
        return out

    def unbatched_reason(self) -> str:
        """Why this model takes no batch (empty when it does)."""
        return "" if self.batched else unbatched_reason(self._keys, self.inputs, self.dim_names)

    def close(self) -> None:
        """Release the engine (optional; sessions are also freed with the object)."""

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def describe(self) -> str:
        def one(s: TensorSpec, key: str) -> str:
            q = f" q(scale={s.scale:.6g}, zp={s.zero_point})" if s.quantized else ""
            batched = getattr(self, "batched", True)
            shape = fmt_shape(s.shape) if batched else fmt_dims(s.shape, self.dim_names.get(key, ()))
            return f"{key} {shape} {s.dtype}{q}"

        def side(specs: list[TensorSpec]) -> str:
            return ", ".join(map(one, specs, tensor_keys([s.name for s in specs])))
        return (f"{self.runtime} [{self.engine}] {self.path.name}: "
                f"inputs {side(self.inputs)}; outputs {side(self.outputs)}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    # -- input checking and conversion --------------------------------------------------------
    def _as_list(self, x: Any) -> list[Any]:
        n = len(self.inputs)
        if isinstance(x, Mapping):
            by_key = {k if k in self._keys else tensor_key(str(k)): v for k, v in x.items()}
            missing = [k for k in self._keys if k not in by_key]
            extra = [k for k in by_key if k not in self._keys]
            if missing or extra:
                raise InputError(
                    f"{self.path.name}: inputs by name: expected {self._keys}, given "
                    f"{list(by_key)}" + (f" (missing {missing})" if missing else "")
                    + (f" (unknown {extra})" if extra else ""))
            return [by_key[k] for k in self._keys]
        if n > 1:
            if not isinstance(x, (list, tuple)):
                raise InputError(
                    f"{self.path.name}: the model has {n} inputs {self._keys}; give a list in that "
                    f"order or a dict by name, not a single {type(x).__name__}")
            if len(x) != n:
                raise InputError(f"{self.path.name}: expected {n} inputs {self._keys}, given {len(x)}")
            return list(x)
        if isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], np.ndarray):
            return [x[0]]
        return [x]

    def prepare(self, x: Any, *, allow_nonfinite: bool | None = None) -> list[np.ndarray]:
        """Check ``x`` against the input specs and convert it to what the engine is fed."""
        allow = self.allow_nonfinite if allow_nonfinite is None else allow_nonfinite
        values = self._as_list(x)
        if not self.batched:
            return [self._whole(i, v, allow) for i, v in enumerate(values)]
        feeds = []
        batch = None
        for i, v in enumerate(values):
            arr = self._check(i, v, allow)
            if batch is not None and arr.shape[0] != batch:
                raise InputError(f"{self.path.name}: inputs disagree on the batch size: "
                                 f"{self._keys[i - 1]} has {batch}, {self._keys[i]} has {arr.shape[0]}")
            batch = arr.shape[0]
            feeds.append(self._convert(i, arr))
        return feeds

    def _convert(self, i: int, arr: np.ndarray) -> np.ndarray:
        q = self._quantizers[i]
        if q is not None:
            with np.errstate(invalid="ignore"):  # NaN/inf reach here only when allowed
                return q(arr)
        if self._int_inputs[i]:
            return cast_to_feed(arr, self._feed_dtypes[i], f"{self.path.name}: input {self._keys[i]!r}")
        return arr.astype(self._feed_dtypes[i], copy=False)

    def _whole(self, i: int, v: Any, allow_nonfinite: bool) -> np.ndarray:
        """One input of a batchless model: its exact shape (free dimensions take any size)."""
        spec, key = self.inputs[i], self._keys[i]
        where = f"{self.path.name}: input {key!r}"
        arr = v if isinstance(v, np.ndarray) else _to_array(v, where)
        if arr.dtype.kind not in "iufb":
            raise InputError(f"{where}: expected numbers castable to {spec.dtype}, given dtype {arr.dtype}")
        if not matches_exactly(arr.shape, spec.shape):
            raise InputError(f"{where}: expected shape {fmt_dims(spec.shape, self.dim_names.get(key, ()))}, given "
                             f"{tuple(arr.shape)} (this model's inputs share no batch axis: each is fed as it is)")
        if arr.dtype.kind == "f" and not allow_nonfinite and not np.isfinite(arr).all():
            raise InputError(f"{where}: {int(np.count_nonzero(~np.isfinite(arr)))} NaN/inf value(s) in a float "
                             "input; expected finite values")
        return self._convert(i, arr)

    def _check(self, i: int, v: Any, allow_nonfinite: bool) -> np.ndarray:
        spec, key = self.inputs[i], self._keys[i]
        where = f"{self.path.name}: input {key!r}"
        expected = fmt_shape(spec.shape)
        arr = v if isinstance(v, np.ndarray) else _to_array(v, where)
        kind = arr.dtype.kind
        if kind not in "iuf":
            raise InputError(f"{where}: expected numbers castable to {spec.dtype} "
                             f"(raw values per the model's contract), given dtype {arr.dtype}")
        sample = self._sample_shapes[i]
        if arr.shape[1:] != sample or arr.ndim != len(spec.shape):
            if _matches((*arr.shape, 1), spec.shape) and spec.shape[-1] == 1:
                arr = arr[..., None]  # (N, 28, 28) for a model of (N, 28, 28, 1): obviously meant; said once
                self._say(f"input {key!r}: given {tuple(arr.shape[:-1])}, fed as {tuple(arr.shape)} "
                          "(the model's one channel axis added)")
            elif not _matches(arr.shape, spec.shape):
                raise InputError(shape_message(where, expected, arr.shape, spec))
        if arr.shape[0] == 0:
            raise InputError(f"{where}: empty batch: given shape {tuple(arr.shape)}, "
                             f"expected {expected} with N >= 1")
        if kind == "f" and not allow_nonfinite and not _all_finite(arr):
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            raise InputError(f"{where}: {bad} NaN/inf value(s) in a float input; expected finite "
                             "values (pass allow_nonfinite=True to feed them anyway)")
        return arr

    def _say(self, note: str) -> None:
        """Record (and warn once about) something done to the caller's input."""
        if note not in self.notes:
            import warnings

            self.notes.append(note)
            warnings.warn(f"{self.path.name}: {note}", UserWarning, stacklevel=4)
