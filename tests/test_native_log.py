"""Quiet everywhere: TensorFlow's, absl's and oneDNN's lines go to the native log in every command
(and `make web-check`); edgeport's own lines, and its children's, still reach the terminal. Fast:
the lines are written as TensorFlow writes them (native fd 2, Python logging, a child process)."""
from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from edgeport import cli
from edgeport.native_log import NATIVE_LINE, native_to_log

TF_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796455033.057613   15090 port.cc:153] oneDNN custom operations are on. You may see slightly",
    "E0000 00:00:1796455040.065946   15090 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
    "W0000 00:00:1796455040.613087   15090 util.cc:163] Not handling type DT_DOUBLE",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow",
    "WARNING:tensorflow:5 out of the last 5 calls to <function f at 0x7f> triggered tf.function retracing.",
    "/venv/lib/python3.12/site-packages/keras/src/layers/core/dense.py:93: UserWarning: Do not pass an input_shape",
]
OURS = ["edgeport: warning: serving on 0.0.0.0", "fashion_cnn  tflite_int8  litert  FAIL  1.40% flips",
        "W0000 is not a prefix of ours unless it is absl's: W0000 alone", "  indented line of a table"]


def test_the_pattern_knows_tensorflow_from_edgeport():
    assert all(NATIVE_LINE.match(line) for line in TF_LINES)
    assert not any(NATIVE_LINE.match(line) for line in OURS)


def _noisy() -> str:
    """Writes like TensorFlow does (fd 2 from native code, a Python logger, a child) and like edgeport."""
    os.write(2, "".join(line + "\n" for line in TF_LINES[:5]).encode())
    logging.getLogger("tensorflow").warning("5 out of the last 5 calls triggered tf.function retracing.")
    os.write(2, (TF_LINES[6] + "\n  warnings.warn(\n").encode())
    child = ("import os; os.write(2, b'W0000 00:00:1.5   7 util.cc:163] child\\n'); "
             "print('child progress line', file=__import__('sys').stderr)")
    subprocess.run([sys.executable, "-c", child], check=True)
    print("edgeport: warning: our own line", file=sys.stderr, flush=True)
    return "the result"


@pytest.fixture
def tf_logger():
    """TensorFlow's Python logger as TensorFlow sets it up: a handler on the process's stderr (fd 2)."""
    logger = logging.getLogger("tensorflow")
    level, disabled = logger.level, logger.disabled  # a converter imported earlier (tf2onnx) may have set them
    logger.setLevel(logging.WARNING)
    logger.disabled = False
    handler = logging.StreamHandler(_Fd2())
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
    logger.addHandler(handler)
    yield
    logger.removeHandler(handler)
    logger.setLevel(level)
    logger.disabled = disabled


class _Fd2:
    """sys.stderr outside pytest: text written to file descriptor 2."""

    def write(self, text: str) -> None:
        os.write(2, text.encode())

    def flush(self) -> None:
        pass


def test_native_lines_go_to_the_log_and_ours_to_the_terminal(tmp_path, capfd):
    log = tmp_path / "native.log"
    with native_to_log("a command", log):
        os.write(2, b"W0000 00:00:1796455040.613087   15090 util.cc:163] Not handling type DT_DOUBLE\n")
        print("edgeport line", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-c", "import sys; print('child line', file=sys.stderr)"], check=True)
    assert capfd.readouterr().err.splitlines() == ["edgeport line", "child line"]
    assert "===== a command =====" in log.read_text() and "DT_DOUBLE" in log.read_text()
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"  # fd 2 is the terminal again


def test_every_command_is_quiet(monkeypatch, tmp_path, capfd, tf_logger):
    """`edgeport COMMAND`: what TensorFlow writes lands in the log, edgeport's lines on the terminal."""
    monkeypatch.setenv("EDGEPORT_DATA_HOME", str(tmp_path))
    monkeypatch.setitem(cli.COMMANDS, "noisy", (f"{__name__}:_noisy", "writes like TensorFlow"))
    assert cli.main(["noisy"]) == 0
    out, err = capfd.readouterr()
    assert out == "the result\n"
    assert err.splitlines() == ["child progress line", "edgeport: warning: our own line"]
    log = (tmp_path / "logs" / "native.log").read_text()
    assert "===== edgeport noisy =====" in log
    for line in [*TF_LINES[:5], "WARNING:tensorflow:5 out of the last 5", "UserWarning", "warnings.warn(", "child"]:
        assert line in log, line
