#!/usr/bin/env bash
# Fuzzes one parser with libFuzzer under AddressSanitizer and UBSan.
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]      e.g. scripts/fuzz.sh safetensors 600
# TARGET is a file tests/fuzz/fuzz_TARGET.cpp. Seeds: tests/fuzz/corpus/TARGET (read only); the
# growing corpus: build-fuzz/corpus/TARGET; crashes, timeouts and oversized allocations:
# build-fuzz/findings/TARGET/ — copy each into tests/fuzz/regressions/TARGET/ once fixed, so
# `make test` replays it. The last lines printed are libFuzzer's final statistics.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]; targets:" >&2
  ls tests/fuzz/fuzz_*.cpp | sed 's|.*/fuzz_||; s|\.cpp$||' | sed 's/^/  /' >&2
  exit 2
fi
target=$1 seconds=$2
shift 2
[ -f "tests/fuzz/fuzz_$target.cpp" ] || { echo "fuzz.sh: no target '$target' (tests/fuzz/fuzz_$target.cpp)" >&2; exit 2; }

bash scripts/install-deps.sh >/dev/null
if ! command -v clang++ >/dev/null || ! echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, long) { return 0; }' |
     clang++ -x c++ -fsanitize=fuzzer - -o /dev/null 2>/dev/null; then
  echo "fuzz.sh: installing clang (libFuzzer)"
  apt-get install -y --no-install-recommends clang >/dev/null
fi

cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DIPT_FUZZ=ON >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target "fuzz_$target"

mkdir -p "build-fuzz/corpus/$target" "build-fuzz/findings/$target"
# Leaks: libtorch keeps global state alive to exit. A single allocation over 512 MB cannot be
# justified by an input of at most 1 MB: -malloc_limit_mb turns it into a finding.
export ASAN_OPTIONS=detect_leaks=0:detect_odr_violation=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
log="build-fuzz/fuzz-$target.log"
set +e
"build-fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -malloc_limit_mb=512 \
  -max_len=1048576 -print_final_stats=1 -artifact_prefix="build-fuzz/findings/$target/" "$@" \
  "build-fuzz/corpus/$target" "tests/fuzz/corpus/$target" >"$log" 2>&1
status=$?
set -e
grep -E '^#[0-9]+ +(INITED|DONE)|^stat::|^Done|ERROR|SUMMARY|Test unit written' "$log" || true
echo "fuzz.sh: $target: exit $status, $(ls "build-fuzz/findings/$target" | wc -l) finding(s) in build-fuzz/findings/$target; log $log"
exit "$status"
