"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902) for the Kubernetes API."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.apiserver.k8s.json_patch import apply_json_patch
from services.apiserver.k8s.jsonvalue import BadPatchError, Json, PatchError, json_equal
from services.apiserver.k8s.merge_patch import apply_merge_patch, create_merge_patch
from services.apiserver.k8s.patches import apply_patch, is_apply
from tests.unit.k8s_values import json_objects, json_values, without_nulls

SVC: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "py", "namespace": "default", "labels": {"a": "b"}},
    "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]},
}

# ---------------------------------------------------------------- merge patch


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        # RFC 7386 appendix A, every row.
        pytest.param({"a": "b"}, {"a": "c"}, {"a": "c"}, id="replace"),
        pytest.param({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}, id="add"),
        pytest.param({"a": "b"}, {"a": None}, {}, id="null-deletes"),
        pytest.param({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}, id="delete-one"),
        pytest.param({"a": ["b"]}, {"a": "c"}, {"a": "c"}, id="list-to-scalar"),
        pytest.param({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}, id="scalar-to-list"),
        pytest.param(
            {"a": {"b": "c"}},
            {"a": {"b": "d", "c": None}},
            {"a": {"b": "d"}},
            id="nested",
        ),
        pytest.param({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}, id="lists-replace"),
        pytest.param(["a", "b"], ["c", "d"], ["c", "d"], id="array-target"),
        pytest.param({"a": "b"}, ["c"], ["c"], id="array-patch"),
        pytest.param({"a": "foo"}, None, None, id="null-patch"),
        pytest.param({"a": "foo"}, "bar", "bar", id="string-patch"),
        pytest.param({"e": None}, {"a": 1}, {"e": None, "a": 1}, id="null-kept-in-target"),
        pytest.param([1, 2], {"a": "b", "c": None}, {"a": "b"}, id="object-over-array"),
        pytest.param({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}, id="deep-null"),
        # What `kubectl label` and `kubectl scale` send (recordings 12, 14).
        pytest.param(
            SVC,
            {"metadata": {"labels": {"e": "f"}}},
            {**SVC, "metadata": {**SVC["metadata"], "labels": {"a": "b", "e": "f"}}},
            id="py-2-merge-patch-label",
        ),
        pytest.param(
            {"spec": {"replicas": 3}}, {"spec": {"replicas": 6}}, {"spec": {"replicas": 6}}
        ),
    ],
)
def test_merge_patch(target: Json, patch: Json, expected: Json) -> None:
    before = copy.deepcopy(target)
    assert apply_merge_patch(target, patch) == expected
    assert target == before


@given(json_objects(), json_objects())
def test_merge_patch_of_the_difference_turns_a_into_b(
    a: dict[str, Json], b: dict[str, Json]
) -> None:
    b = without_nulls(b)  # type: ignore[assignment]
    assert json_equal(apply_merge_patch(a, create_merge_patch(a, b)), b)


@given(json_objects())
def test_merge_patch_of_nothing_changes_nothing(a: dict[str, Json]) -> None:
    assert create_merge_patch(a, a) == {}
    assert json_equal(apply_merge_patch(a, {}), a)


@given(json_objects(), json_objects())
def test_merge_patch_is_idempotent(a: dict[str, Json], patch: dict[str, Json]) -> None:
    once = apply_merge_patch(a, patch)
    assert json_equal(apply_merge_patch(once, patch), once)


# ---------------------------------------------------------------- json patch


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        pytest.param(
            # The Python client's list body (recording py-2 #255).
            [{"op": "add", "path": "/metadata/labels/c", "value": "d"}],
            {**SVC, "metadata": {**SVC["metadata"], "labels": {"a": "b", "c": "d"}}},
            id="py-2-add-label",
        ),
        pytest.param(
            [{"op": "replace", "path": "/spec/ports/0/port", "value": 81}],
            {**SVC, "spec": {"ports": [{"port": 81, "protocol": "TCP", "targetPort": 80}]}},
            id="replace-in-list",
        ),
        pytest.param(
            [{"op": "add", "path": "/spec/ports/-", "value": {"port": 443}}],
            {
                **SVC,
                "spec": {
                    "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}, {"port": 443}]
                },
            },
            id="append",
        ),
        pytest.param(
            [
                {"op": "test", "path": "/metadata/labels/a", "value": "b"},
                {"op": "remove", "path": "/metadata/labels/a"},
            ],
            {**SVC, "metadata": {**SVC["metadata"], "labels": {}}},
            id="test-then-remove",
        ),
        pytest.param(
            [{"op": "move", "from": "/metadata/labels/a", "path": "/metadata/labels/z"}],
            {**SVC, "metadata": {**SVC["metadata"], "labels": {"z": "b"}}},
            id="move",
        ),
        pytest.param(
            [{"op": "add", "path": "/metadata/annotations", "value": {"k~1x": "1"}}],
            {**SVC, "metadata": {**SVC["metadata"], "annotations": {"k~1x": "1"}}},
            id="value-kept-verbatim",
        ),
        pytest.param(
            [{"op": "add", "path": "/metadata/labels/x.io~1role", "value": "db"}],
            {**SVC, "metadata": {**SVC["metadata"], "labels": {"a": "b", "x.io/role": "db"}}},
            id="escaped-slash-in-label-key",
        ),
        pytest.param([], SVC, id="empty"),
    ],
)
def test_json_patch(ops: Json, expected: Json) -> None:
    before = copy.deepcopy(SVC)
    assert apply_json_patch(SVC, ops) == expected
    assert before == SVC


@pytest.mark.parametrize(
    ("ops", "status", "message"),
    [
        pytest.param(
            [{"op": "replace", "path": "/spec/portz", "value": 1}],
            422,
            "json patch operation 0 (replace /spec/portz): the path does not exist",
            id="replace-missing",
        ),
        pytest.param(
            [
                {"op": "add", "path": "/metadata/labels/c", "value": "d"},
                {"op": "remove", "path": "/spec/nope"},
            ],
            422,
            "json patch operation 1 (remove /spec/nope): the path does not exist",
            id="second-op-names-its-index",
        ),
        pytest.param(
            [{"op": "add", "path": "/status/a/b", "value": 1}],
            422,
            "json patch operation 0 (add /status/a/b): a part of the path does not exist",
            id="missing-parent",
        ),
        pytest.param(
            [{"op": "add", "path": "/spec/ports/7", "value": 1}],
            422,
            "json patch operation 0 (add /spec/ports/7): the index is past the end of the list",
            id="index-past-end",
        ),
        pytest.param(
            [{"op": "test", "path": "/metadata/name", "value": "other"}],
            422,
            "json patch operation 0 (test /metadata/name): the value there is not the value tested",
            id="test-fails",
        ),
        pytest.param(
            [{"op": "copy", "from": "/nope", "path": "/x"}],
            422,
            'json patch operation 0 (copy /x): the "from" path /nope does not exist',
            id="copy-from-missing",
        ),
        pytest.param(
            [{"op": "move", "from": "/spec", "path": "/spec/x"}],
            422,
            "json patch operation 0 (move /spec/x): a value cannot be moved into itself",
            id="move-into-itself",
        ),
        pytest.param(
            [{"op": "add", "path": "/kind/x", "value": 1}],
            422,
            "json patch operation 0 (add /kind/x): the path does not fit the document",
            id="through-a-string",
        ),
        pytest.param({"op": "add"}, 400, "a json patch must be a JSON array of operations"),
        pytest.param(["add"], 400, "json patch operation 0: must be an object", id="not-object"),
        pytest.param(
            [{"op": "frob", "path": "/a"}],
            400,
            "json patch operation 0: unknown op 'frob'; known: add, remove, replace, move, copy,"
            " test",
            id="unknown-op",
        ),
        pytest.param(
            [{"op": "add", "path": "/a"}],
            400,
            'json patch operation 0 (add): missing "value"',
            id="add-without-value",
        ),
        pytest.param(
            [{"op": "remove", "path": "metadata"}],
            400,
            'json patch operation 0 (remove): "path" must be a JSON pointer starting with /',
            id="not-a-pointer",
        ),
    ],
)
def test_json_patch_errors_name_the_operation(ops: Json, status: int, message: str) -> None:
    before = copy.deepcopy(SVC)
    with pytest.raises(PatchError) as caught:
        apply_json_patch(SVC, ops)
    assert str(caught.value) == message
    assert caught.value.status_code == status
    assert isinstance(caught.value, BadPatchError) == (status == 400)
    assert before == SVC


@given(
    json_values(),
    st.lists(
        st.fixed_dictionaries(
            {
                "op": st.sampled_from(["add", "remove", "replace", "test", "move", "copy"]),
                "path": st.sampled_from(["", "/a", "/a/0", "/b/c", "/-", "/a/-"]),
                "value": json_values(4),
                "from": st.sampled_from(["/a", "/b", ""]),
            }
        ),
        max_size=4,
    ),
)
def test_json_patch_either_applies_or_says_why(document: Json, ops: list[dict[str, Json]]) -> None:
    before = copy.deepcopy(document)
    try:
        apply_json_patch(document, ops)  # type: ignore[arg-type]
    except PatchError as exc:
        assert str(exc).startswith("json patch")
    assert json_equal(document, before)


@given(json_objects())
def test_json_patch_test_of_the_document_itself_passes(document: dict[str, Json]) -> None:
    assert json_equal(
        apply_json_patch(document, [{"op": "test", "path": "", "value": document}]), document
    )


# ---------------------------------------------------------------- dispatch by Content-Type


@pytest.mark.parametrize(
    ("content_type", "body", "labels"),
    [
        # The Python client's three patches of recording py-2, in order.
        pytest.param(
            "application/strategic-merge-patch+json",
            {"metadata": {"labels": {"a": "z"}}},
            {"a": "z"},
            id="strategic",
        ),
        pytest.param(
            "application/json-patch+json",
            [{"op": "add", "path": "/metadata/labels/c", "value": "d"}],
            {"a": "b", "c": "d"},
            id="json-patch",
        ),
        pytest.param(
            "application/merge-patch+json; charset=utf-8",
            {"metadata": {"labels": {"e": "f"}}},
            {"a": "b", "e": "f"},
            id="merge-with-parameters",
        ),
    ],
)
def test_apply_patch_picks_the_type_by_content_type(
    content_type: str, body: Json, labels: dict[str, str]
) -> None:
    result: Any = apply_patch(SVC, body, content_type, "Service")
    assert result["metadata"]["labels"] == labels


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        pytest.param("application/json", {}, 415, id="plain-json"),
        pytest.param("application/apply-patch+yaml", {}, 415, id="apply-goes-elsewhere"),
        pytest.param("application/merge-patch+json", ["x"], 400, id="merge-patch-not-object"),
        pytest.param(
            "application/json-patch+json",
            [{"op": "replace", "path": "", "value": [1]}],
            400,
            id="result-not-object",
        ),
        pytest.param("application/strategic-merge-patch+json", 3, 400, id="smp-not-object"),
    ],
)
def test_apply_patch_refusals(content_type: str, body: Json, status: int) -> None:
    with pytest.raises(PatchError) as caught:
        apply_patch(SVC, body, content_type, "Service")
    assert caught.value.status_code == status
    assert is_apply(content_type) == content_type.startswith("application/apply-patch")


def test_a_patch_nested_deeper_than_python_recurses_is_a_bad_request() -> None:
    deep: Any = 1
    for _ in range(5000):  # deeper than the recursion limit, built without recursing
        deep = {"a": deep}
    with pytest.raises(BadPatchError, match="nested too deeply"):
        apply_patch(SVC, {"spec": deep}, "application/strategic-merge-patch+json", "Service")
