"""The emulated Raspberry Pi: pure parts fast and offline; the full emulation only on request.

The full run (qemu-user, an arm64 Debian sysroot, ~400 MB of downloads) is marked slow and runs
only with EDGEPORT_PI_EMULATION=1 set (`make pi-emulation` is the usual way to run it).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeport.benchmarks.devices import pi_emulation as pe
from edgeport.benchmarks.devices import pi_sysroot as ps
from edgeport.benchmarks.device_info import _cpuinfo, cpu_model, isa_flags
from edgeport.errors import EdgeportError

REPO = Path(__file__).resolve().parents[1]


# -- the board ---------------------------------------------------------------------------------

def test_cpuinfo_is_a_pi4_cortex_a72_as_edgeport_reads_it(tmp_path):
    text = ps.cpuinfo_text()
    assert text.count("processor\t:") == 4
    assert text.count("Features\t: fp asimd evtstrm crc32 cpuid\n") == 4
    assert "CPU part\t: 0xd08" in text and "CPU implementer\t: 0x41" in text
    assert "asimddp" not in text and "Hardware\t: BCM2711" in text
    (tmp_path / "cpuinfo").write_text(text)
    info = _cpuinfo(tmp_path / "cpuinfo")
    assert cpu_model(info) == "BCM2711"
    flags = isa_flags(info, machine="aarch64")
    assert flags["neon"] and not flags["dotprod"] and not flags["i8mm"]


def test_wheel_platforms_cover_every_manylinux_tag_up_to_bookworm_glibc():
    tags = ps.wheel_platforms()
    assert tags[0] == "manylinux2014_aarch64"
    assert tags[1:] == [f"manylinux_2_{n}_aarch64" for n in range(17, 37)]
    assert "manylinux_2_27_aarch64" in tags  # ai-edge-litert 2.x; without it pip picks 1.4.0


def test_guest_command_runs_the_sysroot_python_under_qemu_with_the_board_cpu(tmp_path):
    root = ps.Sysroot(tmp_path)
    cmd = root.command("-m", "x")
    assert cmd[:5] == ["qemu-aarch64-static", "-cpu", "cortex-a72", "-L", str(tmp_path / "rootfs")]
    assert cmd[5] == str(tmp_path / "rootfs/usr/bin/python3.11") and cmd[6:] == ["-m", "x"]
    assert root.env()["PYTHONPATH"] == f"{tmp_path / 'edgeport'}:{tmp_path / 'site-packages'}"


def test_write_cpuinfo_replaces_the_proc_symlink(tmp_path):
    root = ps.Sysroot(tmp_path)
    root.rootfs.mkdir()
    (root.rootfs / "proc").symlink_to("/proc")
    root.write_cpuinfo()
    assert not (root.rootfs / "proc").is_symlink()
    assert (root.rootfs / "proc/cpuinfo").read_text() == ps.cpuinfo_text()


# -- the mirror apt uses -----------------------------------------------------------------------

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
        "Types: deb\n# http://snapshot.example/archive/debian/20250520T000000Z\n"
        "URIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n")
    (etc / "sources.list.d/other.list.disabled-by-admin").write_text(
        "deb http://ignored.example/debian bookworm main\n")
    (etc / "sources.list.d/cloud.list").write_text("deb https://cloud.example/apt cloud-sdk-bookworm main\n")
    return etc


def test_mirror_is_the_enabled_arm64_capable_bookworm_main_source(tmp_path):
    sources = ps.read_apt_sources(_etc_apt(tmp_path))
    assert ps.debian_mirror(sources) == "http://mirror.example/debian"
    assert ps.debian_mirror(sources, arch="amd64") == "http://amd64-only.example/debian"
    with pytest.raises(ps.SetupError, match="--mirror"):
        ps.debian_mirror(sources, suite="trixie")


def test_sources_parsers_read_options_and_continuations():
    one = ps.parse_sources_list("deb [ arch=arm64,amd64 ] http://m.example/debian bookworm main contrib")[0]
    assert one.architectures == ("arm64", "amd64") and one.components == ("main", "contrib")
    para = ps.parse_deb822("Types: deb\nURIs: http://m.example/debian\nSuites: bookworm\n bookworm-updates\n"
                           "Components: main\n")[0]
    assert para.suites == ("bookworm", "bookworm-updates") and para.enabled


def test_missing_host_tools_without_root_print_the_command(monkeypatch):
    monkeypatch.setattr(ps.shutil, "which", lambda tool: None)
    monkeypatch.setattr(ps.os, "geteuid", lambda: 1000)
    with pytest.raises(ps.SetupError, match="apt-get install -y debootstrap qemu-user-static"):
        ps.ensure_host_tools()


def test_source_fingerprint_follows_the_mapped_package_files(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pyproject.toml").write_text('[tool.setuptools]\npackage-dir = {"x" = "pkg"}\n')
    (tmp_path / "pkg/a.py").write_text("A = 1\n")
    first = ps.source_fingerprint(tmp_path)
    (tmp_path / "pkg/notes.txt").write_text("ignored")
    assert ps.source_fingerprint(tmp_path) == first
    (tmp_path / "pkg/a.py").write_text("A = 2\n")
    assert ps.source_fingerprint(tmp_path) != first


# -- comparison and tolerance ------------------------------------------------------------------

def _probs(n: int = 50, seed: int = 0) -> np.ndarray:
    z = np.random.default_rng(seed).normal(size=(n, 10)).astype(np.float32)
    return (np.exp(z) / np.exp(z).sum(1, keepdims=True)).astype(np.float32)


def test_float_outputs_pass_within_a_few_ulp_and_fail_beyond_1e5():
    ref = _probs()
    tol = pe.tolerance_for(None)
    near = pe.compare(ref, ref * np.float32(1 + 4 * 2 ** -23), tol, labels=ref.argmax(1))
    assert near["status"] == "pass" and near["agreement"] == 1.0 and near["accuracy"] == 1.0
    assert not near["identical"] and near["max_abs_diff"] < 1e-6
    off = ref.copy()
    off[3, 2] += 2e-5
    assert pe.compare(ref, off, tol)["status"] == "fail"


def test_quantized_outputs_allow_exactly_one_step():
    step = 1 / 256
    ref = np.round(_probs() / step) * step
    tol = pe.tolerance_for(step)
    one = ref.copy()
    one[0, 0] += step
    f = pe.compare(ref, one, tol, step=step)
    assert f["status"] == "pass" and f["max_steps"] == 1.0 and f["differing_values"] == 1
    one[1, 1] -= 2 * step
    assert pe.compare(ref, one, tol, step=step)["status"] == "fail"


def test_shape_mismatch_and_nonfinite_fail():
    ref, tol = _probs(), pe.tolerance_for(None)
    assert pe.compare(ref, ref[:, :5], tol)["status"] == "fail"
    bad = ref.copy()
    bad[0, 0] = np.nan
    f = pe.compare(ref, bad, tol)
    assert f["status"] == "fail" and f["max_abs_diff"] == float("inf")


def test_top1_agreement_counts_flips():
    ref = _probs()
    flipped = ref.copy()
    flipped[0] = flipped[0][::-1]
    f = pe.compare(ref, flipped, pe.tolerance_for(None))
    assert f["disagreements"] == 1 and f["agreement"] == pytest.approx(0.98) and f["status"] == "fail"


# -- the emulated process: crashes, hangs and errors become messages ----------------------------

class FakeRoot:
    """A 'sysroot' whose python is this host's, running a given snippet instead of the guest."""

    def __init__(self, tmp_path: Path, code: str):
        self.rootfs, self.code = tmp_path, code

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-c", self.code, *args]

    def env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin")}


@pytest.mark.parametrize("code, timeout, pattern", [
    ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", 30, r"died with SIGSEGV \(signal 11\).*cpuinfo"),
    ("import time; time.sleep(30)", 0.5, r"did not finish in 0.5 s \(killed\)"),
    ("import sys; sys.exit('ImportError: no module named ai_edge_litert')", 30, "(?s)failed.*ai_edge_litert"),
])
def test_guest_failures_are_clear_errors_naming_the_artifact(tmp_path, code, timeout, pattern):
    with pytest.raises(EdgeportError, match=pattern) as info:
        pe.run_guest(FakeRoot(tmp_path, code), Path("model_int8.tflite"), tmp_path / "x.npy", tmp_path, timeout)
    assert str(info.value).startswith("model_int8.tflite:")


def test_guest_outputs_come_back(tmp_path):
    code = ("import json, sys, numpy as np; job = json.load(open(sys.argv[-1]));"
            "np.save(job['outputs'], np.ones((2, 10), np.float32));"
            "open(job['result'], 'w').write(json.dumps({'engine': 'fake', 'machine': 'aarch64'}))")
    out, info = pe.run_guest(FakeRoot(tmp_path, code), Path("m.tflite"), tmp_path / "x.npy", tmp_path, 30)
    assert out.shape == (2, 10) and info["engine"] == "fake"
    assert json.loads((tmp_path / "job.json").read_text())["artifact"].endswith("m.tflite")


def test_a_tampered_artifact_fails_before_any_engine_runs(tmp_path):
    (tmp_path / "model_fp32.tflite").write_bytes(b"changed after export")
    entry = {"file": "model_fp32.tflite", "sha256": "0" * 64, "precision": "float32"}
    row, device = pe._artifact(FakeRoot(tmp_path, "raise SystemExit(9)"), tmp_path, "tflite_fp32", entry,
                               np.zeros((1, 28, 28, 1), np.float32), None, tmp_path / "x.npy", tmp_path, 30)
    assert row["status"] == "fail" and "sha256" in row["error"] and device is None


# -- outputs -----------------------------------------------------------------------------------

def test_report_json_is_mergeable(tmp_path):
    from edgeport.benchmarks.report.command import merge_reports

    rows = [{"format": "tflite_int8", "precision": "int8", "size_bytes": 100, "status": "pass",
             "agreement": 1.0, "max_abs_diff": 0.0, "accuracy": 0.87, "engine": "ai_edge_litert 2.3.0"}]
    mine = pe._write_report(tmp_path, {"fashion_mlp": {"results": rows}}, {"machine": "aarch64"})
    assert mine == tmp_path / "report/pi-emulated/report.json"
    pe._write_report(tmp_path, {"fashion_cnn": {"results": rows}}, {"machine": "aarch64"})
    assert set(json.loads(mine.read_text())["models"]) == {"fashion_mlp", "fashion_cnn"}  # kept
    merged = merge_reports([str(mine)], out=tmp_path / "merged")
    assert list(merged.data["devices"]) == [pe.DEVICE_NAME]
    assert merged.rows[0]["device"] == pe.DEVICE_NAME and merged.rows[0]["gate"] == "pass"


def test_cli_flags_come_from_the_signature():
    from edgeport.cli import build_parser

    args = build_parser(pe.run_pi_emulation, "pi").parse_args(["fashion_mlp", "--n", "20", "--timeout", "9"])
    assert args.models == ["fashion_mlp"] and args.n == 20 and args.timeout == 9.0 and args.cache is None


# -- the real thing (slow, opt-in) -------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("EDGEPORT_PI_EMULATION") != "1",
                    reason="full Pi emulation downloads ~400 MB; set EDGEPORT_PI_EMULATION=1")
def test_every_tflite_artifact_matches_x86_on_an_emulated_pi(tmp_path):
    src = REPO / "artifacts" / "fashion_mlp"
    if not (src / "manifest.json").exists():
        pytest.skip(f"{src}: not exported (run `make export`)")
    dest = tmp_path / "fashion_mlp"
    dest.mkdir()
    for f in [*src.glob("*.tflite"), *src.glob("*.json")]:
        shutil.copy2(f, dest / f.name)
    report = pe.run_pi_emulation(["fashion_mlp"], out=tmp_path, n=100)
    results = report.models["fashion_mlp"]["results"]
    assert report.ok, report.render()
    assert len(results) == len(list(src.glob("*.tflite")))
    for r in results:
        assert r["machine"] == "aarch64" and r["engine"].startswith("ai_edge_litert 2.3")
        assert not r["tensorflow_installed"] and not r["tensorflow_imported"]
    saved = json.loads((dest / pe.RESULT_FILE).read_text())
    assert saved["device"]["name"] == pe.DEVICE_NAME and saved["device"]["machine"] == "aarch64"
