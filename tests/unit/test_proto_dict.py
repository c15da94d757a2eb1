"""`proto_dict.message_to_dict` is `json_format.MessageToDict` with Kubernetes' numbers
restored (int64 fields, numeric int-or-string text), as `manifests` computed it before:
checked on random objects of every kind, built field by field from their descriptors."""

from __future__ import annotations

import math
from typing import Any, cast

import pytest
from google.protobuf import json_format, struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st

from kubelab.core import kinds
from kubelab.core.manifests_shape import INT_OR_STRING
from kubelab.core.proto_dict import message_to_dict
from kubelab.core.validation.syntax import INT_TEXT_RE

_INT64 = {FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64}


def restored(body: Any, descriptor: Descriptor) -> Any:
    """The reference: what `manifests` did after `MessageToDict`."""
    for key, value in list(body.items()):
        field = next((f for f in descriptor.fields if f.json_name == key), None)
        message_type = field.message_type if field is not None else None
        if field is None or (message_type is not None and message_type.GetOptions().map_entry):
            continue
        if message_type is not None:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict) and message_type.full_name.startswith("kubelab."):
                    restored(item, message_type)
        elif field.cpp_type in _INT64:
            body[key] = [int(v) for v in value] if isinstance(value, list) else int(value)
        elif field.full_name in INT_OR_STRING and INT_TEXT_RE.fullmatch(value):
            body[key] = int(value)
    return body


texts = st.sampled_from(["", "a", "0", "80", "-5", "0080", "http", "ünï"])


def fill(draw: st.DrawFn, message: Any, depth: int) -> None:
    descriptor = message.DESCRIPTOR
    if descriptor.full_name == "google.protobuf.Timestamp":
        message.seconds = draw(st.integers(0, 2**33))
        message.nanos = draw(st.sampled_from([0, 5_000_000, 123_456_789]))
        return
    if descriptor.full_name == "google.protobuf.Struct":
        message.update(draw(st.dictionaries(st.sampled_from(["f:a", "."]), st.just({}))))
        return
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            getattr(message, field.name).update(draw(st.dictionaries(texts, texts, max_size=2)))
        elif field.message_type is not None:
            if depth > 4:
                continue
            count = draw(st.integers(0, 2)) if field.is_repeated else 1
            for _ in range(count):
                inner = getattr(message, field.name)
                fill(draw, inner.add() if field.is_repeated else inner, depth + 1)
        else:
            value = scalar(draw, field)
            if field.is_repeated:
                getattr(message, field.name).extend([value, scalar(draw, field)])
            else:
                setattr(message, field.name, value)


def scalar(draw: st.DrawFn, field: FieldDescriptor) -> Any:
    if field.cpp_type == FieldDescriptor.CPPTYPE_STRING:
        return draw(texts)
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        return draw(st.booleans())
    if field.cpp_type in _INT64:
        return draw(st.integers(0, 2**40))
    low = 0 if field.cpp_type == FieldDescriptor.CPPTYPE_UINT32 else -5
    return draw(st.integers(low, 70000))


@st.composite
def objects(draw: st.DrawFn, info: kinds.KindInfo[Any]) -> Message:
    message = info.message()
    fill(draw, message, 0)
    return cast(Message, message)


@pytest.mark.parametrize("info", kinds.ALL_KINDS, ids=lambda info: info.kind)
@given(data=st.data())
def test_every_kind_converts_as_message_to_dict_with_numbers_restored(
    info: kinds.KindInfo[Any], data: st.DataObject
) -> None:
    obj = data.draw(objects(info))
    expected = restored(json_format.MessageToDict(obj), cast(Descriptor, obj.DESCRIPTOR))
    assert message_to_dict(obj, INT_OR_STRING) == expected


# JSON values a Struct can hold (numbers are doubles: finite, as JSON has them).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(body=st.dictionaries(st.text(max_size=4), json_values, max_size=4))
def test_a_struct_of_any_json_converts_as_message_to_dict(body: dict[str, Any]) -> None:
    message = struct_pb2.Struct()
    message.update(body)
    assert message_to_dict(message) == json_format.MessageToDict(message)


@pytest.mark.parametrize("number", [math.inf, -math.inf, math.nan])
def test_a_number_json_cannot_hold_is_refused_as_message_to_dict_refuses_it(number: float) -> None:
    message = struct_pb2.Struct()
    message.update({"n": number})
    with pytest.raises(ValueError):
        json_format.MessageToDict(message)
    with pytest.raises(ValueError):
        message_to_dict(message)
