"""Regenerate the Python code for every .proto under proto/ into libs/ (one generated package per folder).

The generated modules are committed; tests/test_contracts.py regenerates into a temporary folder and fails when the
committed code is stale, so the two can never drift apart.  Usage: python scripts/gen_protos.py [OUT_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"


def generate(out_dir: Path) -> list[Path]:
    protos = sorted(PROTO_DIR.rglob("*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p) for p in protos),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    generated = sorted(p for p in out_dir.rglob("*_pb2*.py*"))
    for folder in {p.parent for p in generated}:
        (folder / "__init__.py").touch()
    return generated


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "libs"
    for path in generate(target):
        print(path.relative_to(target))
