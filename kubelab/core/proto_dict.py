"""kubelab's objects as Kubernetes' JSON shapes them, fast.

What `json_format.MessageToDict` gives (fields that are set, JSON names, Timestamps as
RFC 3339), then `manifests` restores what proto JSON turns into strings (int64 fields
and numeric int-or-string values). `json_format` does that walk in Python with a
dozen checks per field, and every object the Kubernetes HTTP API answers goes
through it: measured with py-spy on a create-heavy run, the two conversions of a
created Service (the managedFields bookkeeping and the answer) were a quarter of the
apiserver's CPU. Here each message type's fields are planned once (JSON name and
what to do with the value), and a message is one pass over `ListFields()`, which
the protobuf runtime does in C. `tests/unit/test_proto_dict.py` holds it equal to
`MessageToDict` plus the restoration, for random objects of every kind.

Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from kubelab.core.validation.syntax import INT_TEXT_RE

Convert = Callable[[Any], Any]


def message_to_dict(message: Message, int_or_string: frozenset[str] = frozenset()) -> Any:
    """The message as JSON data; `int_or_string`: full names of string fields whose
    numeric text is a number (Kubernetes' IntOrString)."""
    # The stubs type DESCRIPTOR as a union with upb's own class; it is one.
    return _converter(cast(Descriptor, message.DESCRIPTOR), int_or_string)(message)


_CONVERTERS: dict[tuple[str, frozenset[str]], Convert] = {}


def _converter(descriptor: Descriptor, int_or_string: frozenset[str]) -> Convert:
    key = (descriptor.full_name, int_or_string)
    found = _CONVERTERS.get(key)
    if found is not None:
        return found
    well_known = _WELL_KNOWN.get(descriptor.full_name)
    if well_known is not None:
        convert: Convert = well_known
    else:
        # By field number: a descriptor's `name` is a new string on every access.
        plan: dict[int, tuple[str, Convert | None]] = {}

        def convert(message: Any, plan: dict[int, tuple[str, Convert | None]] = plan) -> Any:
            out: dict[str, Any] = {}
            for field, value in message.ListFields():
                name, each = plan[field.number]
                out[name] = value if each is None else each(value)
            return out

        # Registered before the fields are planned: a message type may contain itself.
        _CONVERTERS[key] = convert
        for field in descriptor.fields:
            plan[field.number] = (field.json_name, _field_converter(field, int_or_string))
    _CONVERTERS[key] = convert
    return convert


def _field_converter(field: FieldDescriptor, int_or_string: frozenset[str]) -> Convert | None:
    """How a set field's value becomes JSON data; None: as it is."""
    message_type = field.message_type
    if message_type is not None and message_type.GetOptions().map_entry:
        value_field = message_type.fields_by_name["value"]
        inner = _field_converter(value_field, int_or_string)
        if value_field.message_type is not None:
            assert inner is not None
            return lambda value: {k: inner(v) for k, v in value.items()}
        return lambda value: dict(value)
    one = _single(field, int_or_string)
    if field.is_repeated:
        if one is None:
            return list
        return lambda values: [one(v) for v in values]
    return one


def _single(field: FieldDescriptor, int_or_string: frozenset[str]) -> Convert | None:
    if field.message_type is not None:
        return _converter(field.message_type, int_or_string)
    if field.enum_type is not None:
        enum = field.enum_type
        names = {number: value.name for number, value in enum.values_by_number.items()}
        return lambda number: names.get(number, number)
    if field.type == FieldDescriptor.TYPE_BYTES or field.cpp_type in (
        FieldDescriptor.CPPTYPE_FLOAT,
        FieldDescriptor.CPPTYPE_DOUBLE,
    ):
        raise NotImplementedError(f"{field.full_name}: no such field in kubelab's objects")
    if field.full_name in int_or_string:
        return lambda text: int(text) if INT_TEXT_RE.fullmatch(text) else text
    return None  # strings, bools, int32 and int64 (kept numbers, as Kubernetes prints them)


def _timestamp(message: Any) -> str:
    return str(message.ToJsonString())


# Struct and Value as `json_format` prints them, without its per-value descriptor
# lookups: a managedFields entry's fieldsV1 is a Struct of a few dozen nested
# Structs, and every object the HTTP API answers carries one per manager.
def _struct(message: Any) -> dict[str, Any]:
    return {key: _value(value) for key, value in message.fields.items()}


def _value(message: Any) -> Any:
    which = message.WhichOneof("kind")
    if which == "struct_value":
        return _struct(message.struct_value)
    if which is None or which == "null_value":
        return None
    if which == "list_value":
        return [_value(item) for item in message.list_value.values]
    if which == "number_value":
        number = message.number_value
        if math.isinf(number) or math.isnan(number):
            # json_format's rule: it would read back as a string.
            raise ValueError(f"Fail to serialize {number} for Value.number_value")
        return number
    return getattr(message, which)  # string_value, bool_value


_WELL_KNOWN: dict[str, Convert] = {
    "google.protobuf.Timestamp": _timestamp,
    "google.protobuf.Struct": _struct,
    "google.protobuf.Value": _value,
}
