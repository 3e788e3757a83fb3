"""Send the converters' native stdout/stderr (TensorFlow, absl, tf2onnx) to a log file, not the terminal."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeport.files import atomic_path
from edgeport.names import data_home

LOG_NAME = "export.log"


class NativeLog:
    """Send the converters' native stdout/stderr (TF, absl, tf2onnx) to a log file, not the terminal."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="edgeport-log-")
        self.path = Path(self._dir.name) / LOG_NAME

    @contextlib.contextmanager
    def capture(self, title: str) -> Iterator[None]:
        with _redirect(self.path, title):
            yield

    def keep(self, dest: Path) -> Path:
        with atomic_path(dest) as tmp:
            shutil.copyfile(self.path, tmp)
        return dest

    def close(self) -> None:
        self._dir.cleanup()


@contextlib.contextmanager
def quiet(title: str) -> Iterator[Path]:
    """TensorFlow's native chatter (absl, oneDNN, CUDA probing) during the block goes to
    ``$EDGEPORT_DATA_HOME/logs/native.log``, not the terminal: quiet by default, kept for a look."""
    home = data_home()
    path = home / "logs" / "native.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        yield path
        return
    with _redirect(path, title):
        yield path


@contextlib.contextmanager
def _redirect(path: Path, title: str) -> Iterator[None]:
    """File descriptors 1 and 2 (what native code writes to) appended to ``path`` for the block."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "ab") as fh:
        fh.write(f"\n===== {title} =====\n".encode())
        fh.flush()
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed or broken Python stream: fds are restored anyway
                stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


#: Lines that are TensorFlow's, absl's or oneDNN's, not edgeport's: absl's native prefix (``W0000 00:00:...
#: util.cc:163] Not handling type DT_DOUBLE``, oneDNN's and the CUDA probe's), absl's pre-init notice, the
#: CPU feature guard's second line, TensorFlow's and absl's Python loggers (retracing warnings), and Python
#: warnings raised inside those packages (with the ``warnings.warn(`` line that follows them).
NATIVE_LINE = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.+-]+:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: "
    r"|(?:WARNING|INFO|ERROR):(?:tensorflow|absl|tf2onnx|h5py):"
    r"|\S*/(?:tensorflow|tf_keras|keras|absl|tf2onnx|ai_edge_\w+)/\S+:\d+: \w*Warning: )")
_WARNING_SOURCE = re.compile(r"^\S+:\d+: \w*Warning: ")


@contextlib.contextmanager
def native_to_log(title: str, path: Path | None = None) -> Iterator[Path]:
    """For the block, what reaches file descriptor 2 (the process's, its threads' and its children's
    stderr) is sorted line by line: TensorFlow's, absl's and oneDNN's lines (:data:`NATIVE_LINE`) are
    appended to ``path`` (default ``$EDGEPORT_DATA_HOME/logs/native.log``), every other line reaches the
    terminal as it came. Nothing of edgeport's own output moves; Python's ``sys.stderr`` is untouched."""
    path = Path(path) if path else data_home() / "logs" / "native.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        log = open(path, "ab")  # closed in the finally below
    except OSError:  # no writable data home: the lines stay where they were
        yield path
        return
    try:
        terminal = os.dup(2)
    except OSError:  # no stderr at all (a daemon): nothing to sort
        log.close()
        yield path
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    log.write(f"\n===== {title} =====\n".encode())
    log.flush()
    read_end, write_end = os.pipe()
    sorter = threading.Thread(target=_sort_lines, args=(read_end, terminal, log), name="edgeport-native-log",
                              daemon=True)
    sorter.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield path
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(terminal, 2)  # our write end closes; the sorter ends at EOF (or once lingering children exit)
        sorter.join(timeout=5)
        os.close(terminal)
        log.close()


def _sort_lines(read_end: int, terminal: int, log: Any) -> None:
    """Read the pipe to its end: each line (ended by a newline or a carriage return) to the log or the terminal."""
    pending, follows_warning = b"", False
    with contextlib.suppress(OSError, ValueError):
        while chunk := os.read(read_end, 1 << 16):
            pending += chunk
            lines = re.split(rb"(?<=[\r\n])", pending)
            pending = lines.pop()
            for line in lines:
                text = line.decode("utf-8", "replace")
                native = bool(NATIVE_LINE.match(text)) or (follows_warning and text.startswith("  "))
                follows_warning = native and bool(_WARNING_SOURCE.match(text))
                if native:
                    log.write(line)
                    log.flush()
                else:
                    os.write(terminal, line)
        if pending:
            os.write(terminal, pending)
    os.close(read_end)


def start_tensorflow() -> None:
    """Import TensorFlow and let it probe its devices with its native start-up lines (absl, oneDNN,
    the CUDA probe's "failed call to cuInit") sent to the native log, not the terminal. Idempotent;
    call it before the first TensorFlow/Keras use in a command that prints to a person."""
    global _STARTED
    if _STARTED:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet("TensorFlow start-up"):
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe runs here, inside the redirect
    _STARTED = True


_STARTED = False
