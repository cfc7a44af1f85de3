"""Generate the committed Python code for proto/riskstream/v1.

Why a script: the generated files are committed (services import them without a
build step) and tests/proto/test_generated_current.py regenerates into a temporary
directory and compares, so this is the one definition of how they are produced.

Usage: python scripts/gen_proto.py [OUT_DIR]   (default: proto/, in place)
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "proto"


def proto_files() -> list[Path]:
    """Every .proto under proto/riskstream, sorted for a stable order."""
    return sorted((PROTO_ROOT / "riskstream").rglob("*.proto"))


def generate(out_dir: Path) -> None:
    """Run protoc (grpcio-tools' bundled copy) with the Python, gRPC and mypy plugins."""
    out_dir.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).parent / "_proto"
    # mypy-protobuf's plugin sits beside this interpreter; do not rely on PATH.
    mypy_plugin = shutil.which("protoc-gen-mypy") or str(
        Path(sys.executable).parent / "protoc-gen-mypy"
    )
    args = [
        "grpc_tools.protoc",
        f"--plugin=protoc-gen-mypy={mypy_plugin}",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO_ROOT)
