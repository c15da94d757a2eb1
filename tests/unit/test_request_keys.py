from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubelab.core import kinds
from kubelab.core.kinds import UnknownKindError
from services.apiserver.logic.request_keys import (
    MAX_REVISION,
    InvalidRequestError,
    check_key,
    parse_resource_version,
    shown,
)


@pytest.mark.parametrize(
    ("kind", "namespace", "name", "expected"),
    [
        pytest.param("svc", "", "shop", kinds.SERVICES, id="default-namespace"),
        pytest.param("pods", "team-a", "web-0.x", kinds.PODS, id="subdomain-name"),
        pytest.param("nodes", "IGNORED_for_nodes", "node-1", kinds.NODES, id="cluster-scoped"),
        pytest.param("svc", "default", "n" * 253, kinds.SERVICES, id="longest-name"),
        pytest.param("svc", "default", "Old_Name", kinds.SERVICES, id="older-looser-name-readable"),
    ],
)
def test_keys_that_could_name_a_stored_object(
    kind: str, namespace: str, name: str, expected: kinds.KindInfo
) -> None:
    assert check_key(kind, namespace, name) is expected


@pytest.mark.parametrize(
    ("kind", "namespace", "name", "message"),
    [
        pytest.param("svc", "", "", "name: Required value", id="empty-name"),
        pytest.param("svc", "", "n" * 254, "name: Too long: may not be more than 253", id="long"),
        pytest.param("svc", "", "é" * 127, "name: Too long", id="long-in-bytes"),
        pytest.param("svc", "", "a/b", "name: Invalid value: \"a/b\": may not contain '/'", id="/"),
        pytest.param("svc", "", "a%2f", "may not contain '%'", id="percent"),
        pytest.param("svc", "", "..", "may not be '..'", id="dotdot"),
        pytest.param("svc", "N" * 64, "x", "namespace: Too long", id="long-namespace"),
        pytest.param("svc", "Team", "x", 'namespace: Invalid value: "Team"', id="bad-namespace"),
    ],
)
def test_keys_refused_with_the_field(kind: str, namespace: str, name: str, message: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_key(kind, namespace, name)
    assert message in str(caught.value)
    assert caught.value.errors


def test_an_unknown_kind_is_echoed_short() -> None:
    with pytest.raises(UnknownKindError) as caught:
        check_key("x" * 5_000_000, "", "a")
    assert "(5000000 characters)" in str(caught.value)
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", None, id="empty"),
        pytest.param("0", 0, id="zero"),
        pytest.param("42", 42, id="plain"),
        pytest.param(str(MAX_REVISION), MAX_REVISION, id="int64-max"),
    ],
)
def test_resource_versions(text: str, expected: int | None) -> None:
    assert parse_resource_version(text) == expected


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        pytest.param("99999999999999999999999", "must be no more than", id="overflow"),
        pytest.param(str(MAX_REVISION + 1), "must be no more than", id="int64-max+1"),
        pytest.param("9" * 5000, "must be no more than", id="past-int-parsing-limit"),
        pytest.param("-5", "non-negative integer", id="negative"),
        pytest.param("abc", "non-negative integer", id="text"),
        pytest.param("١٢", "non-negative integer", id="non-ascii-digits"),
        pytest.param(" 5", "non-negative integer", id="space"),
    ],
)
def test_bad_resource_versions(text: str, detail: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_resource_version(text, "metadata.resourceVersion")
    assert str(caught.value).startswith("metadata.resourceVersion: Invalid value: ")
    assert detail in str(caught.value)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text())
def test_any_resource_version_parses_or_is_refused(text: str) -> None:
    try:
        revision = parse_resource_version(text)
    except InvalidRequestError as err:
        assert len(str(err)) < 300
    else:
        assert revision is None or 0 <= revision <= MAX_REVISION


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(), st.text())
def test_any_key_is_checked_without_raising_anything_else(namespace: str, name: str) -> None:
    try:
        check_key("pods", namespace, name)
    except InvalidRequestError as err:
        assert err.errors


def test_shown_keeps_short_values_and_cuts_long_ones() -> None:
    assert shown("abc") == "abc"
    assert shown("a" * 100, 10) == "aaaaaaaaaa...(100 characters)"
