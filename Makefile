# make demo : set up .venv if needed, then run the live emotion demo on the shipped model
# make test : set up .venv (and the audio system packages) if needed, then ruff + pytest
# Both are idempotent and fast once set up.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SER_DATA ?= $(abspath ../shared/data/ravdess-speech-16k)
export SER_DATA

.PHONY: demo test lint venv sysdeps pi-check models bench docs dist clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstalled only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[train,pretrained,mic,mqtt,dev]'
	touch $@

venv: $(VENV)/.installed

# Debian packages the microphone path and its tests need (PortAudio, PulseAudio).
sysdeps:
	@bash tools/sysdeps.sh

lint: venv
	$(BIN)/ruff check .

test: venv sysdeps lint
	$(BIN)/python -m pytest -q --durations=15

DEMO_ARGS ?=
demo: venv sysdeps
	$(BIN)/python tools/demo.py $(DEMO_ARGS)

# The edge runtime inside an emulated Raspberry Pi OS (Debian bookworm arm64, qemu-user,
# Cortex-A72): utterances, labels and int8 scores must match this machine's. Root; cached
# in /var/cache. The shipped bundles, or PI_MODELS_DIR (else $EDGE_SER_TEST_MODELS): a
# directory with *.tflite and DEFAULT; PI_MODELS="default cnn-float32 ..." checks several.
pi-check: venv
	bash tools/pi/pi-check.sh

# int8 against float: accuracy, latency, size, memory; writes reports/ (a few minutes).
BENCH_ARGS ?=
bench: venv
	$(BIN)/ser-bench --data $(SER_DATA) --out reports $(BENCH_ARGS)

# Re-train and re-export the shipped bundles in edge/models/ (each family a 4-fold
# cross-validation and its shipped model: about 6 h on 2 cores).
models: venv
	SER_DATA=$(SER_DATA) bash tools/make_models.sh

# The generated parts of README.md and docs/ (model tables, the picture) from reports/.
docs: venv
	$(BIN)/python -m benchmarks.readme --update README.md docs/*.md

# Publishing: the wheel and sdist of a release tag, checked as `make test` checks the working
# tree's, into dist/. Tag first (the tag must be v + edge.__version__, and CHANGELOG.md
# must have its entry):  git tag v0.2.0 && make dist TAG=v0.2.0
# Uploading is a separate, manual step (no release is published yet):
#   $(BIN)/python -m pip install twine && $(BIN)/twine upload dist/v0.2.0/*
TAG ?=
dist: venv
	@test -n "$(TAG)" || { echo "make dist TAG=vX.Y.Z (an existing git tag)"; exit 2; }
	rm -rf dist/$(TAG) && mkdir -p dist/$(TAG)
	PYTHON=$(BIN)/python bash tools/dist.sh dist/$(TAG) $(TAG)
	EDGE_SER_DIST=dist/$(TAG) $(BIN)/python -m pytest -q tests/test_package.py
	@ls -l dist/$(TAG)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist *.egg-info
