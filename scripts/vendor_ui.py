#!/usr/bin/env python3
"""Refresh or check the web UI's third-party front-end files (core/server/static/vendor/).

The files are pinned in vendor.json (package, version, each file's sha256, its licence files).
`python scripts/vendor_ui.py` fetches each pinned package with `npm pack` (the maintainer's
machine needs Node; installing or running headwater does not), checks every file against its
recorded hash and copies it, with the package's licence, into the vendor folder.
`--check` only verifies the files in the repository against vendor.json (no network; a test
runs it). `--update` records the hashes of the pinned versions anew (after changing a version).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parent.parent / "core" / "server" / "static" / "vendor"
MANIFEST = VENDOR / "vendor.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def folder(package: str) -> Path:
    return VENDOR / package.lstrip("@").replace("/", "-")


def check() -> int:
    bad = 0
    for item in json.loads(MANIFEST.read_text())["packages"]:
        for name, digest in {**item["files"], **item["licenses"]}.items():
            path = folder(item["package"]) / Path(name).name
            if not path.is_file():
                print(f"missing: {path}")
                bad += 1
            elif sha256(path) != digest:
                print(f"hash mismatch: {path}")
                bad += 1
    print("vendored files: " + ("ok" if not bad else f"{bad} problem(s)"))
    return 1 if bad else 0


def fetch(update: bool) -> int:
    manifest = json.loads(MANIFEST.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        for item in manifest["packages"]:
            spec = f"{item['package']}@{item['version']}"
            tarball = (
                subprocess.run(["npm", "pack", "--silent", spec], cwd=tmp, check=True, capture_output=True, text=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            unpacked = Path(tmp, spec.replace("/", "_"))
            with tarfile.open(Path(tmp, tarball)) as archive:
                archive.extractall(unpacked, filter="data")
            target = folder(item["package"])
            target.mkdir(parents=True, exist_ok=True)
            for group in ("files", "licenses"):
                for name, digest in item[group].items():
                    source = unpacked / "package" / name
                    got = sha256(source)
                    if update:
                        item[group][name] = got
                    elif got != digest:
                        print(f"{spec} {name}: sha256 {got}, expected {digest}: nothing copied")
                        return 1
                    shutil.copyfile(source, target / Path(name).name)
            print(f"{spec}: {len(item['files'])} file(s) and licence copied to {target.relative_to(VENDOR.parent)}")
    if update:
        MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="verify the vendored files only")
    mode.add_argument("--update", action="store_true", help="record the hashes of the pinned versions")
    args = parser.parse_args()
    return check() if args.check else fetch(update=args.update)


if __name__ == "__main__":
    sys.exit(main())
