"""Generate the Python stubs of graphfuse.v1 beside the .proto files, or check that they are current.

Usage: python proto/generate.py [--check]
"""

from __future__ import annotations

import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
PROTO_FILES = sorted(PROTO_ROOT.glob("graphfuse/v1/*.proto"))
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out_dir: Path) -> list[Path]:
    """Run protoc on every graphfuse.v1 .proto file, writing stubs under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(path.relative_to(PROTO_ROOT)) for path in PROTO_FILES),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    return sorted(p.relative_to(out_dir) for p in out_dir.rglob("*") if p.name.endswith(GENERATED_SUFFIXES))


def stale_stubs() -> list[str]:
    """Generated files that differ from (or are missing beside) the committed ones."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        return [
            str(rel)
            for rel in fresh
            if not (PROTO_ROOT / rel).exists()
            or not filecmp.cmp(Path(tmp) / rel, PROTO_ROOT / rel, shallow=False)
        ]


def main() -> int:
    if "--check" in sys.argv[1:]:
        stale = stale_stubs()
        if stale:
            print(f"stubs out of date: {', '.join(stale)}; run: python proto/generate.py", file=sys.stderr)
            return 1
        print("stubs up to date")
        return 0
    for rel in generate(PROTO_ROOT):
        print(f"wrote proto/{rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
