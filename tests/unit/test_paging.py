"""The continue token: Kubernetes' encoding, and refusal of anything kubelab did not make."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelab.core.paging import (
    Continue,
    InvalidContinueError,
    decode_continue,
    encode_continue,
    next_start,
)


def raw_token(doc: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


def test_the_token_is_kubernetes_encoding() -> None:
    token = encode_continue(Continue(42, next_start("default/shop")))
    padded = token + "=" * (-len(token) % 4)
    assert json.loads(base64.urlsafe_b64decode(padded)) == {
        "v": "meta.k8s.io/v1",
        "rv": 42,
        "start": "default/shop\x00",
    }
    assert "=" not in token


def test_a_kubernetes_token_decodes() -> None:
    # Encoded as kube-apiserver encodes it (Go's encoding/json writes NUL as \u0000).
    token = "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTIzNCwic3RhcnQiOiJkZWZhdWx0L3Nob3BcdTAwMDAifQ"
    assert decode_continue(token) == Continue(1234, "default/shop\x00")


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=63)


@given(
    revision=st.integers(min_value=1, max_value=2**63 - 1),
    namespace=names.filter(lambda n: n not in (".", "..")),
    name=names.filter(lambda n: n not in (".", "..")),
)
def test_encode_then_decode_is_identity(revision: int, namespace: str, name: str) -> None:
    token = Continue(revision, next_start(f"{namespace}/{name}"))
    assert decode_continue(encode_continue(token)) == token


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        pytest.param("not base64!", "", id="not-base64"),
        pytest.param(base64.urlsafe_b64encode(b"\xff\xfe").decode(), "", id="not-json"),
        pytest.param(raw_token([1, 2]), "version", id="not-an-object"),
        pytest.param(raw_token({"v": "v2", "rv": 1, "start": "a"}), "version", id="version"),
        pytest.param(
            raw_token({"v": "meta.k8s.io/v1", "rv": 0, "start": "a"}),
            "resource version",
            id="rv-zero",
        ),
        pytest.param(
            raw_token({"v": "meta.k8s.io/v1", "rv": -3, "start": "a"}),
            "resource version",
            id="rv-negative",
        ),
        pytest.param(
            raw_token({"v": "meta.k8s.io/v1", "rv": 2**63, "start": "a"}),
            "resource version",
            id="rv-over-int64",
        ),
        pytest.param(
            raw_token({"v": "meta.k8s.io/v1", "rv": "7", "start": "a"}),
            "resource version",
            id="rv-string",
        ),
        pytest.param(
            raw_token({"v": "meta.k8s.io/v1", "rv": True, "start": "a"}),
            "resource version",
            id="rv-bool",
        ),
        pytest.param(
            raw_token({"v": "meta.k8s.io/v1", "rv": 5, "start": ""}), "empty", id="start-empty"
        ),
        pytest.param(raw_token({"v": "meta.k8s.io/v1", "rv": 5}), "empty", id="start-missing"),
        pytest.param(
            raw_token({"v": "meta.k8s.io/v1", "rv": 5, "start": "../secrets/x"}),
            "clean",
            id="dot-dot",
        ),
        pytest.param(
            raw_token({"v": "meta.k8s.io/v1", "rv": 5, "start": "a/../../b"}),
            "clean",
            id="dot-dot-inside",
        ),
        pytest.param(
            raw_token({"v": "meta.k8s.io/v1", "rv": 5, "start": "/abs"}), "clean", id="absolute"
        ),
        pytest.param(
            raw_token({"v": "meta.k8s.io/v1", "rv": 5, "start": "a//b"}), "clean", id="double-slash"
        ),
        pytest.param(
            raw_token({"v": "meta.k8s.io/v1", "rv": 5, "start": "a/"}), "clean", id="trailing-slash"
        ),
    ],
)
def test_a_token_kubelab_did_not_make_is_refused(token: str, detail: str) -> None:
    with pytest.raises(InvalidContinueError) as caught:
        decode_continue(token)
    assert str(caught.value).startswith("invalid continue token: continue key is not valid")
    assert detail in str(caught.value)
