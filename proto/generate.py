"""Generate kubelab/v1/*_pb2*.py and .pyi from proto/kubelab/v1/*.proto.

`python proto/generate.py` writes into the repository; `generate(out)` writes
into any directory, which is how tests/unit/test_generated_code.py checks that
the committed code is not stale.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PROTO_ROOT.parent


def _plugin(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install the dev extra (mypy-protobuf)")
    return found


def generate(out: Path) -> None:
    sources = sorted(
        str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "kubelab/v1").glob("*.proto")
    )
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        # Typed stubs for the gRPC modules (mypy-protobuf), so mypy --strict checks callers.
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--mypy_grpc_out={out}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT)
