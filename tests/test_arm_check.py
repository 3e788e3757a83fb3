"""`make arm-check`: the emulated boards, edgeport[pi] as each board resolves it, the guest commands,
the rows and the table, fast and offline; the real thing (qemu-user, Debian sysroots, ~1 GB of
downloads the first time) only with EDGEPORT_ARM_CHECK=1.
"""
from __future__ import annotations

import fcntl
import json
import os
import sys
from pathlib import Path

import pytest

from edgeport.benchmarks.device_info import _cpuinfo, cpu_model, isa_flags
from edgeport.benchmarks.devices import arm_check as ac
from edgeport.benchmarks.devices import boards as bd
from edgeport.benchmarks.devices import pi_sysroot as ps
from edgeport.benchmarks.devices import pi_venv as pv
from edgeport.errors import EdgeportError, UnknownNameError

REPO = Path(__file__).resolve().parents[1]
#: The CPU part number of each qemu -cpu a board uses: the cpuinfo must describe what qemu runs.
QEMU_PARTS = {"cortex-a72": "0xd08", "cortex-a76": "0xd0b", "cortex-a7": "0xc07"}


# -- the boards --------------------------------------------------------------------------------

@pytest.mark.parametrize("board", bd.BOARDS.values(), ids=list(bd.BOARDS))
def test_cpuinfo_describes_the_cpu_qemu_emulates(tmp_path, board):
    text = bd.cpuinfo_text(board)
    assert text.count("processor\t:") == 4 and text.count(f"CPU part\t: {board.cpu.part}\n") == 4
    assert board.cpu.part == QEMU_PARTS[board.qemu_cpu]
    assert text.endswith(f"Model\t\t: {board.model}\n") and "Serial\t\t: " in text
    (tmp_path / "cpuinfo").write_text(text)
    info = _cpuinfo(tmp_path / "cpuinfo")
    assert info["cpu architecture"] == str(board.cpu.architecture)
    flags = isa_flags(info, machine=board.machine)
    assert flags["neon"] and not flags["i8mm"]
    assert cpu_model(info)  # something readable for the device block


def test_board_texts_are_the_ones_the_engines_were_proved_with():
    pi4, pi5, pi32 = (bd.cpuinfo_text(b) for b in (bd.PI4, bd.PI5, bd.PI32))
    assert "Features\t: fp asimd evtstrm crc32 cpuid\n" in pi4 and "Hardware\t: BCM2835" in pi4
    assert "asimddp" not in pi4  # an A72 has no dot product: claiming it makes the engines SIGILL
    assert "asimddp" in pi5 and "CPU variant\t: 0x4" in pi5 and "Hardware" not in pi5  # a Pi 5 prints none
    assert "Revision\t: d04170" in pi5
    assert "model name\t: ARMv7 Processor rev 5 (v7l)" in pi32 and "CPU architecture: 7" in pi32
    assert "neon vfpv3 tls vfpv4 idiva" in pi32 and "asimd" not in pi32


def test_board_expectations():
    for b in (bd.PI4, bd.PI5):
        assert (b.machine, b.debian_arch, b.qemu) == ("aarch64", "arm64", "qemu-aarch64-static")
        assert b.runtimes == ["litert", "onnxruntime"] and not b.system_site_packages
        assert b.expect["ai-edge-litert"] == "==2.3.*" and b.expect["onnxruntime"] == "==1.31.*"
    p = bd.PI32
    assert (p.machine, p.debian_arch, p.qemu, p.qemu_cpu) == ("armv7l", "armhf", "qemu-arm-static", "cortex-a7")
    assert p.runtimes == ["litert"] and p.system_site_packages and "python3-numpy" in p.debian_packages
    assert p.expect == {"tflite-runtime": "==2.14.0", "numpy": ">=1.23,<2"}
    assert "onnxruntime" in p.absent and "ONNX Runtime" in p.not_here
    assert "tensorflow" in bd.FORBIDDEN and "tensorflow-cpu" in bd.FORBIDDEN
    assert bd.PI5.device_name == "Raspberry Pi 5, 64-bit Pi OS (emulated: qemu-aarch64 cortex-a76)"
    with pytest.raises(UnknownNameError, match="pi4, pi5"):
        bd.board("pi3")


# -- edgeport[pi] as the target resolves it -------------------------------------------------------

def pyproject_metadata():
    """The METADATA a wheel of this checkout carries, from pyproject.toml: Requires-Dist lines with
    each extra's marker joined as setuptools joins it (``(MARKER) and extra == "pi"``)."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = ["Metadata-Version: 2.1", "Name: edgeport", "Version: 0.1.0"]
    lines += [f"Requires-Dist: {line}" for line in project["dependencies"]]
    for extra, reqs in project["optional-dependencies"].items():
        for line in reqs:
            req = Requirement(line)
            marker, req.marker = req.marker, None
            lines.append(f"Requires-Dist: {req}; " + (f"({marker}) and " if marker else "") + f'extra == "{extra}"')
    return "\n".join(lines) + "\n"


@pytest.fixture
def wheel(tmp_path):
    """A stand-in wheel: only its METADATA is read (the real one: test_the_real_wheel_...)."""
    import zipfile

    path = tmp_path / "edgeport-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("edgeport-0.1.0.dist-info/METADATA", pyproject_metadata())
    return path


def _env(machine: str, python: str = "3.11.2") -> dict[str, str]:
    from packaging.markers import default_environment

    return {**default_environment(), "platform_machine": machine, "python_full_version": python,
            "python_version": python.rsplit(".", 1)[0], "implementation_version": python, "glibc": "2.36"}


def _reqs(wheel, machine: str, python: str = "3.11.2") -> dict[str, str]:
    from packaging.utils import canonicalize_name

    meta = pv.wheel_metadata(wheel)
    reqs = pv.target_requirements(meta, "pi", _env(machine, python))
    return {canonicalize_name(r.name): str(r.specifier) for r in reqs}


def test_the_guest_marker_environment_is_packagings(tmp_path):
    import subprocess

    from packaging.markers import default_environment

    env = json.loads(subprocess.run([sys.executable, "-I", "-c", pv.MARKER_ENV], capture_output=True, text=True,
                                    check=True).stdout)
    assert env.pop("glibc").startswith("2.")
    assert env == default_environment()


def test_aarch64_resolves_litert_and_onnxruntime_not_tflite_runtime(wheel):
    reqs = _reqs(wheel, "aarch64")
    assert reqs["ai-edge-litert"] == "<2.4,>=2.3" and reqs["onnxruntime"] == "<1.32,>=1.31"
    assert reqs["numpy"] == ">=1.23" and "pillow" in reqs and "flatbuffers" in reqs
    assert "tflite-runtime" not in reqs and not any(n.startswith("tensorflow") for n in reqs)


def test_armv7l_resolves_tflite_runtime_on_numpy_1(wheel):
    reqs = _reqs(wheel, "armv7l")
    assert reqs["tflite-runtime"] == "==2.14.0" and reqs["numpy"] == "<2,>=1.23"  # merged, one per name
    assert "ai-edge-litert" not in reqs and "onnxruntime" not in reqs
    assert "tflite-runtime" not in _reqs(wheel, "armv7l", "3.12.1")  # no wheel for Python 3.12


def test_the_host_would_have_resolved_the_x86_half(wheel):
    # what `pip download --platform ...` on this host evaluates: the reason for computing it ourselves
    assert "tflite-runtime" not in _reqs(wheel, "x86_64") and "onnxruntime" in _reqs(wheel, "x86_64")


def test_wheel_platforms_list_every_manylinux_tag_up_to_the_guest_glibc():
    tags = pv.wheel_platforms("aarch64", "2.36")
    assert tags[0] == "manylinux2014_aarch64"
    assert tags[1:] == [f"manylinux_2_{n}_aarch64" for n in range(17, 37)]  # _2_27: ai-edge-litert 2.x
    arm = pv.wheel_platforms("armv7l", "2.36")
    assert arm[0] == "linux_armv7l" and "manylinux_2_34_armv7l" in arm  # tflite-runtime 2.14.0
    with pytest.raises(ps.SetupError, match="glibc 2.16"):
        pv.wheel_platforms("aarch64", "2.16")


def test_download_command_targets_the_guest(tmp_path, wheel):
    reqs = pv.target_requirements(pv.wheel_metadata(wheel), "pi", _env("aarch64"))
    cmd = pv.download_command(reqs, _env("aarch64"), tmp_path, deps=True)
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"] and "--only-binary=:all:" in cmd
    assert cmd[cmd.index("--python-version") + 1] == "3.11" and "--no-deps" not in cmd
    assert "manylinux_2_27_aarch64" in cmd and "ai-edge-litert<2.4,>=2.3" in cmd
    cmd32 = pv.download_command(reqs, _env("armv7l"), tmp_path, deps=False)
    assert "--no-deps" in cmd32 and "linux_armv7l" in cmd32


def test_source_fingerprint_follows_every_packaged_file(tmp_path):
    (tmp_path / "pkg/sub").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text('[tool.setuptools]\npackage-dir = {"x" = "pkg"}\n')
    (tmp_path / "pkg/sub/a.py").write_text("A = 1\n")
    first = pv.source_fingerprint(tmp_path)
    (tmp_path / "pkg/sub/__pycache__").mkdir()
    (tmp_path / "pkg/sub/__pycache__/a.cpython-311.pyc").write_bytes(b"x")
    assert pv.source_fingerprint(tmp_path) == first
    (tmp_path / "pkg/sub/a.py").write_text("A = 2\n")  # a sub-package: the old fingerprint missed it
    assert pv.source_fingerprint(tmp_path) != first


@pytest.mark.slow
def test_the_real_wheel_resolves_like_pyproject_says(tmp_path):
    """`pip wheel --no-deps` of this checkout (from a copy, as the check builds it): its METADATA
    gives every board the requirements the unit tests above derive from pyproject.toml."""
    import zipfile

    before = sorted(p.name for p in REPO.iterdir())
    try:
        real, _ = pv.edgeport_wheel(REPO, tmp_path)
    except ps.SetupError as exc:
        pytest.skip(f"pip wheel of the checkout failed (offline? setuptools comes from the index): {exc}")
    assert sorted(p.name for p in REPO.iterdir()) == before  # no build/ or egg-info left in the checkout
    assert "edgeport/benchmarks/devices/pi_venv.py" in zipfile.ZipFile(real).namelist()
    ours = tmp_path / "pyproject.whl"
    with zipfile.ZipFile(ours, "w") as z:
        z.writestr("x.dist-info/METADATA", pyproject_metadata())
    for machine, python in (("aarch64", "3.11.2"), ("armv7l", "3.11.2"), ("armv7l", "3.12.1"), ("x86_64", "3.11.2")):
        assert _reqs(real, machine, python) == _reqs(ours, machine, python)


# -- the sysroot and the commands ----------------------------------------------------------------

def test_alternatives_links_for_blas_and_lapack(tmp_path):
    lib = tmp_path / "usr/lib/arm-linux-gnueabihf"
    for sub, name in (("blas", "libblas.so.3"), ("lapack", "liblapack.so.3")):
        (lib / sub).mkdir(parents=True)
        (lib / sub / name).write_bytes(b"\x7fELF")
    made = ps.link_alternatives(tmp_path)
    assert made == ["usr/lib/arm-linux-gnueabihf/libblas.so.3", "usr/lib/arm-linux-gnueabihf/liblapack.so.3"]
    assert os.readlink(lib / "libblas.so.3") == "blas/libblas.so.3" and (lib / "liblapack.so.3").exists()
    assert ps.link_alternatives(tmp_path) == []


def test_the_ca_bundle_is_written_as_update_ca_certificates_does(tmp_path):
    assert not ps.ca_bundle(tmp_path)
    (tmp_path / "usr/share/ca-certificates/mozilla").mkdir(parents=True)
    for name in ("B.crt", "A.crt"):
        (tmp_path / "usr/share/ca-certificates/mozilla" / name).write_text(f"-----{name}-----\n")
    assert ps.ca_bundle(tmp_path)
    assert (tmp_path / "etc/ssl/certs/ca-certificates.crt").read_text() == "-----A.crt-----\n-----B.crt-----\n"


def test_board_rootfs_is_a_hard_link_copy_with_its_own_cpuinfo(tmp_path):
    base = tmp_path / "debian-arm64"
    (base / "usr/bin").mkdir(parents=True)
    (base / "usr/bin/python3.11").write_bytes(b"\x7fELF")
    (base / "proc").mkdir()
    pi4 = ps.board_image(tmp_path, bd.PI4, base, "b1", "/usr/bin/qemu-aarch64-static")
    pi5 = ps.board_image(tmp_path, bd.PI5, base, "b1", "/usr/bin/qemu-aarch64-static")
    assert (pi4.rootfs / "proc/cpuinfo").read_text() == bd.cpuinfo_text(bd.PI4)
    assert (pi5.rootfs / "proc/cpuinfo").read_text() == bd.cpuinfo_text(bd.PI5)
    assert not (base / "proc/cpuinfo").exists()
    assert (pi5.rootfs / "proc/device-tree/model").read_text() == "Raspberry Pi 5 Model B Rev 1.0\0"  # as firmware
    assert os.stat(pi4.python).st_ino == os.stat(base / "usr/bin/python3.11").st_ino  # no extra disk
    assert ps.stamp_of(pi4.rootfs) and not (pi4.rootfs / "rootfs.stamp").exists()  # beside, not inside
    again = ps.board_image(tmp_path, bd.PI4, base, "b1", "/usr/bin/qemu-aarch64-static")
    assert again.stamp == pi4.stamp and ps.board_image(tmp_path, bd.PI4, base, "b2", "q").stamp != pi4.stamp


def test_host_tools_missing_without_root_print_the_command(monkeypatch):
    monkeypatch.setattr(ps.shutil, "which", lambda tool: None)
    monkeypatch.setattr(ps.os, "geteuid", lambda: 1000)
    with pytest.raises(ps.SetupError, match="apt-get install -y debootstrap qemu-user-static"):
        ps.ensure_host_tools(["qemu-arm-static", "debootstrap"])


def test_one_run_per_cache(tmp_path):
    with ps.locked(tmp_path):
        with open(tmp_path / ".lock") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(tmp_path / ".lock") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released


def test_setup_failures_name_the_step_and_show_the_output():
    with pytest.raises(ps.SetupError, match=r"(?s)guest pip install failed \(exit 1\).*no matching distribution"):
        ps.run([sys.executable, "-c", "import sys; sys.exit('no matching distribution')"],
               "guest pip install failed", timeout=30)


def _etc_apt(tmp_path: Path) -> Path:
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text(
        "# deb http://old.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://amd64-only.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n")
    (etc / "sources.list.d/a-disabled.sources").write_text(
        "Types: deb\nURIs: http://disabled.example/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n")
    (etc / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    (etc / "sources.list.d/other.list.disabled-by-admin").write_text(
        "deb http://ignored.example/debian bookworm main\n")
    return etc


def test_mirror_is_the_enabled_bookworm_main_source_for_the_arch(tmp_path):
    sources = ps.read_apt_sources(_etc_apt(tmp_path))
    assert ps.debian_mirror(sources, arch="armhf") == "http://mirror.example/debian"
    assert ps.debian_mirror(sources, arch="amd64") == "http://amd64-only.example/debian"
    with pytest.raises(ps.SetupError, match="--mirror"):
        ps.debian_mirror(sources, suite="trixie")


# -- what the board has, and the rows --------------------------------------------------------------

def _inventory(venv: Path, **dists: str) -> dict:
    return {"machine": "aarch64", "python": "3.11.2", "cpuinfo": {"CPU part": "0xd08"},
            "edgeport_file": f"{venv}/lib/python3.11/site-packages/edgeport/__init__.py",
            "tensorflow_importable": False,
            "distributions": {k: {"version": v, "location": f"{venv}/lib"} for k, v in dists.items()}}


def test_a_good_pi4_install_has_no_problems(tmp_path):
    inv = _inventory(tmp_path, **{"ai-edge-litert": "2.3.0", "onnxruntime": "1.31.1", "numpy": "2.4.6",
                                  "edgeport": "0.1.0"})
    assert ac.inventory_problems(bd.PI4, inv, tmp_path) == []
    assert ac.engines_installed(bd.PI4, inv) == "ai-edge-litert 2.3.0, onnxruntime 1.31.1, numpy 2.4.6"


def test_install_problems_are_named(tmp_path):
    inv = _inventory(tmp_path, **{"ai-edge-litert": "1.4.0", "numpy": "2.4.6", "tensorflow-cpu": "2.21.0",
                                  "tflite-runtime": "2.14.0", "edgeport": "0.1.0"})
    inv.update(tensorflow_importable=True, edgeport_file="/work/main/edgeport/__init__.py")
    inv["cpuinfo"]["CPU part"] = "0xd0b"
    text = "\n".join(ac.inventory_problems(bd.PI4, inv, tmp_path))
    for expected in ("ai-edge-litert 1.4.0 installed, expected ai-edge-litert==2.3.*", "onnxruntime is not installed",
                     "TensorFlow is installed (tensorflow-cpu 2.21.0)", "tensorflow is importable",
                     "tflite-runtime 2.14.0 is installed", "CPU part 0xd0b, not the board's 0xd08",
                     "imported from /work/main/edgeport/__init__.py"):
        assert expected in text
    pi32 = _inventory(tmp_path, **{"tflite-runtime": "2.14.0", "numpy": "2.0.0", "edgeport": "0.1.0"})
    pi32.update(machine="armv7l", cpuinfo={"CPU part": "0xc07"})
    assert ac.inventory_problems(bd.PI32, pi32, tmp_path) == ["numpy 2.0.0 installed, expected numpy>=1.23,<2"]


def test_the_guest_inventory_runs_on_plain_python():
    inv = pv.inventory()
    assert inv["machine"] and inv["python"] and "numpy" in inv["distributions"]
    assert inv["tensorflow_importable"] in (True, False) and inv["edgeport_file"].endswith("__init__.py")


PAIRS = [("tflite_fp32", "litert", "model_fp32.tflite"), ("tflite_int8", "litert", "model_int8.tflite"),
         ("onnx", "onnxruntime", "model.onnx"), ("onnx_int8", "onnxruntime", "model_int8.onnx")]


def _result(fmt: str, runtime: str, engine: str, status: str = "pass", **figures) -> dict:
    return {"format": fmt, "runtime": runtime, "engine": engine, "status": status, "precision": "float32",
            "figures": {"max_abs_diff": 1e-7, "agreement": 1.0, "confident_agreement": 1.0, "kl_divergence": 1e-9,
                        "accuracy_delta_points": 0.0, **figures},
            "failures": [] if status == "pass" else [{"type": "GateFailure", "message": "agreement 90% < 95%"}]}


def test_expected_pairs_come_from_the_bundle(tmp_path):
    (tmp_path / "bundle.json").write_text(json.dumps({"artifacts": ["tflite_fp32", "onnx"]}))
    (tmp_path / "manifest.json").write_text(json.dumps({"artifacts": {
        "tflite_fp32": {"file": "model_fp32.tflite"}, "onnx": {"file": "model.onnx"}}}))
    assert ac.expected_pairs(tmp_path) == [("tflite_fp32", "litert", "model_fp32.tflite"),
                                           ("onnx", "onnxruntime", "model.onnx")]


def test_rows_one_per_pair_skipped_missing_fallback_and_failures():
    verify = {"results": [_result("tflite_fp32", "litert", "tflite_runtime 2.14.0", tolerance=5e-6),
                          _result("tflite_int8", "litert", "tflite_runtime 2.14.0", "fail")]}
    rows = ac.rows_from_verify("m", bd.PI32, PAIRS, verify, "unused")
    got = {(r.format, r.runtime): r for r in rows}
    assert got[("tflite_fp32", "litert")].status == "pass"
    assert got[("tflite_int8", "litert")].status == "fail" and "agreement 90%" in got[("tflite_int8", "litert")].reason
    assert got[("onnx", "onnxruntime")].status == "skipped" and "armv7l" in got[("onnx", "onnxruntime")].reason
    pi4 = ac.rows_from_verify("m", bd.PI4, PAIRS, verify, "verify crashed")
    fallback = next(r for r in pi4 if r.format == "tflite_fp32")
    assert fallback.status == "fail" and "expected ai_edge_litert 2.3." in fallback.reason
    missing = next(r for r in pi4 if r.format == "onnx")
    assert missing.status == "not run" and missing.reason == "verify crashed" and missing.failed
    assert all(r.status == "not run" for r in ac.rows_from_verify("m", bd.PI4, PAIRS, None, "board not set up"))


def _report(tmp_path: Path) -> ac.ArmCheckReport:
    verify = {"results": [_result(f, r, "ai_edge_litert 2.3.0" if r == "litert" else "onnxruntime 1.31.1",
                                  tolerance=5.9e-6, tolerance_diff=6.6e-7) for f, r, _ in PAIRS]}
    verify32 = {"results": [_result(f, r, "tflite_runtime 2.14.0") for f, r, _ in PAIRS[:2]]}
    report = ac.ArmCheckReport(["m"])
    for b, v in ((bd.PI4, verify), (bd.PI32, verify32)):
        report.boards.append(ac.BoardRun(b, setup_s=12.0, verify_s={"m": 30.0},
                                         inventory=_inventory(tmp_path, numpy="1.24.2")))
        report.rows += ac.rows_from_verify("m", b, PAIRS, v, "")
    return report


def test_table_lists_every_row_with_figures_gate_and_the_timing_note(tmp_path):
    report = _report(tmp_path)
    assert report.ok
    text = report.render()
    for expected in ("6.60e-07 <= 5.90e-06", "litert (ai_edge_litert 2.3.0)", "litert (tflite_runtime 2.14.0)",
                     "n/a", "no ONNX Runtime wheel for armv7l", "not a Raspberry Pi's speed",
                     "never reported as latency",
                     "Raspberry Pi 2, 32-bit Pi OS (emulated: qemu-arm cortex-a7)", "all rows pass"):
        assert expected in text
    assert text.count("PASS") == 6 and sum(line.endswith(" n/a") for line in text.splitlines()) == 2
    report.rows[1].status, report.rows[1].reason = "fail", "agreement 90% < 95%"
    text = report.render()
    assert not report.ok and "FAIL" in text and "m/tflite_int8/pi4/litert: FAIL: agreement" in text


def test_a_board_that_could_not_be_set_up_fails_the_check(tmp_path):
    report = _report(tmp_path)
    report.boards[1].error = "debootstrap armhf failed"
    assert not report.ok and "pi32: setup failed: debootstrap armhf failed" in report.render()
    assert not ac.ArmCheckReport(["m"]).ok  # nothing ran at all


def test_reports_are_written_and_mergeable_per_board(tmp_path):
    from edgeport.benchmarks.report.command import merge_reports

    report = _report(tmp_path)
    files = ac.write_results(report, tmp_path)
    assert files[0] == tmp_path / "arm-check/arm_check.json"
    saved = json.loads(files[0].read_text())
    assert saved["ok"] and len(saved["rows"]) == 8 and "latency" in saved["timing_note"]
    assert saved["boards"][0]["device"]["emulated"] and saved["boards"][0]["setup_s"] == 12.0
    per_board = [tmp_path / "report/emulated-pi4/report.json", tmp_path / "report/emulated-pi32/report.json"]
    assert files[1:] == per_board
    pi32 = json.loads(per_board[1].read_text())
    assert [r["format"] for r in pi32["models"]["m"]["rows"]] == ["tflite_fp32", "tflite_int8"]  # skipped: absent
    merged = merge_reports([str(p) for p in per_board], out=tmp_path / "merged")
    assert list(merged.data["devices"]) == [bd.PI4.device_name, bd.PI32.device_name]
    assert {r["gate"] for r in merged.rows} == {"pass"} and not any("p50_us" in r for r in merged.rows)


def test_cli_flags_come_from_the_signature():
    from edgeport.cli import build_parser

    args = build_parser(ac.run_arm_check, "arm-check").parse_args(["fashion_mlp", "--boards", "pi4", "pi32",
                                                                    "--timeout", "9"])
    assert args.models == ["fashion_mlp"] and args.boards == ["pi4", "pi32"] and args.timeout == 9.0
    assert args.cache is None and args.samples == 300


def test_bad_arguments_are_errors_before_anything_runs(tmp_path):
    with pytest.raises(UnknownNameError):
        ac.run_arm_check(["m"], out=tmp_path, boards=["pi9"])
    with pytest.raises(EdgeportError, match="must be positive"):
        ac.run_arm_check(["m"], out=tmp_path, timeout=0)


# -- the bundle README's commands, typed on the board ---------------------------------------------

def _bundle_folder(tmp_path: Path, offline: str | None) -> Path:
    from edgeport.export.targets import rpi_install

    folder = tmp_path / "m-rpi"
    (folder / "wheels").mkdir(parents=True)
    (folder / "README.md").write_text("# m\n\n```bash\n" + rpi_install.usage("m-rpi", bool(offline), "model.tflite")
                                      .split("```bash\n", 1)[1])
    (folder / "install.sh").write_text(rpi_install.INSTALL_SH)
    if offline:
        (folder / "wheels/OFFLINE").write_text(offline + "\n")
    return folder


def test_the_readme_lines_are_typed_verbatim(tmp_path):
    install, verify = ac.readme_lines(_bundle_folder(tmp_path, "aarch64 3.11"))
    assert install == "tar xzf m-rpi.tar.gz && sh m-rpi/install.sh"
    assert verify == "~/edgeport/bin/edgeport verify --bundle m-rpi.tar.gz"
    (tmp_path / "m-rpi/README.md").write_text("# nothing to type\n")
    with pytest.raises(EdgeportError, match="no `tar xzf"):
        ac.readme_lines(tmp_path / "m-rpi")


def test_an_offline_bundle_installs_with_no_network_only_on_its_own_boards(tmp_path):
    folder = _bundle_folder(tmp_path, "aarch64 3.11")
    assert ac.offline_for(folder, bd.PI4) is None and ac.offline_for(folder, bd.PI5) is None
    assert ac.offline_for(folder, bd.PI32) == "the bundle's wheels are for aarch64 3.11, pi32 is armv7l 3.11"
    assert "no board" in ac.offline_for(_bundle_folder(tmp_path / "online", None), bd.PI4)
    (folder / "install.sh").write_text("python3 -m pip install --find-links wheels x.whl\n")
    with pytest.raises(EdgeportError, match="no `--no-index --find-links`"):
        ac.offline_for(folder, bd.PI4)


def test_a_board_line_is_a_chroot_with_no_network_and_the_boards_cpu(tmp_path, monkeypatch):
    from edgeport.benchmarks.devices import binfmt, board_shell

    monkeypatch.setattr(binfmt, "ensure", lambda qemu: None)
    image = ps.BoardImage(bd.PI5, tmp_path / "pi5/rootfs", "/usr/bin/qemu-aarch64-static")
    cmd, env = board_shell.argv(image, "sh m-rpi/install.sh", offline=True)
    assert cmd[0].endswith("unshare") and "--net" in cmd and cmd[-4:] == [
        str(image.rootfs), "/bin/sh", "-c", "cd /home/pi && sh m-rpi/install.sh"]
    assert env["QEMU_CPU"] == "cortex-a76" and env["HOME"] == "/home/pi" and env["PIP_NO_INDEX"] == "1"
    assert env["https_proxy"] == "http://127.0.0.1:9" and "PYTHONPATH" not in env
    (tmp_path / "ca.crt").write_text("site CA\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.crt"))
    online, env = board_shell.argv(image, "true", offline=False)
    assert "--net" not in online and "PIP_NO_INDEX" not in env
    assert (image.rootfs / env["PIP_CERT"].lstrip("/")).read_text() == "site CA\n"  # this network's trust


def test_binfmt_handlers_are_read_and_their_problems_named(tmp_path, monkeypatch):
    from edgeport.benchmarks.devices import binfmt

    said = binfmt.problem("/usr/bin/qemu-aarch64-static", tmp_path)
    assert said == f"no binfmt_misc handler qemu-aarch64 (in {tmp_path})"
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n"
                                           "flags: PO\noffset 0\n")
    assert "lacks the F flag" in binfmt.problem("qemu-aarch64-static", tmp_path)
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /x\nflags: POF\noffset 0\n")
    assert binfmt.problem("qemu-aarch64-static", tmp_path) is None
    monkeypatch.setattr(binfmt.os, "geteuid", lambda: 1000)
    with pytest.raises(binfmt.BinfmtUnavailable, match="as root: mount -t binfmt_misc"):
        binfmt.ensure("qemu-arm-static", tmp_path)


def test_pi_emulation_is_an_alias():
    from edgeport.benchmarks.devices import pi_emulation

    assert pi_emulation.main is ac.main


# -- the real thing (slow, opt-in) -------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("EDGEPORT_ARM_CHECK") != "1",
                    reason="emulated Raspberry Pis: Debian sysroots + Arm wheels (~1 GB the first time, minutes "
                           "under qemu); set EDGEPORT_ARM_CHECK=1 (or run `make arm-check`)")
def test_arm_check_proves_a_bundle_on_every_emulated_board(tmp_path):
    import keras
    import numpy as np

    from edgeport.benchmarks.verify.command import verify_model
    from edgeport.export.pipeline import export_model

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 1000)
    x = rng.integers(0, 50, (1000, 12, 12, 1))
    for i, k in enumerate(y):
        x[i, 3 * k:3 * k + 3] += 180
    x = x.astype(np.uint8)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Rescaling(1 / 255.0), keras.layers.Flatten(),
                              keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x[:800], y[:800], epochs=4, verbose=0)
    model.save(tmp_path / "arm_mlp.keras")
    np.save(tmp_path / "cal.npy", x[:100].astype(np.float32))
    np.savez(tmp_path / "test.npz", x_test=x[800:], y_test=y[800:])
    out = tmp_path / "out"
    assert export_model(str(tmp_path / "arm_mlp.keras"), formats=["tflite_fp32", "tflite_int8", "onnx", "onnx_int8"],
                        out=out, calibration_data=str(tmp_path / "cal.npy")).ok
    assert verify_model("arm_mlp", out=out, data_npz=str(tmp_path / "test.npz")).ok

    report = ac.run_arm_check(["arm_mlp"], out=out, samples=100)
    assert report.ok, report.render()
    by_board = {b.board.key: b for b in report.boards}
    assert set(by_board) == {"pi4", "pi5", "pi32"}
    assert by_board["pi4"].install["arm_mlp"]["offline"] and by_board["pi4"].install["arm_mlp"]["venv_bytes"] > 0
    for key, b in by_board.items():
        rows = [r for r in report.rows if r.board == key]
        ran = [r for r in rows if r.status == "pass"]
        assert len(rows) == 4 and len(ran) == (2 if key == "pi32" else 4)
        assert all(r.engine.startswith(b.board.engines[r.runtime]) for r in ran)
        dists = b.inventory["distributions"]
        assert b.inventory["machine"] == b.board.machine and not any(n.startswith("tensorflow") for n in dists)
    assert by_board["pi32"].inventory["distributions"]["numpy"]["version"].startswith("1.")
    assert json.loads((out / "arm-check" / ac.RESULT_FILE).read_text())["ok"]
