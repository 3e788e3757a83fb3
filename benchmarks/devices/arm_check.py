"""`make arm-check`: the Raspberry Pi user's path, on emulated boards, for every model.

For each board (:mod:`boards`: Pi 4 and Pi 5 on 64-bit Pi OS, a 32-bit Pi OS Pi): a Debian
bookworm userland under qemu-user with the board's CPU (:mod:`pi_sysroot`); ``pip install
'edgeport[pi]'`` by the board's own pip from the board's own wheels, the edgeport wheel built
from this checkout (:mod:`pi_venv`); a check that the engines are the expected ones and that
TensorFlow is not there; then, for each model, the ``rpi`` bundle built here and
``edgeport verify --bundle`` run *inside* the board by the installed console script, with the
gates of the workstation (every artifact against the Keras outputs in the bundle's reference set).
verify's child processes are started through ``EDGEPORT_CHILD_LAUNCHER`` (the board's qemu
command): an emulated process cannot start an Arm program itself (no binfmt_misc).

Prints one parity table (model x format x board x runtime) and writes ``OUT/arm-check/arm_check.json``
and, per board, ``OUT/report/emulated-BOARD/report.json`` (the shape `edgeport report merge` joins).
Times under qemu are an x86 host translating Arm code: setup and wall times of the check, never a
Pi's latency. Exit status 1 when any gate fails or anything could not run.
"""
from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgeport.benchmarks.devices.boards import BOARDS, FORBIDDEN, Board, board as board_named
from edgeport.benchmarks.devices.arm_results import (  # used here, and re-exported
    HEADER, REFERENCE, RESULT_FILE, TIMING_NOTE, ArmCheckReport, BoardRun, Row, engines_installed, render,
    table_rows, write_results)
from edgeport.errors import EdgeportError
from edgeport.model_files import kind_of_name
from edgeport.names import BUNDLE_FILE, MANIFEST_FILE, VERIFY_FILE
from edgeport.runtimes.registry import runtimes_of_kind

__all__ = ["HEADER", "REFERENCE", "RESULT_FILE", "TIMING_NOTE", "ArmCheckReport", "BoardRun", "Row",
           "engines_installed", "render", "table_rows", "write_results", "run_arm_check", "main"]


# -- checking what the board has ---------------------------------------------------------------

def inventory_problems(b: Board, inv: dict[str, Any], venv: Path | None = None) -> list[str]:
    """Everything about an installed board that is not what a user of ``b`` must get."""
    from packaging.specifiers import SpecifierSet

    dists = {k: v["version"] for k, v in inv.get("distributions", {}).items()}
    out = []
    if inv.get("machine") != b.machine:
        out.append(f"platform.machine() is {inv.get('machine')!r}, not {b.machine!r}")
    part = inv.get("cpuinfo", {}).get("CPU part")
    if part != b.cpu.part:
        out.append(f"/proc/cpuinfo shows CPU part {part}, not the board's {b.cpu.part} (the sysroot's proc/cpuinfo)")
    for name, spec in b.expect.items():
        have = dists.get(name)
        if have is None:
            out.append(f"{name} is not installed (expected {name}{spec})")
        elif not SpecifierSet(spec).contains(have, prereleases=True):
            out.append(f"{name} {have} installed, expected {name}{spec}")
    out += [f"{name} {dists[name]} is installed; edgeport[pi] must not bring it here"
            for name in b.absent if name in dists]
    out += [f"TensorFlow is installed ({name} {dists[name]})" for name in FORBIDDEN if name in dists]
    if inv.get("tensorflow_importable"):
        out.append("tensorflow is importable")
    if "edgeport" not in dists:
        out.append("edgeport is not installed")
    origin = inv.get("edgeport_file") or ""
    if venv is not None and not origin.startswith(str(venv) + "/"):
        out.append(f"edgeport is imported from {origin or 'nowhere'}, not from the venv {venv}")
    return out


# -- rows from a verify.json -------------------------------------------------------------------

def expected_pairs(bundle_folder: Path) -> list[tuple[str, str, str]]:
    """(format, runtime, file) of every artifact in a bundle, on the runtime that runs its kind."""
    meta = json.loads((bundle_folder / BUNDLE_FILE).read_text())
    manifest = json.loads((bundle_folder / MANIFEST_FILE).read_text())
    out = []
    for fmt in meta.get("artifacts") or manifest["artifacts"]:
        file = manifest["artifacts"][fmt]["file"]
        out.append((fmt, (runtimes_of_kind(kind_of_name(file) or "") or ("?",))[0], file))
    return out


def rows_from_verify(model: str, b: Board, pairs: list[tuple[str, str, str]], verify: dict[str, Any] | None,
                     why_missing: str) -> list[Row]:
    """One row per expected (format, runtime): its verify result, or why there is none; a result
    whose engine is not the board's expected one fails (a fallback is not the user's install)."""
    results = {(r.get("format"), r.get("runtime")): r for r in (verify or {}).get("results", [])}
    rows = []
    for fmt, runtime, _ in pairs:
        if runtime not in b.engines:
            rows.append(Row(model, fmt, b.key, runtime, "skipped", reason=b.not_here))
            continue
        r = results.pop((fmt, runtime), None)
        if r is None:
            rows.append(Row(model, fmt, b.key, runtime, "not run", reason=why_missing))
            continue
        rows.append(_row(model, b, r))
    rows += [_row(model, b, r) for r in results.values()]  # refused artifacts ("-") and the like
    return rows


def _row(model: str, b: Board, r: dict[str, Any]) -> Row:
    failures = [f.get("message", str(f)) if isinstance(f, dict) else str(f) for f in r.get("failures", [])]
    row = Row(model, r.get("format", "?"), b.key, r.get("runtime", "-"), r.get("status", "error"),
              engine=r.get("engine") or "", figures=r.get("figures") or {}, precision=r.get("precision"),
              size_bytes=r.get("size_bytes"), reason="; ".join(failures))
    want = b.engines.get(row.runtime)
    if want and row.status == "pass" and not row.engine.startswith(want):
        row.status, row.reason = "fail", f"engine {row.engine or '?'}, expected {want}*"
    return row


# -- running it --------------------------------------------------------------------------------

def verify_command(b: Board, venv_python: Path, console_script: Path, archive: Path) -> list[str]:
    """The guest command line: the installed console script, run by the venv's Python."""
    return [str(venv_python), str(console_script), "verify", "--bundle", str(archive), "--runtimes", *b.runtimes]


def _guest_inventory(image, venv) -> dict[str, Any]:
    from edgeport.benchmarks.devices.pi_sysroot import run

    proc = run(image.command(venv.python, "-m", "edgeport.benchmarks.devices.pi_venv", "inventory"),
               f"{image.board.key}: the inventory of the installed board failed", timeout=600,
               env=image.env(), cwd=image.home)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _verify_on_board(image, venv, model: str, bundle: Path, dest: Path, timeout: float
                     ) -> tuple[dict[str, Any] | None, str, float]:
    """Copy the bundle to ``dest`` and run ``edgeport verify --bundle`` inside the board; returns
    (verify.json or None, why there is none, wall seconds)."""
    from edgeport.children import LAUNCHER_VAR
    from edgeport.benchmarks.verify.bundle import results_path

    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / bundle.name
    shutil.copyfile(bundle, archive)
    result, log = results_path(archive, VERIFY_FILE), results_path(archive, "verify.log")
    result.unlink(missing_ok=True)
    cmd = image.command(*verify_command(image.board, venv.python, venv.path / "bin" / "edgeport", archive))
    env = image.env(**{LAUNCHER_VAR: shlex.join(image.launcher())})
    print(f"arm-check: {image.board.key}: edgeport verify --bundle {archive.name} (emulated)", flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, cwd=dest, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        log.write_text(f"$ {shlex.join(cmd)}\n{exc.stdout or ''}{exc.stderr or ''}")
        return None, f"verify did not finish in {timeout:g} s (killed); see {log}", time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    log.write_text(f"$ {shlex.join(cmd)}\n# exit {proc.returncode}\n{proc.stdout}{proc.stderr}")
    tail = " | ".join((proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:])
    try:
        return json.loads(result.read_text()), "", seconds
    except (OSError, ValueError):
        return None, f"verify exited {proc.returncode} without {result.name}: {tail} (log {log})", seconds


def _check_board(b: Board, cache: Path, mirror: str | None, wheel: Path | None, fingerprint: str | None,
                 bundles: dict[str, tuple[Path, list]], dest: Path, timeout: float) -> tuple[BoardRun, list[Row]]:
    """Set ``b`` up (sysroot, edgeport[pi], inventory) and verify every bundle on it."""
    from edgeport.benchmarks.devices import pi_sysroot, pi_venv

    state, rows, t0 = BoardRun(b), [], time.perf_counter()
    try:
        if wheel is None or fingerprint is None:
            raise EdgeportError("no edgeport wheel to install")
        image = pi_sysroot.prepare_board(cache, b, mirror=mirror)
        venv, state.install = pi_venv.install_pi(image, cache, wheel, fingerprint)
        state.inventory = _guest_inventory(image, venv)
        state.problems = inventory_problems(b, state.inventory, venv.path)
    except EdgeportError as exc:
        state.error = str(exc)
    state.setup_s = time.perf_counter() - t0
    for model, (archive, pairs) in bundles.items():
        if state.error is not None:
            rows += rows_from_verify(model, b, pairs, None, f"board not set up: {state.error.splitlines()[0]}")
            continue
        verify, why, state.verify_s[model] = _verify_on_board(image, venv, model, archive, dest, timeout)
        state.files[model] = str(dest / archive.name)
        rows += rows_from_verify(model, b, pairs, verify, why)
    return state, rows


def _default_source() -> Path:
    return Path(__file__).resolve().parents[2]


def run_arm_check(models: list[str], *, out: Path = Path("artifacts"), boards: list[str] | None = None,
                  samples: int = 300, seed: int = 0, timeout: float = 3600.0, cache: Path | None = None,
                  mirror: str | None = None, source: Path | None = None) -> ArmCheckReport:
    """Install edgeport[pi] on emulated Raspberry Pis and prove each model's rpi bundle there.

    models: model names under --out (exported and verified)
    out: artifacts directory; results go to OUT/arm-check and OUT/report/emulated-BOARD
    boards: boards to emulate (pi4, pi5, pi32; default all)
    samples: real test inputs in each bundle's reference set
    seed: seed that picks those inputs
    timeout: seconds one emulated verify may take before it is killed
    cache: where sysroots, wheels and venvs live (default $EDGEPORT_DATA_HOME/arm-boards)
    mirror: Debian mirror for debootstrap (default: the one apt is configured with)
    source: the edgeport source tree whose wheel is installed on the boards (default: this checkout)
    """
    from edgeport.benchmarks.devices import pi_sysroot, pi_venv
    from edgeport.export.targets import bundle_model

    chosen = [board_named(k) for k in dict.fromkeys(boards or BOARDS)]
    source = Path(source) if source else _default_source()
    if not (source / "pyproject.toml").is_file():
        raise EdgeportError(f"{source}: not an edgeport source tree (no pyproject.toml); pass --source")
    if samples < 1 or timeout <= 0:
        raise EdgeportError(f"--samples and --timeout must be positive (got {samples}, {timeout})")
    out, t0 = Path(out).resolve(), time.perf_counter()  # absolute: the guest runs elsewhere
    work = out / "arm-check"
    cache = Path(cache) if cache else pi_sysroot.default_cache()
    report = ArmCheckReport(list(dict.fromkeys(models)))
    bundles: dict[str, tuple[Path, list[tuple[str, str, str]]]] = {}
    for model in report.models:
        try:
            made = bundle_model(model, target="rpi", out=out, dist=work / "dist", samples=samples, seed=seed)
            bundles[model] = (made.archive, expected_pairs(made.folder))
            report.bundles[model] = str(made.archive)
        except EdgeportError as exc:
            report.errors.append(f"{model}: no rpi bundle: {exc}")
    with pi_sysroot.locked(cache):
        try:
            wheel, fingerprint = pi_venv.edgeport_wheel(source, cache)
        except EdgeportError as exc:
            report.errors.append(f"edgeport wheel: {exc}")
            wheel = fingerprint = None
        report.host_s = time.perf_counter() - t0
        for b in chosen:
            board_run, rows = _check_board(b, cache, mirror, wheel, fingerprint, bundles, work / b.key, timeout)
            report.boards.append(board_run)
            report.rows += rows
    report.total_s = time.perf_counter() - t0
    report.files = write_results(report, out)
    return report


def main(argv: list[str] | None = None) -> int:
    from edgeport.cli import build_parser

    args = build_parser(run_arm_check, "python -m edgeport.benchmarks.devices.arm_check").parse_args(argv)
    try:
        report = run_arm_check(**vars(args))
    except EdgeportError as exc:
        print(f"arm-check: error: {exc}", file=sys.stderr)
        return 2
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    from edgeport.native_log import native_to_log

    with native_to_log("arm-check"):  # TensorFlow's, absl's and oneDNN's lines: to the log, as in every command
        code = main()
    sys.exit(code)
