#!/usr/bin/env python3
"""Builds the runctl wheel (and an sdist) with the standard library only.

A wheel of pure-Python files is a zip with the package and a `.dist-info`
directory (METADATA, WHEEL, RECORD; PEP 427 / PEP 491), so no setuptools,
`wheel` or `build` is needed, and a machine without network can build and
install it: `pip install --no-index dist/runctl-<version>-py3-none-any.whl`.

The version is the npm package's (package.json), the one source that
changesets bumps; `runctl/__init__.py`'s `__version__` must agree. Output goes
to `dist/` (shipped inside the npm package @runctl/client-python).

Usage: python3 scripts/build_wheel.py [--out DIR]
"""

import argparse
import base64
import hashlib
import io
import json
import re
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "runctl"
# Reproducible archives: every entry gets this timestamp (1980-01-01, the zip epoch).
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def metadata(version: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return (
        "Metadata-Version: 2.1\n"
        f"Name: {NAME}\n"
        f"Version: {version}\n"
        "Summary: runctl's Python client: record training runs in runctl run directories (standard library only)\n"
        "License: Apache-2.0\n"
        "Requires-Python: >=3.9\n"
        "Classifier: Programming Language :: Python :: 3\n"
        "Classifier: Programming Language :: Python :: 3 :: Only\n"
        "Classifier: Topic :: Scientific/Engineering :: Artificial Intelligence\n"
        "Description-Content-Type: text/markdown\n"
        "\n" + readme
    )


def record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def sources():
    return sorted(p for p in (ROOT / NAME).rglob("*.py") if "__pycache__" not in p.parts)


def build_wheel(version: str, out: Path) -> Path:
    dist_info = f"{NAME}-{version}.dist-info"
    files = [(p.relative_to(ROOT).as_posix(), p.read_bytes()) for p in sources()]
    files.append((f"{dist_info}/METADATA", metadata(version).encode()))
    files.append(
        (
            f"{dist_info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: runctl build_wheel.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
    )
    record = io.StringIO()
    for name, data in files:
        record.write(f"{name},{record_hash(data)},{len(data)}\n")
    record.write(f"{dist_info}/RECORD,,\n")
    files.append((f"{dist_info}/RECORD", record.getvalue().encode()))
    path = out / f"{NAME}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as whl:
        for name, data in files:
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            whl.writestr(info, data)
    return path


def build_sdist(version: str, out: Path) -> Path:
    base = f"{NAME}-{version}"
    path = out / f"{base}.tar.gz"
    entries = [(p.relative_to(ROOT).as_posix(), p.read_bytes()) for p in sources()]
    for name in ("pyproject.toml", "README.md"):
        entries.append((name, (ROOT / name).read_bytes()))
    entries.append(("PKG-INFO", metadata(version).encode()))
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(entries):
            info = tarfile.TarInfo(f"{base}/{name}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 315532800
            tar.addfile(info, io.BytesIO(data))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "dist"))
    args = parser.parse_args()
    version = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["version"]
    init = (ROOT / NAME / "__init__.py").read_text(encoding="utf-8")
    declared = re.search(r'^__version__ = "([^"]+)"', init, re.M)
    if not declared or declared.group(1) != version:
        found = declared.group(1) if declared else "none"
        print(
            f"build_wheel: runctl/__init__.py says __version__ = {found}, package.json says {version}; "
            "run `npm run version` (changeset version) or fix one of them",
            file=sys.stderr,
        )
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob(f"{NAME}-*.whl")) + list(out.glob(f"{NAME}-*.tar.gz")):
        old.unlink()
    for built in (build_wheel(version, out), build_sdist(version, out)):
        print(built.relative_to(ROOT) if built.is_relative_to(ROOT) else built)
    return 0


if __name__ == "__main__":
    sys.exit(main())
