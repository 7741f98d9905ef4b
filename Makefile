# Thin wrapper over CMake. `make run` and `make test` install what they need first.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# cmake's generated makefiles recurse; a newcomer does not need to read every directory change.
MAKEFLAGS += --no-print-directory

.PHONY: deps configure build build-ipt test run bench clean

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

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

run: build-ipt
	./$(BUILD_DIR)/ipt demo

bench: build-ipt
	./$(BUILD_DIR)/ipt bench op --L 32768 --d 1024 --h 4096 --chunk 256

clean:
	rm -rf $(BUILD_DIR)
