"""Send the converters' native stdout/stderr (TensorFlow, absl, tf2onnx) to a log file, not the terminal."""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

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
