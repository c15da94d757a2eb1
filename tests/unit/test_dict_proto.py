"""`dict_proto` builds what `json_format` would: `fill` the message `ParseDict` builds
from a document the shape check cleaned (random objects of every kind), `fill_struct`
the Struct `Struct.update` builds, `set_time` the Timestamp `FromJsonString` reads."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from kubelab.core import kinds
from kubelab.core.dict_proto import fill, fill_struct, set_time
from kubelab.core.manifests_shape import INT_OR_STRING, ShapeCheck, descriptor_of
from kubelab.core.proto_dict import message_to_dict
from kubelab.v1 import objects_pb2
from tests.unit.test_proto_dict import objects

keys = st.sampled_from(
    ["f:spec", "f:ports", ".", 'k:{"port":80,"protocol":"TCP"}', 'v:"a"', "ü", ""]
)
trees: st.SearchStrategy[dict[str, Any]] = st.recursive(
    st.just({}), lambda inner: st.dictionaries(keys | st.text(max_size=200), inner, max_size=4)
)


@given(tree=trees)
def test_a_fieldsv1_tree_becomes_the_struct_update_builds(tree: dict[str, Any]) -> None:
    expected = Struct()
    expected.update(tree)
    got = Struct()
    got.update({"stale": 1})
    fill_struct(tree, got)
    assert got == expected


@pytest.mark.parametrize(
    "tree", [{"f:a": 1}, {"f:a": {"f:b": None}}, {"f:a": {"f:b": ["x"]}}], ids=str
)
def test_a_tree_with_other_values_still_becomes_what_struct_update_builds(
    tree: dict[str, Any],
) -> None:
    expected = Struct()
    expected.update(tree)
    got = Struct()
    fill_struct(tree, got)
    assert got == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-07T13:00:05Z",
        "1970-01-01T00:00:00Z",
        "2026-12-07T13:00:05.5Z",
        "2026-12-07T13:00:05+01:00",
        "2026-02-30T13:00:05Z",
        "2026-12-07 13:00:05Z",
        "yesterday",
    ],
)
def test_a_time_is_read_as_from_json_string_reads_it(text: str) -> None:
    expected, got = Timestamp(), Timestamp()
    try:
        expected.FromJsonString(text)
    except ValueError:
        with pytest.raises(ValueError):
            set_time(got, text)
        return
    set_time(got, text)
    assert got == expected


@pytest.mark.parametrize("info", kinds.ALL_KINDS, ids=lambda info: info.kind)
@given(data=st.data())
def test_a_checked_document_of_every_kind_fills_the_message_parse_dict_builds(
    info: kinds.KindInfo[Any], data: st.DataObject
) -> None:
    # A random object as Kubernetes' JSON, then the shape check: what a request brings.
    document = message_to_dict(data.draw(objects(info)), INT_OR_STRING)
    walk = ShapeCheck()
    cleaned = walk.message(document, descriptor_of(info.message), "")
    assert cleaned is not None and not walk.errors
    expected = info.message()
    json_format.ParseDict(cleaned, expected)
    got = info.message()
    fill(cleaned, got)
    assert got == expected
    assert got.SerializeToString(deterministic=True) == expected.SerializeToString(
        deterministic=True
    )


def test_an_empty_object_still_sets_its_field_as_parse_dict_does() -> None:
    document: dict[str, Any] = {"spec": {"sessionAffinityConfig": {}}, "metadata": {}}
    expected, got = objects_pb2.Service(), objects_pb2.Service()
    json_format.ParseDict(document, expected)
    fill(document, got)
    assert got.spec.HasField("session_affinity_config")
    assert got == expected
