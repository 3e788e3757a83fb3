"""The runtime layer without any engine: input checks on a do-nothing session, quantization,
the file readers and the static guard, the registry."""
from __future__ import annotations

import struct
import zipfile

import numpy as np
import pytest

from edgeport.errors import InputError, LoadError, UnknownNameError
from edgeport.runtimes import RUNTIMES, list_runtimes, load, runtimes_for
from edgeport.runtimes import fileformats, guard
from edgeport.runtimes.base import Session, fmt_shape, order_inputs, tensor_key, tensor_keys
from edgeport.runtimes.quant import dequantize, quantize
from edgeport.types import TensorSpec


class EchoSession(Session):
    """A session whose engine returns its (converted) inputs: tests the shared layer alone."""

    runtime = "echo"

    def __init__(self, inputs, outputs=None):
        super().__init__("echo.model")
        self.inputs = inputs
        self.outputs = outputs or inputs
        self._finish_setup()

    def _run(self, feeds):
        return feeds


IMG = TensorSpec("serving_default_image:0", (None, 28, 28, 1), "float32")
VEC = TensorSpec("features", (None, 3), "float32")


def test_single_input_passes_raw_values_through_as_float32():
    s = EchoSession([IMG])
    x = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28, 1)
    y = s.predict(x)
    assert y.dtype == np.float32 and np.array_equal(y, x.astype(np.float32))
    assert s.predict(x.tolist()).shape == (2, 28, 28, 1)  # nested lists are fine


@pytest.mark.parametrize("bad, pattern", [
    (np.zeros((28, 28, 1)), r"expected shape \(N, 28, 28, 1\), given \(28, 28, 1\) \(a single "
                            r"sample needs a batch axis"),
    (np.zeros((1, 28, 28, 3)), r"expected 1 channel\(s\) \(shape \(N, 28, 28, 1\), NHWC\), given 3"),
    (np.zeros((0, 28, 28, 1)), r"empty batch: given shape \(0, 28, 28, 1\), expected \(N, 28, 28, 1\)"),
    (np.zeros((1, 784)), r"expected shape \(N, 28, 28, 1\), given \(1, 784\)"),
    (np.array(["x"] * 784).reshape(1, 28, 28, 1), r"expected numbers castable to float32.*<U1"),
    (np.zeros((1, 28, 28, 1), complex), r"given dtype complex128"),
    (np.zeros((1, 28, 28, 1), bool), r"given dtype bool"),
    ([[1, 2], [3]], r"cannot make an array|given dtype object"),
])
def test_input_errors_name_expected_and_given(bad, pattern):
    with pytest.raises(InputError, match=pattern) as info:
        EchoSession([IMG]).predict(bad)
    assert "echo.model: input 'image'" in str(info.value)


def test_nonfinite_is_refused_unless_allowed():
    s = EchoSession([VEC])
    x = np.array([[1.0, np.nan, 2.0], [np.inf, 0, 0]], np.float32)
    with pytest.raises(InputError, match=r"2 NaN/inf value\(s\).*allow_nonfinite=True"):
        s.predict(x)
    assert np.isnan(s.predict(x, allow_nonfinite=True)).any()
    huge = np.full((1, 3), 3e38, np.float32)  # finite values whose sum overflows
    np.testing.assert_array_equal(s.predict(huge), huge)


def test_multi_input_list_dict_and_errors():
    s = EchoSession([IMG, VEC])
    img, vec = np.ones((2, 28, 28, 1)), np.ones((2, 3))
    a = s.predict([img, vec])
    b = s.predict({"image": img, "features": vec})
    c = s.predict({"serving_default_image:0": img, "features:0": vec})
    for y in (b, c):
        assert all(np.array_equal(p, q) for p, q in zip(a, y))
    with pytest.raises(InputError, match=r"expected \['image', 'features'\], given \['image'\] "
                                         r"\(missing \['features'\]\)"):
        s.predict({"image": img})
    with pytest.raises(InputError, match="unknown"):
        s.predict({"image": img, "features": vec, "extra": vec})
    with pytest.raises(InputError, match="expected 2 inputs"):
        s.predict([img])
    with pytest.raises(InputError, match="disagree on the batch size"):
        s.predict([img, np.ones((3, 3))])


def test_quantize_dequantize_roundtrip():
    x = np.array([0.0, 1.0, 127.0, 128.0, 255.0, 300.0, -5.0], np.float32)
    q = quantize(x, 1.0, -128, "int8")
    np.testing.assert_array_equal(q, [-128, -127, -1, 0, 127, 127, -128])
    np.testing.assert_array_equal(dequantize(q, 1.0, -128), [0, 1, 127, 128, 255, 255, 0])
    assert quantize(np.array([0.5, 1.5, 2.5]), 1.0, 0, "uint8").tolist() == [0, 2, 2]  # half-even
    assert quantize(np.array([-1e9, 1e9]), 0.5, 3, "int16").tolist() == [-32768, 32767]


def test_session_quantizes_inputs_and_dequantizes_outputs():
    qin = TensorSpec("x", (None, 4), "uint8", scale=0.5, zero_point=10)
    qout = TensorSpec("y", (None, 4), "uint8", scale=0.5, zero_point=10)
    s = EchoSession([qin], [qout])
    x = np.array([[0.0, 1.0, 2.25, 200.0]], np.float32)
    np.testing.assert_array_equal(s.prepare(x)[0], [[10, 12, 14, 255]])
    np.testing.assert_allclose(s.predict(x), [[0.0, 1.0, 2.0, 122.5]])


def test_helpers():
    assert tensor_key("serving_default_image:0") == "image"
    assert tensor_key("Identity:0") == "Identity"
    assert tensor_keys(["serving_default_image:0", "Identity:0"]) == ["image", "Identity"]
    assert tensor_keys(["a:0", "a:1", "b:0"]) == ["a:0", "a:1", "b"]  # stripping ':N' would collide
    assert tensor_keys(["serving_default_a:0", "a:0"]) == ["serving_default_a:0", "a:0"]
    assert fmt_shape((None, 28, 28, 1)) == "(N, 28, 28, 1)"
    assert fmt_shape((1, None)) == "(N, ?)"
    specs = [VEC, IMG]
    assert order_inputs(specs, ["image", "features"]) == [IMG, VEC]
    assert order_inputs(specs, ["a", "b"]) == specs
    assert order_inputs(specs, None) == specs


# -- file readers and the static guard --------------------------------------------------------

def _mini_tflite(buffer_len: int = 64) -> bytes:
    """A structurally valid TFLite flatbuffer: Model{version=3, subgraphs=[{}], buffers=[{data}]}."""
    # Layout (all little endian): [root uoffset][TFL3][vtable][table][subgraphs vec][subgraph vt+t]
    # [buffers vec][buffer vt+t][data vec]. Built by hand to keep the test engine-free.
    out = bytearray(b"\0\0\0\0TFL3")
    vt = len(out)
    out += struct.pack("<HHHHHHH", 14, 16, 4, 0, 8, 0, 12)  # version, -, subgraphs, -, buffers
    out += b"\0\0"
    table = len(out)
    out += struct.pack("<i", table - vt) + struct.pack("<I", 3) + b"\0" * 8
    struct.pack_into("<I", out, 0, table)
    sub_vec = len(out)
    struct.pack_into("<I", out, table + 8, sub_vec - (table + 8))
    out += struct.pack("<II", 1, 0)
    sg_vt = len(out)
    out += struct.pack("<HH", 4, 4)
    sg = len(out)
    out += struct.pack("<i", sg - sg_vt)
    struct.pack_into("<I", out, sub_vec + 4, sg - (sub_vec + 4))
    buf_vec = len(out)
    struct.pack_into("<I", out, table + 12, buf_vec - (table + 12))
    out += struct.pack("<II", 1, 0)
    b_vt = len(out)
    out += struct.pack("<HHH", 6, 8, 4) + b"\0\0"
    b_table = len(out)
    out += struct.pack("<i", b_table - b_vt) + b"\0\0\0\0"
    struct.pack_into("<I", out, buf_vec + 4, b_table - (buf_vec + 4))
    data_vec = len(out)
    struct.pack_into("<I", out, b_table + 4, data_vec - (b_table + 4))
    out += struct.pack("<I", buffer_len) + bytes(range(256))[:buffer_len]
    return bytes(out)


def test_tflite_reader_checks_bounds():
    data = _mini_tflite()
    info = fileformats.read_tflite(data)
    assert (info.version, info.subgraphs, info.buffers) == (3, 1, 1)
    with pytest.raises(fileformats.FormatError, match="truncated"):
        fileformats.read_tflite(data[:-10])
    with pytest.raises(fileformats.FormatError, match="not a TFLite flatbuffer"):
        fileformats.read_tflite(b"\0" * 4 + b"ONNX" + data[8:])


def _pb_field(num: int, payload: bytes) -> bytes:
    def varint(v: int) -> bytes:
        out = bytearray()
        while True:
            out.append((v & 0x7F) | (0x80 if v > 0x7F else 0))
            v >>= 7
            if not v:
                return bytes(out)
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def test_onnx_reader_reads_metadata_and_refuses_truncation():
    graph = _pb_field(1, b"\x0a\x01x")  # one (nonsense but well-framed) node
    meta = _pb_field(14, _pb_field(1, b"edgeport") + _pb_field(2, b'{"model": "m"}'))
    data = b"\x08\x08" + _pb_field(2, b"test") + _pb_field(7, graph) + meta
    info = fileformats.read_onnx(data)
    assert info.ir_version == 8 and info.producer == "test"
    assert info.metadata == {"edgeport": '{"model": "m"}'}
    with pytest.raises(fileformats.FormatError, match="truncated"):
        fileformats.read_onnx(data[:-3])
    with pytest.raises(fileformats.FormatError, match="no graph"):
        fileformats.read_onnx(b"\x08\x08")


def test_guard_refuses_bad_files_naming_them(tmp_path):
    cases = {
        "missing.tflite": None,
        "empty.onnx": b"",
        "short.tflite": b"1234TFL3",
        "wrongid.tflite": b"\0" * 64,
        "garbage.onnx": b"\xff" * 100,
        "notzip.keras": b"PK but not really",
        "cut.tflite": _mini_tflite()[:-20],
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(LoadError) as info:
            load(path, probe=False)
        assert str(path) in str(info.value), info.value
    nocfg = tmp_path / "nocfg.keras"
    with zipfile.ZipFile(nocfg, "w") as zf:
        zf.writestr("model.weights.h5", b"x")
    with pytest.raises(LoadError, match="no config.json"):
        guard.validate(nocfg)
    (tmp_path / "dir").mkdir()
    with pytest.raises(LoadError, match="not a SavedModel"):
        load(tmp_path / "dir")
    (tmp_path / "model.xyz").write_bytes(b"hello")
    with pytest.raises(LoadError, match="unknown model file type '.xyz'"):
        load(tmp_path / "model.xyz")


def test_keras_crc_damage_is_caught(tmp_path):
    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("model.weights.h5", b"A" * 1000)
    data = bytearray(path.read_bytes())
    i = data.index(b"A" * 100)
    data[i + 10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(LoadError, match="CRC"):
        guard.validate(path)


# -- registry ----------------------------------------------------------------------------------

def test_registry_names_and_defaults(tmp_path):
    assert set(RUNTIMES) == {"keras", "savedmodel", "litert", "onnxruntime", "tflm"}
    for target in RUNTIMES.values():
        assert target.startswith("edgeport.runtimes.") and ":" in target
    (tmp_path / "a.tflite").write_bytes(_mini_tflite())
    assert runtimes_for(tmp_path / "a.tflite") == ["litert"]
    (tmp_path / "noext").write_bytes(_mini_tflite())
    assert runtimes_for(tmp_path / "noext") == ["litert"]  # sniffed
    with pytest.raises(UnknownNameError, match="valid runtimes"):
        load(tmp_path / "a.tflite", runtime="tensorrt", probe=False)


def test_list_runtimes_reports_each_engine():
    text = list_runtimes()
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["runtime", "runs"]
    assert {ln.split()[0] for ln in lines[1:]} == set(RUNTIMES)
    assert "ai_edge_litert" in text and "installed" in text


def test_a_model_whose_declared_tensors_exceed_memory_is_refused_before_allocation(tmp_path):
    """A bit-flipped .ort declared an input of (1, 12, 12, 1073741825) floats (576 GiB): every engine's
    session refuses such a model at load, naming the file, instead of a MemoryError later."""
    import pytest

    from edgeport.errors import LoadError
    from edgeport.runtimes.base import Session
    from edgeport.types import TensorSpec

    class Huge(Session):
        def __init__(self, path):
            super().__init__(path)
            self.inputs = [TensorSpec("x", (None, 12, 12, 1073741825), "float32")]
            self.outputs = [TensorSpec("y", (None, 10), "float32")]
            self._finish_setup()

    with pytest.raises(LoadError, match=r"model\.ort: its inputs and outputs need 576\.0 GiB"):
        Huge(tmp_path / "model.ort")


def test_outputs_whose_short_names_collide_keep_their_suffix(tmp_path):
    """basic_pitch's ONNX names its outputs StatefulPartitionedCall:0/:1/:2: each keeps its own name."""
    import onnx
    from onnx import helper

    from edgeport.benchmarks.verify.jobs import predict_all

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["a:0"]), helper.make_node("Neg", ["x"], ["a:1"])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, ["N", 3]) for n in ("a:0", "a:1")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), tmp_path / "m.onnx")
    s = load(tmp_path / "m.onnx", runtime="onnxruntime")
    assert s.output_keys == ["a:0", "a:1"] and "outputs a:0 (N, 3) float32, a:1 (N, 3)" in s.describe()
    x = np.array([[1.0, -2.0, 3.0]] * 5, np.float32)
    got = predict_all(s, x)
    assert list(got) == ["a:0", "a:1"]
    np.testing.assert_array_equal(got["a:1"], -x)
