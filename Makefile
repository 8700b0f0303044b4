# segzero-edge developer commands. `make test` and `make demo` work on a fresh machine:
# they create .venv, install CPU torch and everything else under constraints.txt (which pins
# torch==2.13.0 so pip never swaps in CUDA torch), install the official SAM2 without its
# dependencies (its metadata pulls a torchvision that cannot work with CPU torch), and build
# the package (editable, with the C++ extension). Re-running is fast: stamps skip done work.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := PIP_CONSTRAINT=$(CURDIR)/constraints.txt $(PY) -m pip --disable-pip-version-check
DEPS_STAMP := $(VENV)/.segzero-deps
PKG_STAMP := $(VENV)/.segzero-pkg
NATIVE_SOURCES := $(wildcard csrc/*.cpp csrc/*.hpp csrc/core/*.cpp csrc/core/*.hpp) CMakeLists.txt
PYTEST_ARGS ?=

.PHONY: help install test lint format demo world-retrain world-retrain-multi world-accuracy fuzz bench clean distclean

help:
	@echo "make test    install into .venv (first time), run ruff check, ruff format --check and pytest"
	@echo "make demo    install, export the shipped world models, segment the bundled scene"
	@echo "make world-retrain   retrain both world models from scratch (measured 2026-12-03: 81 min of training on 2 cores, then 5 min of measuring), compare with the shipped table"
	@echo "make world-accuracy  re-measure benchmarks/results/world_accuracy.{json,md} on the shipped models"
	@echo "make world-retrain-multi  retrain the multi-object world reasoner from the shipped one, then its table"
	@echo "make lint    ruff check and ruff format --check"
	@echo "make format apply ruff's fixes and formatting"
	@echo "make fuzz    fuzz the native answer code (libFuzzer + ASan/UBSan, FUZZ_SECONDS=300)"
	@echo "make clean   remove build outputs (keeps .venv)"

$(DEPS_STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -U pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q "scikit-build-core>=0.10" "pybind11>=2.13"
	$(PIP) install -q --no-build-isolation -e ".[dev]"
	SAM2_BUILD_CUDA=0 $(PIP) install -q --no-deps --no-build-isolation sam2==1.1.0
	touch $(DEPS_STAMP) $(PKG_STAMP)

$(PKG_STAMP): $(DEPS_STAMP) $(NATIVE_SOURCES)
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $(PKG_STAMP)

install: $(PKG_STAMP)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

test: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/segzero-edge demo --work-dir .cache/demo --out demo_out

# The small world (docs/world.md): retrain both tiny models from scratch with the shipped settings, then
# measure them like the shipped table and fail when they land outside its stated margin.
WORLD_RUN ?= runs/world
world-retrain: install
	$(PY) -m segzero_edge.world retrain --out $(WORLD_RUN)
	$(PY) -m segzero_edge.world accuracy --reasoner $(WORLD_RUN)/reasoner/grpo/final \
	  --sam2 $(WORLD_RUN)/sam2_video/sam2_tiny.pt --work-dir $(WORLD_RUN)/accuracy --out-dir $(WORLD_RUN) \
	  --compare benchmarks/results/world_accuracy.json

world-accuracy: install
	$(PY) -m segzero_edge.world accuracy

# The multi-object (VisionReasoner-family) world reasoner: a continued fine-tune of the shipped reasoner,
# then its table (docs/world.md, "Multi-object reasoner").
world-retrain-multi: install
	$(PY) -m segzero_edge.world train-reasoner-multi --out $(WORLD_RUN)_multi
	$(PY) -m segzero_edge.world multi-accuracy --reasoner $(WORLD_RUN)_multi/grpo/final \
	  --work-dir $(WORLD_RUN)_multi/accuracy --out-dir $(WORLD_RUN)_multi

# Fuzz the native answer code (decoder, stream, constraint) with libFuzzer under AddressSanitizer and
# UndefinedBehaviorSanitizer for FUZZ_SECONDS; the corpus grows in build/fuzz/corpus. Needs clang and its
# runtime (Debian: apt-get install clang libclang-rt-14-dev).
FUZZ_SECONDS ?= 300
FUZZ_BIN := build/fuzz/fuzz_answer
$(FUZZ_BIN): csrc/fuzz/fuzz_answer.cpp $(wildcard csrc/core/*.cpp csrc/core/*.hpp)
	@command -v clang++ >/dev/null || { echo "make fuzz needs clang++: apt-get install clang libclang-rt-14-dev" >&2; exit 2; }
	mkdir -p $(dir $@)
	clang++ -std=c++17 -O1 -g -fno-omit-frame-pointer -ffp-contract=off \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -Icsrc csrc/fuzz/fuzz_answer.cpp $(wildcard csrc/core/*.cpp) -o $@

fuzz: $(FUZZ_BIN)
	mkdir -p build/fuzz/corpus
	$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -dict=csrc/fuzz/answer.dict -print_final_stats=1 \
	  build/fuzz/corpus csrc/fuzz/seeds

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
