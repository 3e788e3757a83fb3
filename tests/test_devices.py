"""`edgeport device add|list|check|remove` against a real device: Debian's OpenSSH server started by
this module on loopback (generated keys, its own known_hosts), this machine's plain python3 (no
TensorFlow, no edgeport) as the device's Python. Each fault is one clear line. Then, with no device, the
command line `verify --on` and `bench --on` run there: every option that changes the verdict reaches it,
argv-safe, and one it cannot honour is refused in one line. Seconds in all."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edgeport.cli import main
from edgeport.devices import loopback, probe, remote, ssh
from edgeport.devices.config import Device, DeviceConfigError, load_devices, parse_address
from edgeport.files import sha256_file


@pytest.fixture
def lb(loopback_device):
    return loopback_device  # tests/conftest.py: one sshd per session (skipped, with why, when none can start)


@pytest.fixture(autouse=True)
def config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def _device(lb, **kw) -> Device:
    kw = {"user": lb.user, "port": lb.port, "identity": str(lb.client_key), "ssh_config": str(lb.ssh_config), **kw}
    return Device("loop", "127.0.0.1", **kw)


def _fake_python(tmp_path: Path, sed: str) -> str:
    """A python3 whose probe answer is the real one, edited (an old Python, another architecture)."""
    path = tmp_path / "python3"
    path.write_text(f"#!/bin/sh\n/usr/bin/python3 \"$@\" | sed -e '{sed}'\n")
    path.chmod(0o755)
    return str(path)


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgeport: error: ") and "\n" not in err, err
    return err


def test_addresses_parse_and_nothing_secret_is_kept(tmp_path):
    d = parse_address("pi", "ssh://pi@raspberrypi.local:2222", identity="/home/me/.ssh/id_pi")
    assert (d.user, d.host, d.port, d.address) == ("pi", "raspberrypi.local", 2222, "ssh://pi@raspberrypi.local:2222")
    assert parse_address("pi", "mypi").address == "mypi" and parse_address("pi", "me@mypi").user == "me"
    for bad in ("ssh://pi:secret@host", "http://host", "-oProxyCommand=evil", "ssh://host:99999"):
        with pytest.raises(DeviceConfigError):
            parse_address("pi", bad)
    assert parse_address("pi", "h", workdir="~/x").workdir == "x"


def test_add_list_check_remove_on_the_loopback_device(lb, tmp_path, capsys):
    address = f"ssh://{lb.user}@127.0.0.1:{lb.port}"
    assert main(["device", "add", "loop", address, "--identity", str(lb.client_key),
                 "--ssh-config", str(lb.ssh_config)]) == 0
    assert main(["device", "add", "alias", loopback.ALIAS, "--ssh-config", str(lb.ssh_config)]) == 0
    assert main(["device", "add", "loop", address]) == 2 and "exists" in _err(capsys)
    saved = json.loads((tmp_path / "config" / "edgeport" / "devices.json").read_text())
    assert saved["devices"]["loop"]["identity"] == str(lb.client_key)  # the key's path, never the key
    assert "PRIVATE KEY" not in json.dumps(saved)
    assert main(["device", "list"]) == 0 and address in capsys.readouterr().out
    for name in ("loop", "alias"):
        assert main(["device", "check", name]) == 0
        out = capsys.readouterr().out
        assert "reachable" in out and os.uname().machine in out and "usable" in out and "NOT" not in out
    assert main(["device", "check", "loop", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ok"] and info["info"]["cores"] >= 1 and info["info"]["memory"]["MemTotal"] > 0
    assert info["info"]["engines"].get("tensorflow") is None and info["info"]["edgeport"] is None
    assert "onnxruntime" in info["installs"]
    assert main(["device", "remove", "alias"]) == 0 and set(load_devices()) == {"loop"}
    assert main(["device", "check", "nosuch"]) == 2 and "no device named 'nosuch'" in _err(capsys)


def test_unreachable_host(lb):
    with pytest.raises(ssh.Unreachable, match=r"unreachable: .*Connection refused.*ssh server"):
        probe.probe(_device(lb, port=loopback.free_port()))


def test_refused_key(lb, tmp_path):
    stranger = loopback.keygen(tmp_path / "stranger")
    with pytest.raises(ssh.KeyRefused, match=r"refused the key .*stranger; add its public key"):
        probe.probe(_device(lb, identity=str(stranger)))


def test_unknown_host_key_is_never_accepted(lb, tmp_path, capsys):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    config = lb.write_ssh_config(tmp_path / "ssh_config", empty)
    with pytest.raises(ssh.UnknownHostKey, match=r"not in your known_hosts; edgeport never accepts .*ssh-keyscan -p"):
        probe.probe(_device(lb, ssh_config=str(config)))
    assert empty.read_text() == ""  # nothing was added behind the user's back
    assert main(["device", "add", "new", f"ssh://{lb.user}@127.0.0.1:{lb.port}", "--ssh-config", str(config),
                 "--identity", str(lb.client_key)]) == 0
    capsys.readouterr()
    assert main(["device", "check", "new"]) == 2
    print("unknown host key:", _err(capsys))


def test_no_python3(lb):
    with pytest.raises(probe.PythonMissing, match=r"no '/nonexistent/python3' on the device; install Python 3"):
        probe.probe(_device(lb, python="/nonexistent/python3"))


def test_python_too_old(lb, tmp_path):
    device = _device(lb, python=_fake_python(tmp_path, 's/"python": "[0-9.]*"/"python": "3.8.10"/'))
    result = probe.check(device)
    assert not result.ok and "its Python is 3.8.10" in result.problem and probe.requires_python() in result.problem
    assert "NOT usable" in result.render()
    with pytest.raises(probe.PythonTooOld):
        probe.require_usable(device, result.info)


def test_an_architecture_with_no_engine_wheel_is_said_before_anything_is_copied(lb, tmp_path):
    device = _device(lb, python=_fake_python(tmp_path, "s/x86_64/armv6l/g"))
    info = probe.probe(device)
    assert info["machine"] == "armv6l"
    with pytest.raises(probe.NoEngineWheel, match=r"no inference engine publishes a wheel for armv6l.*copies nothing"):
        probe.require_usable(device, info)
    assert probe.wheel_engines({**info["markers"], "platform_machine": "armv7l", "python_version": "3.11"}) \
        == ["tflite-runtime"]
    assert probe.wheel_engines({**info["markers"], "platform_machine": "aarch64"}) == ["ai-edge-litert", "onnxruntime"]


def test_no_space_left(lb, tmp_path):
    device = _device(lb)
    local = tmp_path / "bundle.tar.gz"
    local.write_bytes(os.urandom(4096))
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "bundle.tar.gz.part").symlink_to("/dev/full")  # a real ENOSPC from the device's disk
    with pytest.raises(ssh.NoSpace, match=r"no space left on the device's disk .*free some space"):
        ssh.push(device, local, str(remote / "bundle.tar.gz"), sha256_file(local))
    assert not (remote / "bundle.tar.gz").exists()
    with pytest.raises(ssh.NoSpace, match=r"only .* free under .edgeport on the device; this needs"):
        probe.require_space(device, {"disk_free": 10 << 20}, 300 << 20)


def test_a_copy_arrives_whole_or_not_at_all(lb, tmp_path):
    device = _device(lb)
    local = tmp_path / "a.bin"
    local.write_bytes(os.urandom(100_000))
    dest = tmp_path / "far" / "a.bin"
    ssh.push(device, local, str(dest), sha256_file(local))
    assert dest.read_bytes() == local.read_bytes() and not Path(str(dest) + ".part").exists()
    with pytest.raises(ssh.DeviceError, match=r"arrived damaged .* nothing was run"):
        ssh.push(device, local, str(tmp_path / "b.bin"), "0" * 64)
    assert not (tmp_path / "b.bin").exists() and not (tmp_path / "b.bin.part").exists()


def test_a_dropped_connection_is_said_as_such(lb):
    with pytest.raises(ssh.ConnectionLost, match=r"the connection dropped \(did the device reboot\?\)"):
        ssh.run(_device(lb), "kill -9 $PPID; sleep 5")  # the device's sshd session dies mid-command


def test_a_device_installs_from_what_the_bundle_says_it_carries(tmp_path):
    import io
    import tarfile

    from edgeport.errors import EdgeportError

    def bundle(files: dict, install: dict | None) -> Path:
        path = tmp_path / "m-rpi.tar.gz"
        body = json.dumps({"files": files, "install": install}).encode()
        with tarfile.open(path, "w:gz") as tar:
            info = tarfile.TarInfo("m-rpi/bundle.json")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        return path

    files = {"wheels/edgeport-0.1.0-py3-none-any.whl": {"sha256": "ab" * 32}, "install.sh": {"sha256": "cd" * 32}}
    assert remote.bundle_install(bundle(files, {"offline": "aarch64 cp3.11"})) == ("m-rpi", "ab" * 32, "aarch64 3.11")
    assert remote.bundle_install(bundle(files, {"offline": None}))[2] is None
    with pytest.raises(EdgeportError, match="no edgeport wheel and install.sh"):
        remote.bundle_install(bundle({"install.sh": {"sha256": "x"}}, None))
    (tmp_path / "m-rpi.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(EdgeportError, match="not an rpi bundle edgeport can install from"):
        remote.bundle_install(tmp_path / "m-rpi.tar.gz")


def _workstation(gates: str | None = None) -> dict:
    """A workstation verify.json: one tflite_fp32 row held to ``gates``, one output compared as probabilities."""
    from edgeport.benchmarks.verify.gates import load_gates

    gate = load_gates(gates).for_format("tflite_fp32").to_dict()
    return {"data": {"n": 120}, "reference": {"figures": {"outputs": {"probs": {"kind": "probabilities"}}}},
            "gates": {}, "results": [{"format": "tflite_fp32", "runtime": "litert", "status": "pass", "gate": gate,
                                      "figures": {"agreement": 1.0, "max_abs_diff": 1e-7}}]}


def test_the_device_run_gets_every_verify_option_that_changes_the_verdict(tmp_path):
    import shlex

    from edgeport.benchmarks.verify.command import verify_model
    from edgeport.benchmarks.verify.gates import load_gates
    from edgeport.cli import build_parser
    from edgeport.devices import options

    # no --gates: the gates the workstation's rows were held to; its output kinds
    there = options.verify_there(_workstation("tflite_fp32.min_agreement=0.5"), "verify.json")
    assert there.argv() == ["--gates", "tflite_fp32.min_agreement=0.5", "--output-kind", "probs=probabilities",
                            "--timeout", "900.0"]
    assert options.verify_there(_workstation(), "verify.json").gates == ""  # the defaults: nothing to say
    # --gates as a file is read here and travels as pairs (no file to copy); the rest as given
    gates = tmp_path / "gates.json"
    gates.write_text(json.dumps({"float32": {"min_agreement": 0}, "tflite_int8": {"max_kl_divergence": None}}))
    table, kinds = options.given_verify(gates=str(gates), runtimes=["onnxruntime"], output_kind=["x;rm -rf ~=scores"])
    there = options.verify_there(_workstation(), "verify.json", table=table, kinds=kinds, formats=["tflite_fp32"],
                                 runtimes=["onnxruntime"], threads=2, timeout=60)
    line = remote.command_line(Device("pi", "h", workdir="my dir"), "verify", "my dir/bundles/m-rpi.tar.gz",
                               there.argv())
    argv = shlex.split(line)  # what the device's shell hands edgeport: every argument whole
    assert argv[:4] == ["my dir/venv/bin/edgeport", "verify", "--bundle", "my dir/bundles/m-rpi.tar.gz"]
    parsed = vars(build_parser(verify_model, "edgeport verify").parse_args(argv[2:]))
    assert parsed["formats"] == ["tflite_fp32"] and parsed["runtimes"] == ["onnxruntime"]
    assert parsed["threads"] == 2 and parsed["timeout"] == 60.0
    assert parsed["output_kind"] == ["probs=probabilities", "x;rm -rf ~=scores"]
    assert load_gates(parsed["gates"]) == table  # the device holds every format to the gate given here
    # any table survives the trip: a format's override on top of its overridden class
    for spec in ("float32.min_agreement=0,tflite_fp32.min_agreement=0.999", "fp16.tolerance_factor=20.5"):
        table = load_gates(spec)
        assert load_gates(options.gate_pairs(table)) == table
    assert options.bench_argv(seconds=0.5, threads=[1, 4], formats=["tflite_int8"], peak_n=512) == [
        "--seconds", "0.5", "--threads", "1", "--threads", "4", "--formats", "tflite_int8", "--peak-n", "512"]


@pytest.mark.parametrize("args, says", [
    (["verify", "m", "--on", "pi", "--limit", "5"], "--limit cannot go with --on"),
    (["verify", "m", "--on", "pi", "--normalize", "1,0,1", "--debug-all"], "--normalize, --debug-all cannot go"),
    (["verify", "m", "--on", "pi", "--gates", "float32.nosuch=1"], "unknown gate field 'nosuch'"),
    (["verify", "m", "--on", "pi", "--runtimes", "nosuch"], "unknown runtime 'nosuch'"),
    (["verify", "m", "--on", "pi", "--output-kind", "probs=nosuch"], "unknown kind 'nosuch'"),
    (["verify", "m", "--on", "pi", "--gates", "float32.min_agreement=0"], "no device named 'pi'"),
    (["bench", "m", "--on", "pi", "--device", "gpu"], "--device gpu cannot go with --on"),
    (["bench", "m", "--on", "pi", "--threads", "0"], "--threads must be positive"),
])
def test_an_option_the_device_run_cannot_honour_is_one_line_before_anything_is_copied(args, says, capsys):
    assert main(args) == 2
    assert says in _err(capsys)


def test_the_table_says_whether_a_device_was_held_to_the_workstations_gates():
    from edgeport.devices.verify_on import DeviceRun, VerifyOnReport

    same = DeviceRun("pi", {**_workstation(), "ok": True})
    loose = DeviceRun("pi2", {**_workstation("float32.min_agreement=0"), "ok": True})
    report = VerifyOnReport("m", _workstation(), [same, loose, DeviceRun("dead", error="dead: unreachable")])
    text = report.render()
    assert "pi: PASS; same gates as the workstation's (1 row)" in text
    assert "pi2: PASS; gates DIFFER from the workstation's: tflite_fp32 on litert: min_agreement 0.0 " \
           "(workstation 0.999)" in text
    assert "dead: FAILED: dead: unreachable" in text
    assert report.to_dict()["devices"]["pi2"]["gates_differ"] and not report.to_dict()["devices"]["pi"]["gates_differ"]
