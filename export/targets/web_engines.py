"""The browser engines a web bundle ships: ONNX Runtime Web and LiteRT.js from npm, pinned by
``web-app/package.json`` and its lockfile, installed once with ``npm ci --ignore-scripts`` under
``$EDGEPORT_DATA_HOME/web-engines`` (~185 MB of packages; the bundle copies ~71 MB of them)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from edgeport.errors import EdgeportError

APP = Path(__file__).with_name("web-app")
LOCK_FILES = ("package.json", "package-lock.json")
#: What the page loads, per package (paths under node_modules/): the wasm-only ORT build with its
#: threaded SIMD wasm (ORT fetches that one even for one thread) and, for ``?accelerator=webgpu``, ORT's
#: WebGPU build (``ort.webgpu.min.mjs``: 1.30's native WebGPU execution provider, which loads the
#: asyncify wasm); LiteRT.js's core, its wasm-utils and the plain, compatibility and threaded wasm
#: (loadLiteRt picks one by the browser's features; its WebGPU accelerator is in each of them).
SHIPPED = {
    "onnxruntime-web": ["package.json", "dist/ort.wasm.min.mjs", "dist/ort-wasm-simd-threaded.mjs",
                        "dist/ort-wasm-simd-threaded.wasm", "dist/ort.webgpu.min.mjs",
                        "dist/ort-wasm-simd-threaded.asyncify.mjs", "dist/ort-wasm-simd-threaded.asyncify.wasm"],
    "@litertjs/core": ["package.json", "dist/index.js",
                       *(f"wasm/litert_wasm{k}_internal.{e}" for k in ("", "_compat", "_threaded")
                         for e in ("js", "wasm"))],
    "@litertjs/wasm-utils": ["package.json", "dist/index.js"],
}
#: How the engines are named in results (`edgeport report`'s engine column).
NAMES = {"litertjs": "litert.js", "onnxruntime_web": "onnxruntime-web"}
PACKAGES = {"litertjs": "@litertjs/core", "onnxruntime_web": "onnxruntime-web"}
#: The page's backends (``?accelerator=``), WebAssembly first: the one the others are held to.
ACCELERATORS = ("wasm", "webgpu")


def data_home() -> Path:
    return Path(os.environ.get("EDGEPORT_DATA_HOME") or Path.home() / ".cache" / "edgeport")


def npm_install(lock_dir: Path, dest: Path, what: str, env: dict[str, str] | None = None) -> Path:
    """``dest``/node_modules installed exactly from ``lock_dir``'s package.json and lockfile (once)."""
    want = [(lock_dir / f).read_bytes() for f in LOCK_FILES]
    if (dest / "node_modules").is_dir() and [(dest / f).read_bytes() if (dest / f).is_file() else b""
                                             for f in LOCK_FILES] == want:
        return dest / "node_modules"
    if not shutil.which("npm"):
        raise EdgeportError(f"{what} come from npm, which is not installed; run: apt-get install -y npm")
    dest.mkdir(parents=True, exist_ok=True)
    for f in LOCK_FILES:
        shutil.copyfile(lock_dir / f, dest / f)
    print(f"edgeport: installing {what} from npm into {dest} (npm ci, once)", flush=True)
    done = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                          cwd=dest, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode:
        (dest / LOCK_FILES[0]).unlink(missing_ok=True)  # not installed: the next call tries again
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise EdgeportError(f"npm ci in {dest} failed ({what}):\n" + "\n".join(tail))
    return dest / "node_modules"


def engines() -> Path:
    """node_modules holding the pinned engines."""
    return npm_install(APP, data_home() / "web-engines", "the web engines (onnxruntime-web, @litertjs/core)")


def versions(modules: Path) -> dict[str, str]:
    """Installed version of each engine package, by engine key."""
    return {k: json.loads((modules / p / "package.json").read_text())["version"] for k, p in PACKAGES.items()}


def shipped_files(modules: Path) -> list[tuple[str, Path]]:
    """(path in the bundle, installed file) of every engine file the page loads."""
    out = []
    for package, files in SHIPPED.items():
        for f in files:
            src = modules / package / f
            if not src.is_file():
                raise EdgeportError(f"{src}: missing from the installed {package}; delete "
                                    f"{modules.parent} and bundle again")
            out.append((f"node_modules/{package}/{f}", src))
    return out
