"""`make arm-check`: the Raspberry Pi user's path, on emulated boards, from the bundle alone.

For each model, ``edgeport bundle MODEL --target rpi --offline`` (the user's command: edgeport's own
wheel, install.sh and the 64-bit Pi OS wheelhouse). For each board (:mod:`boards`: Pi 4 and Pi 5 on
64-bit Pi OS, a 32-bit Pi OS Pi), a Debian bookworm root filesystem run by qemu-user with the board's
CPU (:mod:`pi_sysroot`), and in it a fresh home holding the bundle's tarball and nothing else (no
source tree, no wheel from here). There the bundle README's commands are typed verbatim by the board's
``/bin/sh`` (:mod:`board_shell`: a chroot; binfmt_misc runs every Arm program, so nothing is launched
on the board's behalf): ``tar xzf M-rpi.tar.gz && sh M-rpi/install.sh`` with no network at all where
the bundle's wheels are the board's (its own network namespace, ``PIP_NO_INDEX``, a dead proxy), then
``~/edgeport/bin/edgeport verify --bundle M-rpi.tar.gz`` with the workstation's gates; then a check
that the engines are the expected ones and that TensorFlow is not there.

Prints one parity table (model x format x board x runtime) and the install figures per board and model
(emulated install time, tarball, wheelhouse and venv bytes, engines), and writes
``OUT/arm-check/arm_check.json`` and, per board, ``OUT/report/emulated-BOARD/report.json``. Times under
qemu are an x86 host translating Arm code, never a Pi's latency. Exit status 1 when any gate fails or
anything could not run.
"""
from __future__ import annotations

import json
import shutil
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


# -- running it: the bundle README's commands, typed on the board ------------------------------------

def readme_lines(folder: Path) -> tuple[str, str]:
    """(the install line, the verify line) of the bundle's README.md, verbatim (comments dropped)."""
    text = (folder / "README.md").read_text()
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    try:
        install = next(ln for ln in lines if ln.startswith("tar xzf "))
        verify = next(ln for ln in lines if " verify --bundle " in ln)
    except StopIteration:
        raise EdgeportError(f"{folder}/README.md: no `tar xzf ... install.sh` and `verify --bundle` lines") from None
    return install, verify


def offline_for(folder: Path, b: Board) -> str | None:
    """None when the bundle installs on ``b`` with no network (install.sh reads only its wheels/ for this
    board's machine and Python); otherwise why not (that board then installs from the package index)."""
    from edgeport.benchmarks.devices.pi_sysroot import PYTHON
    from edgeport.export.targets.rpi_install import INSTALLER, OFFLINE_STAMP, WHEELS

    script = (folder / INSTALLER).read_text()
    if "--no-index" not in script or "--find-links" not in script:
        raise EdgeportError(f"{folder / INSTALLER}: no `--no-index --find-links`: an --offline bundle would reach "
                            "for the package index")
    stamp = folder / WHEELS / OFFLINE_STAMP
    tag = stamp.read_text().strip() if stamp.is_file() else None
    mine = f"{b.machine} {PYTHON.removeprefix('python')}"
    return None if tag == mine else f"the bundle's wheels are for {tag or 'no board'}, {b.key} is {mine}"


def _guest_inventory(image) -> dict[str, Any]:
    from edgeport.benchmarks.devices.board_shell import HOME, type_line

    done = type_line(image, f"{HOME}/edgeport/bin/python -m edgeport.benchmarks.devices.pi_venv inventory",
                     offline=True, timeout=600)
    if done.returncode != 0:
        raise EdgeportError(f"{image.board.key}: the inventory of the installed board failed: {done.output[-500:]}")
    return json.loads(done.output.strip().splitlines()[-1])


def _prove_bundle(image, model: str, made, dest: Path, timeout: float, install: dict[str, Any]
                  ) -> tuple[dict[str, Any] | None, str, float]:
    """A fresh home with the bundle's tarball only; the README's install line, then its verify line (with the
    board's runtimes), typed on the board. Returns (verify.json or None, why there is none, verify seconds);
    ``install`` gets the install's figures (emulated wall time, bundle, wheelhouse and venv bytes)."""
    from edgeport.benchmarks.devices import board_shell
    from edgeport.export.targets.rpi_install import WHEELS

    b = image.board
    install_line, verify_line = readme_lines(made.folder)
    why_online = offline_for(made.folder, b)
    home = board_shell.fresh_home(image)
    shutil.copyfile(made.archive, home / made.archive.name)
    install.update(bundle_bytes=made.archive.stat().st_size,
                   wheelhouse_bytes=board_shell.tree_bytes(made.folder / WHEELS), offline=why_online is None,
                   online_because=why_online, line=install_line)
    log = dest / f"{made.archive.name[:-len('.tar.gz')]}.{b.key}.log"
    dest.mkdir(parents=True, exist_ok=True)
    print(f"arm-check: {b.key}: {install_line} ({'offline' if why_online is None else 'online: ' + why_online}; "
          "emulated)", flush=True)
    done = board_shell.type_line(image, install_line, offline=why_online is None, timeout=timeout)
    install.update(emulated_s=round(done.seconds, 1), exit=done.returncode,
                   venv_bytes=board_shell.tree_bytes(home / "edgeport"))
    text = f"$ {install_line}\n{done.output}# exit {done.returncode}, {done.seconds:.1f} s (emulated)\n"
    if done.returncode != 0:
        log.write_text(text)
        tail = " | ".join(done.output.strip().splitlines()[-3:])
        return None, f"install.sh exited {done.returncode}: {tail} (log {log})", 0.0
    verify_line += f" --runtimes {' '.join(b.runtimes)}" if b.not_here else ""
    print(f"arm-check: {b.key}: {verify_line} (emulated)", flush=True)
    proved = board_shell.type_line(image, verify_line, offline=True, timeout=timeout)
    log.write_text(text + f"$ {verify_line}\n{proved.output}# exit {proved.returncode}, {proved.seconds:.1f} s\n")
    result = home / f"{made.archive.name[:-len('.tar.gz')]}.{VERIFY_FILE}"
    try:
        verify = json.loads(result.read_text())
    except (OSError, ValueError):
        tail = " | ".join(proved.output.strip().splitlines()[-3:])
        return None, f"verify exited {proved.returncode} without {result.name}: {tail} (log {log})", proved.seconds
    shutil.copyfile(result, dest / f"{made.archive.name[:-len('.tar.gz')]}.{b.key}.{VERIFY_FILE}")
    return verify, "", proved.seconds


def _check_board(b: Board, cache: Path, mirror: str | None, bundles: dict[str, tuple[Any, list]], dest: Path,
                 timeout: float) -> tuple[BoardRun, list[Row]]:
    """Set ``b``'s root filesystem up, then prove every bundle there from the bundle alone."""
    from edgeport.benchmarks.devices import pi_sysroot
    from edgeport.benchmarks.devices.board_shell import HOME

    state, rows, t0 = BoardRun(b), [], time.perf_counter()
    try:
        image = pi_sysroot.prepare_board(cache, b, mirror=mirror)
    except EdgeportError as exc:
        state.error = str(exc)
    state.setup_s = time.perf_counter() - t0
    for model, (made, pairs) in bundles.items():
        if state.error is not None:
            rows += rows_from_verify(model, b, pairs, None, f"board not set up: {state.error.splitlines()[0]}")
            continue
        install = state.install.setdefault(model, {})
        try:
            verify, why, state.verify_s[model] = _prove_bundle(image, model, made, dest, timeout, install)
            if verify is not None and not state.inventory:
                state.inventory = _guest_inventory(image)
                state.problems = inventory_problems(b, state.inventory, Path(HOME) / "edgeport")
        except EdgeportError as exc:
            verify, why = None, str(exc)
        state.files[model] = str(made.archive)
        rows += rows_from_verify(model, b, pairs, verify, why)
    return state, rows


def run_arm_check(models: list[str], *, out: Path = Path("artifacts"), boards: list[str] | None = None,
                  samples: int = 300, seed: int = 0, timeout: float = 3600.0, cache: Path | None = None,
                  mirror: str | None = None, formats: list[str] | None = None) -> ArmCheckReport:
    """Prove each model's ``--offline`` rpi bundle on emulated Raspberry Pis from the bundle alone: its README's
    commands typed on each board (install.sh with no network, then verify --bundle by the installed edgeport).

    models: model names under --out (exported and verified)
    out: artifacts directory; results go to OUT/arm-check and OUT/report/emulated-BOARD
    boards: boards to emulate (pi4, pi5, pi32; default all)
    samples: real test inputs in each bundle's reference set
    seed: seed that picks those inputs
    timeout: seconds one emulated install or verify may take before it is killed
    cache: where the boards' root filesystems live (default $EDGEPORT_DATA_HOME/arm-boards)
    mirror: Debian mirror for debootstrap (default: the one apt is configured with)
    formats: ship only these of the bundle's formats (default: every format the rpi bundle carries)
    """
    from edgeport.benchmarks.devices import pi_sysroot
    from edgeport.export.targets import bundle_model

    chosen = [board_named(k) for k in dict.fromkeys(boards or BOARDS)]
    if samples < 1 or timeout <= 0:
        raise EdgeportError(f"--samples and --timeout must be positive (got {samples}, {timeout})")
    out, t0 = Path(out).resolve(), time.perf_counter()
    work = out / "arm-check"
    cache = Path(cache) if cache else pi_sysroot.default_cache()
    report = ArmCheckReport(list(dict.fromkeys(models)))
    bundles: dict[str, tuple[Any, list[tuple[str, str, str]]]] = {}
    for model in report.models:
        try:  # the user's command: edgeport bundle MODEL --target rpi --offline
            made = bundle_model(model, target="rpi", out=out, dist=work / "dist", samples=samples, seed=seed,
                                offline=True, **({"formats": formats} if formats else {}))
            bundles[model] = (made, expected_pairs(made.folder))
            report.bundles[model] = str(made.archive)
        except EdgeportError as exc:
            report.errors.append(f"{model}: no rpi bundle: {exc}")
    report.host_s = time.perf_counter() - t0
    with pi_sysroot.locked(cache):
        for b in chosen:
            board_run, rows = _check_board(b, cache, mirror, bundles, work / b.key, timeout)
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
