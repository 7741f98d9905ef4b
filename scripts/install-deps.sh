#!/usr/bin/env bash
# Installs every Debian package that the build, the tests and the tools need.
# Idempotent: packages already present are skipped, so a second run costs one dpkg query.
set -euo pipefail

packages=(
  build-essential cmake ccache pkg-config git
  libtorch-dev                      # tensors, autograd, c10d (CPU build: Debian's libtorch 1.13)
  libgloo-dev                       # headers c10d's ProcessGroupGloo needs (data parallelism)
  libopenblas0-pthread              # without it libtorch's GEMM is the reference BLAS: ~5 instead of ~200 GFLOP/s
  libgtest-dev libgmock-dev libbenchmark-dev
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev
  libpcre2-dev libutf8proc-dev      # tokenizer: Unicode-class regexes, NFC normalisation
  libcpp-httplib-dev                # HTTP server
  gnuplot-nox                       # plots
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; then
  echo "install-deps: first attempt failed; refreshing package lists and retrying" >&2
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
