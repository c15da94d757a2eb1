"""The committed kubelab/v1 code must be exactly what the .proto files generate."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_generator() -> object:
    spec = importlib.util.spec_from_file_location("generate", REPO / "proto" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_not_stale(tmp_path: Path) -> None:
    if os.environ.get("CI") == "true":
        import grpc_tools  # noqa: F401  # in CI a missing generator fails, never skips
    else:
        pytest.importorskip("grpc_tools", reason="grpcio-tools (dev extra) generates the code")
    generator = _load_generator()
    generator.generate(tmp_path)  # type: ignore[attr-defined]
    fresh = {p.name: p.read_text() for p in (tmp_path / "kubelab" / "v1").iterdir()}
    committed = {
        p.name: p.read_text()
        for p in (REPO / "kubelab" / "v1").iterdir()
        if p.name != "__init__.py" and p.suffix in (".py", ".pyi")
    }
    stale = sorted(
        name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name)
    )
    assert not stale, (
        f"kubelab/v1 is stale for {stale}: run `{sys.executable} proto/generate.py` and commit"
    )
