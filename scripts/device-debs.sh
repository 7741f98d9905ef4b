#!/usr/bin/env bash
# Downloads, here, the Debian packages the build needs on a lent GPU machine (which reaches no
# package registry) into .device/debs/ (ignored by git), for scripts/device-check.sh to unpack
# there. Headers, CMake/pkg-config files and the shared libraries they name; the compiler, CMake,
# CUDA and PyTorch (whose libtorch the build links) are the machine's own. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(
  libyaml-cpp-dev libyaml-cpp0.7 nlohmann-json3-dev libcli11-dev
  libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3 libutf8proc-dev libutf8proc2
  libcpp-httplib-dev libcpp-httplib0.11 libssl-dev libssl3 zlib1g-dev libbrotli-dev libbrotli1
  libgtest-dev libgmock-dev libgloo-dev
  pkgconf pkgconf-bin libpkgconf3
)
mkdir -p .device/debs
cd .device/debs
missing=()
for p in "${packages[@]}"; do
  ls "${p}"_*.deb >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get download "${missing[@]}" || { apt-get update >/dev/null && apt-get download "${missing[@]}"; }
fi
echo "device-debs: $(ls *.deb | wc -l) packages, $(du -sh . | cut -f1) in .device/debs"
