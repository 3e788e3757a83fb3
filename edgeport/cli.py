"""The command line is the library: each command is one typed library function.

Commands are registered by name as lazy ``"module:attr"`` strings; only the chosen command's
module is imported, so ``edgeport --help`` and ``edgeport models`` never load TensorFlow.
Options are derived from the function's signature (keyword-only -> ``--flag``).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import json
import re
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, Sequence

from edgeport.errors import EdgeportError
from edgeport.lazy import resolve
from edgeport.native_log import native_to_log

COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("edgeport.training.models:list_models", "list the course models"),
    "train": ("edgeport.training.train:train", "train a course model into artifacts/MODEL/"),
    "export": ("edgeport.export.pipeline:export_model",
               "export a model to every deployable format, or a bare .tflite/.onnx to the other engine's, proved"),
    "formats": ("edgeport.export.registry:list_formats", "list the export formats"),
    "bundle": ("edgeport.export.targets:bundle_model",
               "package a verified model for a Pi, Android, iOS, the web or a microcontroller"),
    "serve": ("edgeport.serve:serve",
              "serve a web bundle on loopback with the headers it needs (COOP/COEP, application/wasm)"),
    "run": ("edgeport.runtimes.cli:run_artifact", "run an artifact on images, .npy batches or numbers"),
    "runtimes": ("edgeport.runtimes.registry:list_runtimes", "list the runtimes and whether each is installed"),
    "verify": ("edgeport.benchmarks.verify.command:verify_model", "prove every artifact against the Keras outputs"),
    "fix": ("edgeport.benchmarks.verify.fix:fix_model", "find the cheapest quantized artifact that passes its gate"),
    "bench": ("edgeport.benchmarks.bench.command:bench_model", "measure latency, throughput, size and memory"),
    "report": ("edgeport.benchmarks.report.command:build_report",
               "write artifacts/report/ (index.html, json, csv, md, plots)"),
    "report merge": ("edgeport.benchmarks.report.command:merge_reports",
                     "join report.json files from several machines"),
    "device add": ("edgeport.devices.command:device_add", "name a device reached over ssh (a Pi, any Linux board)"),
    "device list": ("edgeport.devices.command:device_list", "list the named devices"),
    "device check": ("edgeport.devices.command:device_check",
                     "reach a device and say what it is and whether edgeport can run there"),
    "device remove": ("edgeport.devices.command:device_remove", "forget a named device"),
}


def _docs(fn: Callable) -> tuple[str, dict[str, str]]:
    doc = inspect.getdoc(fn) or ""
    summary = doc.split("\n\n")[0].replace("\n", " ")
    params = dict(re.findall(r"^\s*(\w+):\s+(.+)$", doc, flags=re.M))
    return summary, params


def _add_param(parser: argparse.ArgumentParser, p: inspect.Parameter, hint: Any, help_: str) -> argparse.Action:
    if typing.get_origin(hint) is typing.Annotated:  # Annotated[str, REGISTRY]: the help lists its names
        hint, names = typing.get_args(hint)[:2]
        help_ = f"{help_}: {', '.join(names)}"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = [a for a in args if a is not type(None)]
        hint = inner[0] if len(inner) == 1 else str
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    kw: dict[str, Any] = {"help": help_}
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        elem = args[0] if args else str
        kw.update(nargs="+" if p.default is inspect.Parameter.empty else "*", type=_conv(elem))
        if p.default is None:  # `--input-shape A --input-shape B`: a repeated list option adds up
            kw["action"] = "extend"
    elif hint is bool:
        kw["action"] = argparse.BooleanOptionalAction
    else:
        kw["type"] = _conv(hint)
    if p.default is inspect.Parameter.empty and p.kind is not p.KEYWORD_ONLY:
        return parser.add_argument(p.name, **kw)
    if p.kind is p.POSITIONAL_OR_KEYWORD:  # an optional positional: `edgeport verify [MODEL] [--bundle F]`
        return parser.add_argument(p.name, nargs="?", default=p.default, **kw)
    kw["default"] = p.default
    if kw.get("help") and p.default not in (None, inspect.Parameter.empty) and hint is not bool:
        kw["help"] += f" (default: {p.default})"
    return parser.add_argument("--" + p.name.replace("_", "-"), dest=p.name, **kw)


def _conv(t: Any) -> Callable[[str], Any]:
    return t if t in (int, float, str, Path) else str


def build_parser(fn: Callable, prog: str) -> argparse.ArgumentParser:
    summary, helps = _docs(fn)
    parser = argparse.ArgumentParser(prog=prog, description=summary)
    hints = typing.get_type_hints(fn, include_extras=True)
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if dataclasses.is_dataclass(cls := _dataclass_of(hints.get(p.name))):
            _add_fields(parser, p.name, cls)
            continue
        _add_param(parser, p, hints.get(p.name, str), helps.get(p.name, ""))
    _add_output_flags(parser, fn, hints.get("return"))
    return parser


#: dests of the flags the result's type brings (``render(wide=...)``: --wide; ``to_dict()``: --json)
_WIDE, _JSON = "_output_wide", "_output_json"


def _add_output_flags(parser: argparse.ArgumentParser, fn: Callable, result: Any) -> None:
    params = inspect.signature(fn).parameters
    render = getattr(result, "render", None)
    if "wide" not in params and callable(render) and "wide" in inspect.signature(render).parameters:
        parser.add_argument("--wide", dest=_WIDE, action="store_true",
                            help="every column of the tables (default: the columns that fit 80)")
    if "json" not in params and callable(getattr(result, "to_dict", None)):
        parser.add_argument("--json", dest=_JSON, action="store_true",
                            help="print the result as JSON, for machines, instead of tables")


def _dataclass_of(hint: Any) -> Any:
    """``Config`` of a ``Config | None`` hint (whatever else: itself)."""
    inner = [a for a in typing.get_args(hint) if a is not type(None)]
    return inner[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(inner) == 1 else hint


def _add_fields(parser: argparse.ArgumentParser, name: str, cls: type) -> None:
    """A dataclass parameter is one ``--flag`` per field (help from the dataclass's docstring); an
    empty-tuple default reads as None, so a list flag adds up and the dataclass keeps its default."""
    _, helps = _docs(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        default = None if f.default == () else list(f.default) if isinstance(f.default, tuple) else f.default
        p = inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default)
        action = _add_param(parser, p, hints[f.name], helps.get(f.name, ""))
        if action.nargs != 0:  # its value reads FORMATS, not CONFIG.FORMATS
            action.metavar = f.name.upper()
        action.dest = f"{name}.{f.name}"


def _call_args(fn: Callable, parsed: dict[str, Any]) -> dict[str, Any]:
    """The parsed options as ``fn``'s arguments: a dataclass parameter's fields built into one object."""
    args: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    for key, value in parsed.items():
        head, _, field = key.partition(".")
        if field:
            if value is not None:
                groups.setdefault(head, {})[field] = value
        else:
            args[key] = value
    hints = typing.get_type_hints(fn)
    return {**args, **{k: _dataclass_of(hints[k])(**v) for k, v in groups.items()}}


def _top_help() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: edgeport COMMAND [options]   (edgeport COMMAND --help for its options)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_top_help())
        return 0
    name = " ".join(argv[:2]) if " ".join(argv[:2]) in COMMANDS else argv[0]
    if name not in COMMANDS:
        print(f"edgeport: error: unknown command {argv[0]!r}; commands: {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    rest = argv[len(name.split()):]
    try:
        with native_to_log(f"edgeport {' '.join(argv)}"):  # TensorFlow's, absl's and oneDNN's lines: to the log
            fn = resolve(COMMANDS[name][0])
            args = vars(build_parser(fn, f"edgeport {name}").parse_args(rest))
            wide, as_json = args.pop(_WIDE, False), args.pop(_JSON, False)
            with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
                result = fn(**_call_args(fn, args))  # --json: stdout holds the JSON alone
    except EdgeportError as exc:
        print(f"edgeport: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgeport: interrupted", file=sys.stderr)
        return 130
    try:
        return _emit(result, wide=wide, as_json=as_json)
    except BrokenPipeError:  # `edgeport formats | head`: the reader left; nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _emit(result: Any, *, wide: bool = False, as_json: bool = False) -> int:
    if as_json:
        print(json.dumps(result.to_dict(), indent=1, default=str))
        return 0 if getattr(result, "ok", True) else 1
    if result is None:
        return 0
    if isinstance(result, bool):
        return 0 if result else 1
    if isinstance(result, int):
        return result
    render = getattr(result, "render", None)
    if callable(render):
        print(render(wide=True) if wide else render())
    elif isinstance(result, str):
        print(result)
    return 0 if getattr(result, "ok", True) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
