"""Minimal, bounds-checked readers of the TFLite flatbuffer and the protobuf wire format.

Pure Python on bytes: no TensorFlow, no ``onnx``, no ``flatbuffers`` package. Used to validate an
artifact before any engine sees it (a truncated or garbage file is refused here instead of
crashing native code) and to read the metadata edgeport embeds (``Model.metadata`` entry
``"edgeport"`` in a ``.tflite``; ``metadata_props`` in an ``.onnx``).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field


class FormatError(ValueError):
    """The bytes are not a well-formed file of the expected format."""


# -- flatbuffers (TFLite) --------------------------------------------------------------------

TFLITE_IDENTIFIER = b"TFL3"

# table Model { version, operator_codes, subgraphs, description, buffers, metadata_buffer,
#               metadata, signature_defs }   (field ids 0..7 in schema.fbs)
_M_VERSION, _M_SUBGRAPHS, _M_DESCRIPTION, _M_BUFFERS, _M_METADATA = 0, 2, 3, 4, 6
# table Buffer { data:[ubyte]; offset:ulong; size:ulong; }   table Metadata { name; buffer:uint }


class _Flat:
    def __init__(self, data: bytes):
        self.b = memoryview(data)
        self.n = len(data)

    def _need(self, pos: int, size: int) -> None:
        if pos < 0 or pos + size > self.n:
            raise FormatError(f"offset {pos}+{size} is past the end of the file ({self.n} bytes)"
                              " (truncated?)")

    def u16(self, pos: int) -> int:
        self._need(pos, 2)
        return struct.unpack_from("<H", self.b, pos)[0]

    def u32(self, pos: int) -> int:
        self._need(pos, 4)
        return struct.unpack_from("<I", self.b, pos)[0]

    def i32(self, pos: int) -> int:
        self._need(pos, 4)
        return struct.unpack_from("<i", self.b, pos)[0]

    def u64(self, pos: int) -> int:
        self._need(pos, 8)
        return struct.unpack_from("<Q", self.b, pos)[0]

    def field(self, table: int, index: int) -> int | None:
        """Absolute position of a table's field, or None if absent."""
        vt = table - self.i32(table)
        vt_size = self.u16(vt)
        if vt_size < 4 or vt_size % 2:
            raise FormatError(f"bad vtable at {vt}")
        slot = 4 + 2 * index
        if slot + 2 > vt_size:
            return None
        off = self.u16(vt + slot)
        return table + off if off else None

    def deref(self, pos: int) -> int:
        return pos + self.u32(pos)

    def vector(self, pos: int, elem_size: int) -> tuple[int, int]:
        """(start, length) of the vector referenced at ``pos``; bounds-checked."""
        vpos = self.deref(pos)
        length = self.u32(vpos)
        self._need(vpos + 4, length * elem_size)
        return vpos + 4, length

    def tables(self, pos: int) -> list[int]:
        start, length = self.vector(pos, 4)
        return [self.deref(start + 4 * k) for k in range(length)]

    def bytes_at(self, pos: int) -> bytes:
        start, length = self.vector(pos, 1)
        return bytes(self.b[start:start + length])


@dataclass
class TfliteInfo:
    version: int
    subgraphs: int
    buffers: int
    description: str = ""
    metadata: dict[str, bytes] = field(default_factory=dict)
    tensor_bytes: int = 0  # every tensor at its stored shape (free dimensions as 1): a memory estimate


#: Bytes per element of each TFLite TensorType (schema.fbs order); unknown types count 8.
_ITEMSIZE = (4, 2, 4, 1, 8, 1, 1, 2, 8, 1, 8, 16, 8, 8, 8, 4, 2, 1)


def _tensor_bytes(fb: "_Flat", subgraph: int) -> int:
    """Sum over a subgraph's tensors of elements x element size, read with bounds checks."""
    pos = fb.field(subgraph, 0)
    total = 0
    for tensor in fb.tables(pos) if pos is not None else []:
        sp, tp = fb.field(tensor, 0), fb.field(tensor, 1)
        count = 1
        if sp is not None:
            start, length = fb.vector(sp, 4)
            for k in range(min(length, 16)):
                count *= max(1, fb.i32(start + 4 * k))
        kind = fb.b[tp] if tp is not None and tp < fb.n else 0
        total += count * (_ITEMSIZE[kind] if kind < len(_ITEMSIZE) else 8)
    return total


def read_tflite(data: bytes, *, with_metadata: bool = True) -> TfliteInfo:
    """Parse and bounds-check a TFLite model; raise FormatError on anything malformed.

    Checks the identifier, the root table, every subgraph table and every buffer (its data must
    lie inside the file, or its offset/size for models that keep weights after the flatbuffer).
    """
    if len(data) < 16:
        raise FormatError(f"only {len(data)} bytes; a TFLite model is much larger")
    if bytes(data[4:8]) != TFLITE_IDENTIFIER:
        raise FormatError(f"file identifier is {bytes(data[4:8])!r}, not {TFLITE_IDENTIFIER!r} "
                          "(not a TFLite flatbuffer)")
    fb = _Flat(data)
    root = fb.deref(0)
    pos = fb.field(root, _M_VERSION)
    version = fb.u32(pos) if pos else 0
    pos = fb.field(root, _M_SUBGRAPHS)
    if pos is None:
        raise FormatError("the model has no subgraphs")
    subgraphs = fb.tables(pos)
    if not subgraphs:
        raise FormatError("the model has no subgraphs")
    tensor_bytes = 0
    for sg in subgraphs:
        for fid, size in ((0, 4), (1, 4), (2, 4), (3, 4)):  # tensors, inputs, outputs, operators
            p = fb.field(sg, fid)
            if p is not None:
                fb.vector(p, size)
        tensor_bytes += _tensor_bytes(fb, sg)
    spans: list[tuple[int, int]] = []  # (start, length) of each buffer's bytes
    pos = fb.field(root, _M_BUFFERS)
    for buf in fb.tables(pos) if pos is not None else []:
        p = fb.field(buf, 0)
        span = fb.vector(p, 1) if p is not None else (0, 0)
        op, sp = fb.field(buf, 1), fb.field(buf, 2)
        offset, size = (fb.u64(op) if op else 0), (fb.u64(sp) if sp else 0)
        if offset > 1:  # weights stored after the flatbuffer (models over 2 GB)
            if offset + size > fb.n:
                raise FormatError(f"a buffer at offset {offset} of {size} bytes is past the end "
                                  f"of the file ({fb.n} bytes) (truncated?)")
            span = (offset, size)
        spans.append(span)
    pos = fb.field(root, _M_DESCRIPTION)
    description = fb.bytes_at(pos).decode("utf-8", "replace") if pos is not None else ""
    metadata: dict[str, bytes] = {}
    pos = fb.field(root, _M_METADATA)
    for md in fb.tables(pos) if pos is not None else []:
        np_, bp = fb.field(md, 0), fb.field(md, 1)
        name = fb.bytes_at(np_).decode("utf-8", "replace") if np_ is not None else ""
        index = fb.u32(bp) if bp is not None else 0
        if index >= len(spans):
            raise FormatError(f"metadata {name!r} points at buffer {index} of {len(spans)}")
        if with_metadata:
            start, length = spans[index]
            metadata[name] = bytes(fb.b[start:start + length])
    return TfliteInfo(version, len(subgraphs), len(spans), description, metadata, tensor_bytes)


# -- protobuf wire format (ONNX, SavedModel) -------------------------------------------------

def _varint(b: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise FormatError("a varint runs past the end (truncated?)")
        byte = b[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise FormatError("a varint longer than 10 bytes")


def walk_protobuf(data: bytes | memoryview, start: int = 0, end: int | None = None
                  ) -> list[tuple[int, int, int | tuple[int, int]]]:
    """Top-level fields of one message: ``[(field, wire_type, value or (start, end))]``.

    Every length is checked against the buffer; groups and unknown wire types are refused.
    """
    b = memoryview(data)
    end = len(b) if end is None else end
    pos, out = start, []
    while pos < end:
        key, pos = _varint(b, pos, end)
        fnum, wt = key >> 3, key & 7
        if fnum == 0:
            raise FormatError(f"field number 0 at byte {pos}")
        if wt == 0:
            val, pos = _varint(b, pos, end)
            out.append((fnum, wt, val))
        elif wt == 1 or wt == 5:
            size = 8 if wt == 1 else 4
            if pos + size > end:
                raise FormatError("a fixed-size field runs past the end (truncated?)")
            out.append((fnum, wt, (pos, pos + size)))
            pos += size
        elif wt == 2:
            length, pos = _varint(b, pos, end)
            if pos + length > end:
                raise FormatError(f"field {fnum} claims {length} bytes but only {end - pos} remain "
                                  "(truncated?)")
            out.append((fnum, wt, (pos, pos + length)))
            pos += length
        else:
            raise FormatError(f"wire type {wt} for field {fnum} (not a protobuf message?)")
    return out


@dataclass
class OnnxInfo:
    ir_version: int
    producer: str
    opsets: int
    metadata: dict[str, str] = field(default_factory=dict)


def read_onnx(data: bytes) -> OnnxInfo:
    """Check an ONNX ModelProto's structure (top level and the graph's top level)."""
    if not data:
        raise FormatError("empty file")
    b = memoryview(data)
    fields = walk_protobuf(b)
    by = {}
    for f, wt, v in fields:
        by.setdefault(f, []).append((wt, v))
    if 1 not in by or by[1][0][0] != 0:
        raise FormatError("no ir_version (not an ONNX model)")
    if 7 not in by or by[7][0][0] != 2:
        raise FormatError("no graph (not an ONNX model)")
    gs, ge = by[7][0][1]
    graph = walk_protobuf(b, gs, ge)
    if not any(f == 1 for f, _, _ in graph):
        raise FormatError("the graph has no nodes")
    producer = ""
    if 2 in by and by[2][0][0] == 2:
        s, e = by[2][0][1]
        producer = bytes(b[s:e]).decode("utf-8", "replace")
    metadata = {}
    for wt, v in by.get(14, []):
        if wt != 2:
            raise FormatError("malformed metadata_props")
        kv = {f: bytes(b[s:e]).decode("utf-8", "replace")
              for f, w, (s, e) in ((f, w, val) for f, w, val in walk_protobuf(b, *v)) if w == 2}
        metadata[kv.get(1, "")] = kv.get(2, "")
    return OnnxInfo(by[1][0][1], producer, len(by.get(8, [])), metadata)


def check_saved_model_pb(data: bytes) -> int:
    """Check a saved_model.pb's structure; return the number of meta graphs."""
    if not data:
        raise FormatError("empty saved_model.pb")
    fields = walk_protobuf(data)
    metas = [v for f, wt, v in fields if f == 2 and wt == 2]
    if not metas:
        raise FormatError("saved_model.pb has no meta graph (not a SavedModel?)")
    for s, e in metas:
        walk_protobuf(data, s, e)
    return len(metas)
