#!/usr/bin/env bash
# Creates .venv/ (ignored by git) with the pinned Python packages, from PyPI. Idempotent: pins
# already installed are skipped. Never a dependency of the default C++ build.
#   scripts/setup-venv.sh torch     PyTorch's wheel, whose libtorch (2.x, CUDA) the torch2 build links
#   scripts/setup-venv.sh goldens   that plus the references scripts/make-goldens.py runs
#   scripts/setup-venv.sh python    that plus what the pip package's build and tests need (make test-python)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

# torch 2.11.0 is what the lent GPU machines have (CUDA 13), so both builds of the torch2
# configuration compile against one API; its wheel pulls CUDA's runtime libraries from PyPI
# (about 4 GB installed) and runs on machines without a GPU too.
TORCH=(torch==2.11.0)
# transformers 4.57.3 is the version the official In-Place-TTT release pins; accelerate because its
# from_pretrained(gguf_file=) refuses to run without it (make-goldens.py --only gguf).
GOLDENS=(transformers==4.57.3 tokenizers==0.22.2 safetensors==0.8.0 numpy==2.4.6 einops==0.8.1 opt_einsum==3.4.0
         gguf==0.19.0 accelerate==1.15.0)
# The pip package (python/): pytest, ninja (parallel extension builds), PyYAML (the trainer's configs),
# wheel (setuptools 65, the venv's own, builds wheels only with it; pip --no-build-isolation uses it).
# openai: the SDK that tests/infer/openai_sdk_test.py drives `ipt serve` with (make test).
PYTHON=(pytest==9.2.0 ninja==1.13.2 PyYAML==6.0.4 wheel==0.48.0 openai==3.63.0)

case "${1:-torch}" in
  torch) pins=("${TORCH[@]}") ;;
  goldens) pins=("${TORCH[@]}" "${GOLDENS[@]}") ;;
  python) pins=("${TORCH[@]}" "${GOLDENS[@]}" "${PYTHON[@]}") ;;
  *) echo "usage: scripts/setup-venv.sh [torch|goldens|python]" >&2; exit 2 ;;
esac

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
missing=()
for pin in "${pins[@]}"; do
  name=${pin%%==*} version=${pin#*==}
  have=$("$VENV/bin/python" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p' || true)
  [ "${have%%+*}" = "$version" ] || missing+=("$pin")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-venv: $VENV has ${pins[*]}"
  exit 0
fi
echo "setup-venv: installing ${missing[*]} into $VENV (from PyPI)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${missing[@]}"
