#!/usr/bin/env bash
# Builds llama.cpp's llama-bench and llama-perplexity outside this repository, for the peer
# benchmarks (scripts/bench-peers.sh, scripts/bench-llamacpp.sh). Not part of `make test`.
#   scripts/build-llama-cpp.sh [SOURCE] [DEST]
# SOURCE: a llama.cpp git repository to clone from: a checkout, a bare mirror, or a URL (default
#   $LLAMA_CPP_SRC, else the bare mirror /work/.mirror/ggerganov+llama.cpp/repo when it exists,
#   else https://github.com/ggerganov/llama.cpp).
# DEST: the checkout to create (default $LLAMA_CPP_DIR, else /tmp/llama.cpp); built into DEST/build,
#   binaries and shared libraries in DEST/build/bin. An existing DEST checkout is reused.
# Environment: LLAMA_CPP_REF (commit or tag to build; default the source's HEAD), JOBS (parallel
#   compile jobs, default all cores), NICE (niceness of the build, default 10).
# Files missing from a partial mirror (large GGUF vocabularies under models/, which the build does
# not need) are left out of the checkout with a sparse-checkout pattern.
set -euo pipefail
MIRROR=/work/.mirror/ggerganov+llama.cpp/repo
if [[ -n ${LLAMA_CPP_SRC:-} ]]; then DEFAULT_SRC=$LLAMA_CPP_SRC
elif [[ -d $MIRROR ]]; then DEFAULT_SRC=$MIRROR
else DEFAULT_SRC=https://github.com/ggerganov/llama.cpp; fi
SRC=${1:-$DEFAULT_SRC}
DEST=${2:-${LLAMA_CPP_DIR:-/tmp/llama.cpp}}
JOBS=${JOBS:-$(nproc)}
NICE=${NICE:-10}

if [[ ! -d $DEST/.git ]]; then
  echo "build-llama-cpp: cloning $SRC into $DEST" >&2
  git clone -q --no-checkout "$SRC" "$DEST"
  REV=$(git -C "$DEST" rev-parse "${LLAMA_CPP_REF:-HEAD}^{commit}")
  # Paths whose blobs the source does not have (a partial mirror): leave them out of the checkout.
  mapfile -t missing < <(git -C "$DEST" ls-tree -r "$REV" |
    awk '$2 == "blob" { print $3 }' | git -C "$DEST" cat-file --batch-check='%(objectname)' |
    awk '$2 == "missing" { print $1 }')
  if [[ ${#missing[@]} -gt 0 ]]; then
    patterns=('/*')
    while read -r _ _ sha path; do
      for m in "${missing[@]}"; do [[ $sha == "$m" ]] && patterns+=("!/$path"); done
    done < <(git -C "$DEST" ls-tree -r "$REV")
    echo "build-llama-cpp: ${#missing[@]} files absent from $SRC, left out: ${patterns[*]:1}" \
      "(git may still print 'invalid object' for them; the checkout completes)" >&2
    git -C "$DEST" config core.sparseCheckout true
    printf '%s\n' "${patterns[@]}" > "$DEST/.git/info/sparse-checkout"
  fi
  git -C "$DEST" checkout -q --detach "$REV"
elif [[ -n ${LLAMA_CPP_REF:-} ]]; then
  git -C "$DEST" checkout -q --detach "$LLAMA_CPP_REF"
fi
echo "build-llama-cpp: llama.cpp $(git -C "$DEST" log -1 --format='%H (%cd)' --date=short)" >&2

# Feb 2025 trees keep llama-bench and llama-perplexity under examples/, later ones under tools/:
# both switches on (CMake ignores the one a tree does not know, with a warning).
nice -n "$NICE" cmake -S "$DEST" -B "$DEST/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=OFF >&2
nice -n "$NICE" cmake --build "$DEST/build" --target llama-bench llama-perplexity -j "$JOBS" >&2
ls -l "$DEST/build/bin/llama-bench" "$DEST/build/bin/llama-perplexity" >&2
echo "$DEST"
