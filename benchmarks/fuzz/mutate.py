"""Seeded mutations of model files, manifests and bundles: each case is replayable from (kind, seed).

Byte-level mutators (bit flips, byte runs, truncation, insertion, deletion, duplication, zeroing,
emptying) apply to every kind; manifests also get structural JSON mutations (a field dropped,
retyped, added, a path pointed outside the model directory); bundles also get archive-level ones
(a member changed without its sha256, a traversing, linked or device member, an unlisted file).
"""
from __future__ import annotations

import io
import json
import random
import tarfile
from typing import Callable

Mutator = Callable[[bytes, random.Random], bytes]


def flip_bits(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def byte_run(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    if b:
        start = rng.randrange(len(b))
        value = rng.choice([0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        n = rng.randint(1, 64)
        b[start:start + n] = bytes([value]) * len(b[start:start + n])
    return bytes(b)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randrange(max(1, len(data)))]


def insert(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data) + 1)
    return data[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 256))) + data[i:]


def delete(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randint(1, 512):]


def duplicate(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    chunk = data[i:i + rng.randint(1, 1024)]
    j = rng.randrange(len(data) + 1)
    return data[:j] + chunk + data[j:]


def int_field(data: bytes, rng: random.Random) -> bytes:
    """An aligned 32-bit word set to an extreme (offsets, lengths, shapes in flatbuffers/protobuf)."""
    b = bytearray(data)
    if len(b) >= 4:
        i = rng.randrange(0, len(b) - 3) & ~3
        b[i:i + 4] = rng.choice([b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00",
                                 rng.randrange(1 << 32).to_bytes(4, "little")])
    return bytes(b)


def empty(data: bytes, rng: random.Random) -> bytes:
    return b""


BYTES: dict[str, Mutator] = {"flip_bits": flip_bits, "byte_run": byte_run, "truncate": truncate, "insert": insert,
                             "delete": delete, "duplicate": duplicate, "int_field": int_field, "empty": empty}
BYTE_WEIGHTS = {"flip_bits": 6, "byte_run": 3, "truncate": 3, "insert": 2, "delete": 2, "duplicate": 1,
                "int_field": 4, "empty": 1}


def _walk(obj, rng: random.Random):
    """A random (container, key) inside a JSON value."""
    path = []
    while isinstance(obj, (dict, list)) and obj and rng.random() < 0.8:
        key = rng.choice(list(obj)) if isinstance(obj, dict) else rng.randrange(len(obj))
        path.append((obj, key))
        obj = obj[key]
    return path[-1] if path else None


def json_structure(data: bytes, rng: random.Random) -> bytes:
    try:
        doc = json.loads(data)
    except ValueError:
        return flip_bits(data, rng)
    spot = _walk(doc, rng)
    if spot is not None:
        container, key = spot
        op = rng.choice(["drop", "retype", "add", "path", "huge", "null"])
        if op == "drop" and isinstance(container, dict):
            del container[key]
        elif op == "retype":
            container[key] = rng.choice([[], {}, "x", 3, -1, 1e308, True, None])
        elif op == "add" and isinstance(container, dict):
            container[f"unexpected_{rng.randrange(100)}"] = 1
        elif op == "path":
            container[key] = rng.choice(["../../etc/passwd", "/etc/passwd", "..", "", "a/../../b"])
        elif op == "huge":
            container[key] = 10 ** rng.randint(10, 400) if rng.random() < 0.5 else "A" * 100_000
        else:
            container[key] = None
    return json.dumps(doc).encode()


def _rebuild(data: bytes, rng: random.Random, edit) -> bytes:
    try:
        src = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
        members = [(m, src.extractfile(m).read() if m.isfile() else None) for m in src.getmembers()]
    except (tarfile.TarError, OSError, EOFError):
        return flip_bits(data, rng)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for info, payload in edit(members, rng):
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return out.getvalue()


def _bundle_edit(members, rng: random.Random):
    files = [i for i, (m, _) in enumerate(members) if m.isfile()]
    op = rng.choice(["member_bytes", "traverse", "link", "device", "unlisted", "meta"])
    top = members[0][0].name.split("/")[0] if members else "b"
    out = list(members)
    if op == "member_bytes" and files:
        i = rng.choice(files)
        out[i] = (out[i][0], flip_bits(out[i][1], rng))
    elif op == "meta" and files:
        i = next((k for k in files if out[k][0].name.endswith("bundle.json")), files[0])
        out[i] = (out[i][0], json_structure(out[i][1], rng))
    else:
        extra = tarfile.TarInfo(rng.choice([f"{top}/../escape", "/tmp/abs", f"{top}/x"]) if op == "traverse"
                                else f"{top}/extra")
        if op == "link":
            extra.type, extra.linkname = rng.choice([tarfile.SYMTYPE, tarfile.LNKTYPE]), "/etc/passwd"
        elif op == "device":
            extra.type = rng.choice([tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
        out.append((extra, None if op in ("link", "device") else b"payload"))
    return out


def bundle_structure(data: bytes, rng: random.Random) -> bytes:
    return _rebuild(data, rng, _bundle_edit)


def npz_structure(data: bytes, rng: random.Random) -> bytes:
    """A multi-input .npz with one array changed: a key dropped, renamed or added, a dtype changed
    (fractional or huge floats into an integer input, complex, strings, bool), a shape changed (axis
    added or removed, a scalar made an array, emptied), NaN/inf or extreme values written in."""
    import numpy as np

    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception:  # noqa: BLE001 - not an npz (the determinism test's bytes): bytes it is
        return flip_bits(data, rng)
    if not arrays:
        return data
    key = rng.choice(sorted(arrays))
    a = arrays[key]
    op = rng.choice(["drop", "rename", "add", "dtype", "axis_add", "axis_drop", "empty", "values", "scalar",
                     "transpose", "prefix"])
    if op == "drop":
        del arrays[key]
    elif op == "rename":
        arrays[rng.choice([key.upper(), key + "_", "x", "x_test", "y", "input_0", ""]) or "_"] = arrays.pop(key)
    elif op == "add":
        arrays[rng.choice(["extra", "y_test", "x_test", f"x/{key}"])] = a
    elif op == "dtype":
        arrays[key] = rng.choice([lambda v: v.astype(np.float64) + 0.5, lambda v: v.astype(np.complex64),
                                  lambda v: v.astype(str), lambda v: v.astype(bool), lambda v: v.astype(np.uint8),
                                  lambda v: v.astype(np.int32), lambda v: v.astype(np.float16)])(a)
    elif op == "axis_add":
        arrays[key] = a[None]
    elif op == "axis_drop" and a.ndim:
        arrays[key] = a.reshape(a.shape[1:]) if a.shape[0] == 1 else a[0]
    elif op == "empty":
        arrays[key] = np.zeros((0, *a.shape[1:]), a.dtype)
    elif op == "values":
        bad = rng.choice([np.nan, np.inf, -np.inf, 1e300, -1e300, 2.0 ** 63, 2.0 ** 24 + 1])
        v = a.astype(np.float64).copy()
        v.reshape(-1)[: max(1, v.size // 2)] = bad
        arrays[key] = v
    elif op == "scalar":
        arrays[key] = np.asarray(a.reshape(-1)[0] if a.size else 0)
    elif op == "transpose" and a.ndim > 1:
        arrays[key] = a.T
    elif op == "prefix":
        arrays = {f"x/{k}": v for k, v in arrays.items()}
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


_SIZES = ["0", "1", "2", "3", "7", "31", "64", "320", "321", "640", "-1", "1000000", "999999999999", "1e3", "",
          "N", "height", "01", "\u0661"]


def shape_string(data: bytes, rng: random.Random) -> bytes:
    """A ``--input-shape`` string with its syntax or sizes changed: a dimension replaced, added or dropped,
    another separator, the name changed or dropped, spaces, ``()``, several ``=``."""
    text = data.decode("utf-8", "replace")
    name, _, dims = text.partition("=")
    parts = dims.split("x") if dims else ["1"]
    op = rng.choice(["size", "size", "add", "drop", "sep", "name", "noname", "space", "scalar", "equals"])
    if op == "size":
        parts[rng.randrange(len(parts))] = rng.choice(_SIZES)
    elif op == "add":
        parts.insert(rng.randrange(len(parts) + 1), rng.choice(_SIZES))
    elif op == "drop" and parts:
        parts.pop(rng.randrange(len(parts)))
    sep = rng.choice(["x", ",", "X", "*", " x ", ""]) if op == "sep" else "x"
    name = rng.choice(["image", "IMAGES", "images:0", "", "x", "images images"]) if op == "name" else name
    out = "x".join(parts).replace("x", sep) if op == "sep" else "x".join(parts)
    out = out if op == "noname" else f"{name}={out}"
    out = {"space": f"  {out} ", "scalar": f"{name}=()", "equals": f"{out}={out}"}.get(op, out)
    return out.encode("utf-8", "surrogateescape")


#: Structural mutators per file kind, used in addition to the byte-level ones.
STRUCTURAL: dict[str, dict[str, Mutator]] = {"manifest": {"json_structure": json_structure},
                                             "bundle": {"bundle_structure": bundle_structure},
                                             "inputs.npz": {"npz_structure": npz_structure},
                                             "input_shape": {"shape_string": shape_string}}


def mutate(kind: str, data: bytes, seed: int) -> tuple[bytes, str]:
    """(mutated bytes, mutator name) for case ``seed`` of ``kind``: the same inputs, the same case."""
    rng = random.Random(f"{kind}:{seed}")
    structural = STRUCTURAL.get(kind, {})
    if structural and rng.random() < 0.6:
        name = rng.choice(sorted(structural))
        return structural[name](data, rng), name
    names = sorted(BYTES)
    name = rng.choices(names, weights=[BYTE_WEIGHTS[n] for n in names])[0]
    return BYTES[name](data, rng), name
