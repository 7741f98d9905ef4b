# Thin wrapper over CMake. `make run` and `make test` install what they need first.
BUILD_DIR ?= build
# The torch2 configuration: the same code against PyPI's libtorch 2.x (CUDA) in .venv/ (docs/gpu.md).
TORCH2_BUILD_DIR ?= build-torch2
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# ccache: paths under the checkout are hashed relative to it, so a fresh clone (CI) reuses the
# objects another checkout on the same machine compiled.
export CCACHE_BASEDIR ?= $(CURDIR)
# cmake's generated makefiles recurse; a newcomer does not need to read every directory change.
MAKEFLAGS += --no-print-directory

.PHONY: deps configure build build-ipt test run bench clean venv-torch build-torch2 test-torch2 venv-python test-python

deps:
	@bash scripts/install-deps.sh

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

configure: $(BUILD_DIR)/CMakeCache.txt

# Everything: the library, the tool, the tests, the microbenchmarks.
build: deps configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Only what the main job needs (the library and the ipt tool, not the test suite).
build-ipt: deps configure
	cmake --build $(BUILD_DIR) -j $(JOBS) --target ipt

# The suite runs the OpenAI SDK test (Server.OpenAiPythonSdk) with .venv's Python, which has the SDK.
test: build venv-python
	cd $(BUILD_DIR) && IPT_TEST_PYTHON=$(CURDIR)/.venv/bin/python ctest --output-on-failure -j $(JOBS)
	$(MAKE) test-python

# The bundled TTT model's demo, then the real pretrained model when it can be fetched (scripts/run-main.sh).
run: build-ipt
	IPT=./$(BUILD_DIR)/ipt bash scripts/run-main.sh

bench: build-ipt
	./$(BUILD_DIR)/ipt bench op --L 32768 --d 1024 --h 4096 --chunk 256

# The torch2 build: installs the pinned torch wheel into .venv/ (PyPI), configures against its
# libtorch (CUDA compiled in; runs on CPU-only machines too) and builds the library, the tool and
# the tests (no microbenchmarks). test-torch2 runs the whole suite there; CUDA tests skip without a GPU.
venv-torch:
	@bash scripts/setup-venv.sh torch

$(TORCH2_BUILD_DIR)/CMakeCache.txt:
	$(MAKE) venv-torch
	cmake -S . -B $(TORCH2_BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DIPT_BUILD_BENCH=OFF \
	  -DCMAKE_PREFIX_PATH="$$(.venv/bin/python -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)" $(CMAKE_FLAGS)

build-torch2: deps venv-torch $(TORCH2_BUILD_DIR)/CMakeCache.txt
	cmake --build $(TORCH2_BUILD_DIR) -j $(JOBS)

test-torch2: build-torch2
	cd $(TORCH2_BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

# The pip package inplace_ttt (python/, docs/python.md): installed into .venv/ against its torch, then
# its pytest suite, which also runs build/ipt (logits against `ipt score`, token data for the trainer).
# ccache keeps a second build of the extension to seconds.
venv-python:
	@bash scripts/setup-venv.sh python

test-python: build-ipt venv-python
	CXX="ccache g++" MAX_JOBS=$(JOBS) .venv/bin/python -m pip install -q --disable-pip-version-check --no-build-isolation ./python
	IPT=$(CURDIR)/$(BUILD_DIR)/ipt .venv/bin/python -m pytest -q python/tests

clean:
	rm -rf $(BUILD_DIR) $(TORCH2_BUILD_DIR) python/build
