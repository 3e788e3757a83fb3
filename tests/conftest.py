"""Shared fixtures: tiny models of every kind the course uses, saved as .keras files."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from edgeport.files import sha256_file
from edgeport.manifest import hash_files, load_manifest, save_manifest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _keras():
    import keras

    return keras


def tiny_mlp():
    """Sequential: Rescaling inside, 28x28x1 raw pixels -> 10 softmax (fashion_mlp-shaped)."""
    keras = _keras()
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Rescaling(1 / 255.0), keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10, activation="softmax")])


def tiny_cnn():
    """Convolutional (fashion_cnn-shaped, fewer filters)."""
    keras = _keras()
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Rescaling(1 / 255.0),
        keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Flatten(), keras.layers.Dense(8, activation="relu"),
        keras.layers.Dense(10, activation="softmax")])


def tiny_two_input():
    """Functional with two inputs: an image and a feature vector."""
    keras = _keras()
    keras.utils.set_random_seed(0)
    img = keras.Input((8, 8, 1), name="image")
    vec = keras.Input((3,), name="features")
    a = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255.0)(img))
    h = keras.layers.Concatenate()([a, vec])
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.Dense(4, activation="relu")(h))
    return keras.Model([img, vec], out)


def tiny_mobilenet():
    """MobileNetV2 (alpha 0.35, no weights) at 32x32 with the transfer head."""
    keras = _keras()
    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False,
                                          weights=None)
    base.trainable = False
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.GlobalAveragePooling2D()(base(x, training=False))
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.Dropout(0.2)(x))
    return keras.Model(inp, out)


def tiny_celsius():
    keras = _keras()
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])


TINY = {"mlp": tiny_mlp, "cnn": tiny_cnn, "two_input": tiny_two_input,
        "mobilenet": tiny_mobilenet, "celsius": tiny_celsius}


def save_tiny(kind: str, directory: Path) -> Path:
    """Build, compile, call once and save a tiny model; return the .keras path."""
    model = TINY[kind]()
    model.compile(optimizer="adam", loss="mse")
    path = Path(directory) / f"tiny_{kind}.keras"
    model.save(path)
    return path


@pytest.fixture(autouse=True)
def _export_in_process(monkeypatch):
    """Exports run in the test process (TensorFlow is loaded here already); the tests of the
    crash isolation (a child process per export) ask for it with isolate=True."""
    from edgeport.export import pipeline

    monkeypatch.setitem(pipeline.export_model.__kwdefaults__, "isolate", False)


#: verify's jobs (the reference and each artifact's outputs) run in the test process, where TensorFlow
#: and the engines are loaded already; a fresh child per row cost seconds each. The child path stays
#: proved: tests/test_children.py, and the tests that ask for ``child_processes`` (one per engine).
IN_PROCESS_JOBS = ("outputs", "reference", "fix_search")
#: fix's search under a small budget: the tests prove what the search finds and says, not how far it
#: goes in three minutes; tests/test_faces_models.py runs it end to end at its defaults (``fix_defaults``).
FIX_BUDGET = {"max_seconds": 90.0, "max_candidates": 16}
_FIX_DEFAULTS: dict = {}  # fix_model's own, read when the session starts


@pytest.fixture(scope="session", autouse=True)
def _verify_jobs_in_process():
    from edgeport import children
    from edgeport.benchmarks.verify.fix import fix_model

    defaults = dict(fix_model.__kwdefaults__)
    assert set(FIX_BUDGET) <= set(defaults), "fix_model's budget parameters moved: update FIX_BUDGET"
    _FIX_DEFAULTS.update({k: defaults[k] for k in FIX_BUDGET})
    children.IN_PROCESS.update(IN_PROCESS_JOBS)
    fix_model.__kwdefaults__.update(FIX_BUDGET)
    yield
    children.IN_PROCESS.difference_update(IN_PROCESS_JOBS)
    fix_model.__kwdefaults__.update(defaults)


@pytest.fixture
def fix_defaults(monkeypatch):
    """`edgeport fix` at its own defaults (its full time and candidate budget), as `make export` runs it."""
    from edgeport.benchmarks.verify.fix import fix_model

    monkeypatch.setattr(fix_model, "__kwdefaults__", {**fix_model.__kwdefaults__, **_FIX_DEFAULTS})


@pytest.fixture
def child_processes(monkeypatch):
    """Every job in its own child process, as every command runs them."""
    from edgeport import children

    monkeypatch.setattr(children, "IN_PROCESS", set())


@pytest.fixture(scope="session")
def loopback_device(tmp_path_factory):
    """Debian's OpenSSH server on 127.0.0.1 (generated keys; edgeport.devices.loopback), one per session."""
    from edgeport.devices import loopback

    if (why := loopback.missing()) is not None:
        pytest.skip(f"no loopback device: {why}")
    loop = loopback.start(tmp_path_factory.mktemp("sshd"))
    yield loop
    loop.stop()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Every tiny model saved once per test session: {kind: path to .keras}."""
    d = tmp_path_factory.mktemp("tiny_models")
    return {kind: save_tiny(kind, d) for kind in TINY}


@pytest.fixture
def device_workspace(tiny_models, tmp_path, monkeypatch):
    """``prepare(n, bench=False)``: the tiny MLP exported (tflite_fp32), verified (and benched) here on n
    seeded test.npz rows, in tmp_path as the working directory with its own devices.json, and edgeport's
    wheel pinned for the run (the shared checkout may change meanwhile): what every ``--on`` test needs."""
    from edgeport.cli import main
    from edgeport.devices import remote
    from edgeport.export.pipeline import export_model

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)

    def prepare(n: int, *, bench: bool = False) -> Path:
        r = np.random.default_rng(0)
        np.savez(tmp_path / "test.npz", x_test=r.integers(0, 256, (n, 28, 28, 1)).astype(np.uint8),
                 y_test=r.integers(0, 10, n))
        assert export_model(str(tiny_models["mlp"]), formats=["tflite_fp32"], out=tmp_path / "out").ok
        assert main(["verify", "tiny_mlp", "--out", "out", "--data-npz", "test.npz"]) == 0
        if bench:
            assert main(["bench", "tiny_mlp", "--out", "out", "--seconds", "0.1", "--threads", "1",
                         "--no-keras-predict"]) == 0
        whl = tmp_path / remote.wheel().name
        whl.write_bytes(remote.wheel().read_bytes())
        monkeypatch.setattr(remote, "wheel", lambda: whl)
        return tmp_path

    return prepare


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def make_shape_folder(root: Path, classes=("circle", "square", "triangle"), per_class: int = 12,
                      size: int = 48, seed: int = 0) -> Path:
    """An image folder with one sub-folder per class of drawn shapes (PNG and JPEG)."""
    from PIL import Image, ImageDraw

    r = np.random.default_rng(seed)
    for cls in classes:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            im = Image.new("RGB", (size, size), tuple(int(v) for v in r.integers(0, 80, 3)))
            d = ImageDraw.Draw(im)
            c = tuple(int(v) for v in r.integers(150, 256, 3))
            lo, hi = int(r.integers(2, size // 4)), int(r.integers(3 * size // 4, size - 2))
            if cls == "circle":
                d.ellipse([lo, lo, hi, hi], fill=c)
            elif cls == "square":
                d.rectangle([lo, lo, hi, hi], fill=c)
            else:
                d.polygon([(lo, hi), (hi, hi), ((lo + hi) // 2, lo)], fill=c)
            im.save(root / cls / f"{cls}_{i}.{'png' if i % 2 else 'jpg'}")
    return root


@pytest.fixture
def shape_folder(tmp_path) -> Path:
    """A generated 3-class image folder (circles, squares, triangles)."""
    return make_shape_folder(tmp_path / "shapes")


@pytest.fixture
def make_images():
    """The image-folder generator itself, for tests that need several folders."""
    return make_shape_folder


# -- editing exported artifacts the way a converter bug would (tests of the gates) -----------------
def rehash(model_dir: Path, fmt: str) -> None:
    """Record an artifact's current bytes in the manifest: only a gate can catch what changed."""
    manifest = load_manifest(model_dir)
    entry = manifest["artifacts"][fmt]
    entry["files"] = hash_files(model_dir, list(entry["files"]))
    entry["sha256"] = sha256_file(model_dir / entry["file"])
    save_manifest(model_dir, manifest)


def scale_weights(path: Path, factor: float, *, pick=max) -> str:
    """Multiply one float32 weight tensor of a .tflite by ``factor`` (the largest by default)."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    model = fu.read_model_from_bytearray(bytearray(path.read_bytes()))
    graph = model.subgraphs[0]
    weights = [t for t in graph.tensors if t.type == 0 and model.buffers[t.buffer].data is not None
               and len(model.buffers[t.buffer].data) > 64]
    tensor = pick(weights, key=lambda t: len(model.buffers[t.buffer].data))
    buf = model.buffers[tensor.buffer]
    values = np.frombuffer(bytes(bytearray(buf.data)), np.float32) * np.float32(factor)
    buf.data = np.frombuffer(values.astype(np.float32).tobytes(), np.uint8)
    path.write_bytes(bytes(fu.convert_object_to_bytearray(model)))
    return tensor.name.decode()


@pytest.fixture
def edits():
    """``edits.scale_weights(path, factor)`` and ``edits.rehash(model_dir, fmt)``."""
    import types

    return types.SimpleNamespace(scale_weights=scale_weights, rehash=rehash)


# -- test time: the 15 slowest, the total against the budget, growth against the last run ---------
BUDGET_S = 25 * 60
RECORD = Path(__file__).with_name("durations.json")  # the last full run recorded in the repository
GROWTH = (1.25, 15.0)  # a module that grew by 25% and 15 s is named


def pytest_addoption(parser):
    parser.addoption("--durations-file", default=None,
                     help="write each test's seconds (its fixtures' setup included) here, print the 15 "
                          "slowest and the total against the 25-minute budget, and say what grew against the "
                          "last run written there (else tests/durations.json)")


def pytest_configure(config):
    import time

    config.edgeport_times, config.edgeport_t0 = {}, time.monotonic()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    import time

    t0 = time.monotonic()
    yield
    item.config.edgeport_times[item.nodeid] = round(time.monotonic() - t0, 2)


def _by_module(times: dict[str, float]) -> dict[str, float]:
    modules: dict[str, float] = {}
    for nodeid, seconds in times.items():
        modules[nodeid.split("::")[0]] = modules.get(nodeid.split("::")[0], 0.0) + seconds
    return modules


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    import json
    import time

    path = config.getoption("--durations-file")
    if not path:
        return
    path, times = Path(path), config.edgeport_times
    total = time.monotonic() - config.edgeport_t0
    write = terminalreporter.write_line
    write("")
    write(f"test time: {total / 60:.1f} min for {len(times)} tests, against a budget of {BUDGET_S // 60} min"
          + ("" if total <= BUDGET_S else "  ** OVER BUDGET **"))
    write("15 slowest (fixture setup included):")
    for nodeid, seconds in sorted(times.items(), key=lambda kv: -kv[1])[:15]:
        write(f"  {seconds:7.1f} s  {nodeid}")
    last = next((p for p in (path, RECORD) if p.is_file()), None)
    if last is not None:
        try:
            before = json.loads(last.read_text())
            old, new = _by_module(before["tests"]), _by_module(times)
            grew = [(m, old.get(m, 0.0), s) for m, s in new.items()
                    if s > old.get(m, 0.0) * GROWTH[0] and s - old.get(m, 0.0) > GROWTH[1]]
            write(f"against the last recorded run ({last}, {before['total_s'] / 60:.1f} min):")
            for module, was, now in sorted(grew, key=lambda g: g[1] - g[2]):
                write(f"  warning: {module} grew from {was:.0f} s to {now:.0f} s")
            if not grew:
                write("  no module grew by more than 25% and 15 s")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            write(f"  warning: the last recorded run {last} could not be read ({exc})")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"total_s": round(total, 1), "n": len(times), "exit": int(exitstatus),
                               "when": time.strftime("%Y-%m-%d %H:%M"), "tests": times}, indent=1))
    tmp.replace(path)
    write(f"durations written to {path}")
