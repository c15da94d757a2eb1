from __future__ import annotations

import json
import logging

import grpc
import pytest

from kubelab.core import errors
from kubelab.rpc.errors import (
    MESSAGE_MAX_BYTES,
    TRAILER_MAX_BYTES,
    _field_errors_trailer,
    capped,
    internal_status,
)


@pytest.mark.parametrize(
    ("message", "limit"),
    [
        pytest.param("x" * 10_000, MESSAGE_MAX_BYTES, id="ascii"),
        pytest.param("é" * 10_000, MESSAGE_MAX_BYTES // 3, id="percent-encoded"),
    ],
)
def test_long_messages_are_capped(message: str, limit: int) -> None:
    out = capped(message)
    assert len(out.encode()) <= limit
    assert out.endswith("bytes in all)")


def test_short_messages_are_kept() -> None:
    assert capped("name: Required value") == "name: Required value"


def test_the_trailer_lists_what_fits() -> None:
    found = [errors.invalid(f"spec.ports[{i}].port", i, "x" * 900) for i in range(100)]
    listed = json.loads(_field_errors_trailer(found))
    assert 0 < len(listed) < 100
    assert len(_field_errors_trailer(found)) <= TRAILER_MAX_BYTES
    assert listed[0]["field"] == "spec.ports[0].port"


def test_internal_answers_carry_an_id_that_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.rpc")
    try:
        raise RuntimeError("secret etcd detail")
    except RuntimeError:
        with caplog.at_level(logging.ERROR):
            code, message = internal_status(log, "Get")
    assert code is grpc.StatusCode.INTERNAL
    assert "secret" not in message
    error_id = message.split("error id ")[1].split(")")[0]
    assert error_id in caplog.text
    assert "secret etcd detail" in caplog.text
