#!/usr/bin/env bash
# Build llama-server from the llama.cpp tree vendored in the llama-cpp-python sdist.
# Why: no registry and no prebuilt binaries are reachable, and the build takes ~10 minutes
# on 2 cores, so the binary is cached and only rebuilt when missing.
#
# Usage: build-llama-server.sh [SDIST.tar.gz]
#   FINISHLINE_CACHE (default /var/cache/finishline) holds llama-server/llama-server.
#   PYTHON: the interpreter whose pip downloads the sdist when none is given.
#   LLAMA_CPP_PYTHON_VERSION: the sdist's version (required; `finishline images build` sets it).
# GGML_NATIVE=OFF: the cached binary may be restored on another x86-64 CI machine; the
# portable build still uses AVX2/FMA/F16C (ggml's default CPU variant for x86-64).
set -euo pipefail

# The version lives in coordinator/docker/images.py (LLAMA_CPP_PYTHON_VERSION), which passes it.
VERSION="${LLAMA_CPP_PYTHON_VERSION:?set LLAMA_CPP_PYTHON_VERSION (finishline images build does)}"
CACHE="${FINISHLINE_CACHE:-/var/cache/finishline}/llama-server"
BIN="$CACHE/llama-server"
JOBS="${FINISHLINE_BUILD_JOBS:-2}"

if [[ -x "$BIN" ]]; then
    echo "llama-server cached at $BIN"
    exit 0
fi

mkdir -p "$CACHE"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/llama-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

SDIST="${1:-}"
if [[ -z "$SDIST" ]]; then
    "${PYTHON:-python3}" -m pip download --no-deps --no-binary :all: -d "$WORK" "llama-cpp-python==$VERSION"
    SDIST="$(ls "$WORK"/llama_cpp_python-*.tar.gz)"
fi
[[ -f "$SDIST" ]] || { echo "sdist not found: $SDIST" >&2; exit 2; }

tar -C "$WORK" -xzf "$SDIST"
SRC="$(ls -d "$WORK"/llama_cpp_python-*/vendor/llama.cpp)"

start=$(date +%s)
nice -n 10 cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF
nice -n 10 cmake --build "$WORK/build" --target llama-server -j"$JOBS"
strip "$WORK/build/bin/llama-server" || true
# Atomic publish: a half-copied binary must never look cached.
cp "$WORK/build/bin/llama-server" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "built $BIN in $(( $(date +%s) - start )) s"
