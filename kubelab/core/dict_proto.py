"""A checked manifest dict into its protobuf message, fast.

`manifests_shape.ShapeCheck` leaves a document whose every value has its field's
type (JSON names; integers as ints; int-or-string values as text; enums by name;
Timestamps as RFC 3339 text; Structs as plain JSON). `json_format.ParseDict` would
check all of that again, in Python, field by field: on the Kubernetes HTTP API's
creates it was as costly as the shape check itself. Here each message type's fields
are planned once (its attribute name and how a value is set), and a document is one
pass over its keys. `tests/unit/test_dict_proto.py` holds it equal to `ParseDict` for
random objects of every kind.

Also the two well-known types on their own: `fill_struct` (a Struct from JSON) and
`set_time` (a Timestamp from RFC 3339 text, without strptime for the whole
seconds in UTC that Kubernetes writes).

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

# A value of the document into `message`'s field: (message, attribute name, value).
_Set = Callable[[Any, str, Any], None]
_Fill = Callable[[dict[str, Any], Any], None]

_PLANS: dict[str, dict[str, tuple[str, _Set]]] = {}


def fill(document: dict[str, Any], message: Message) -> None:
    """`json_format.ParseDict(document, message)` for a document the shape check
    cleaned. Raises ValueError or TypeError where ParseDict would raise too (text
    the protobuf runtime refuses, such as a lone surrogate)."""
    _filler(cast(Descriptor, message.DESCRIPTOR))(document, message)


def _filler(descriptor: Descriptor) -> _Fill:
    name = descriptor.full_name
    if name == "google.protobuf.Timestamp":
        return _fill_timestamp
    if name == "google.protobuf.Struct":
        return fill_struct
    plan = _PLANS.get(name)
    if plan is None:
        plan = {}
        _PLANS[name] = plan  # before its fields: a message type may contain itself
        for field in descriptor.fields:
            plan[field.json_name] = (field.name, _setter(field))

    def fill_message(document: dict[str, Any], message: Any) -> None:
        for key, value in document.items():
            attribute, set_value = plan[key]
            set_value(message, attribute, value)

    return fill_message


def _setter(field: FieldDescriptor) -> _Set:
    message_type = field.message_type
    if message_type is not None and message_type.GetOptions().map_entry:
        value_field = message_type.fields_by_name["value"]
        if value_field.message_type is None:
            convert = _scalar(value_field)

            def set_map(message: Any, attribute: str, value: Any) -> None:
                entries = getattr(message, attribute)
                for key, item in value.items():
                    entries[key] = item if convert is None else convert(item)

            return set_map
        inner = value_field.message_type

        def set_message_map(message: Any, attribute: str, value: Any) -> None:
            entries = getattr(message, attribute)
            for key, item in value.items():
                _filler(inner)(item, entries[key])

        return set_message_map
    if message_type is not None:
        if field.is_repeated:

            def set_messages(message: Any, attribute: str, value: Any) -> None:
                items = getattr(message, attribute)
                each = _filler(message_type)
                for item in value:
                    each(item, items.add())

            return set_messages

        def set_message(message: Any, attribute: str, value: Any) -> None:
            inner = getattr(message, attribute)
            inner.SetInParent()  # `{}` still sets the field, as ParseDict does
            _filler(message_type)(value, inner)

        return set_message
    convert = _scalar(field)
    if field.is_repeated:
        if convert is None:
            return lambda message, attribute, value: getattr(message, attribute).extend(value)
        return lambda message, attribute, value: getattr(message, attribute).extend(
            [convert(v) for v in value]
        )
    if convert is None:
        return setattr
    return lambda message, attribute, value: setattr(message, attribute, convert(value))


def _scalar(field: FieldDescriptor) -> Callable[[Any], Any] | None:
    """How a checked scalar becomes the field's value; None: as it is."""
    if field.enum_type is not None:
        numbers = {name: value.number for name, value in field.enum_type.values_by_name.items()}
        return numbers.__getitem__
    return None


def _fill_timestamp(value: Any, message: Any) -> None:
    set_time(message, value)


_WHOLE_SECONDS_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def set_time(stamp: Any, text: str) -> None:
    """`Timestamp.FromJsonString(text)`; strptime, most of its cost, skipped for the
    whole seconds in UTC that Kubernetes writes (managedFields, creationTimestamp)."""
    if _WHOLE_SECONDS_UTC.fullmatch(text):
        try:
            seconds = int(datetime.fromisoformat(text).timestamp())
        except ValueError:
            pass  # a day the month does not have: FromJsonString words the error
        else:
            stamp.seconds, stamp.nanos = seconds, 0
            return
    stamp.FromJsonString(text)


def fill_struct(value: dict[str, Any], struct: Any) -> None:
    """The Struct `struct.update(value)` gives on an empty Struct (it is replaced).
    (Parsing its wire form, built in Python, was measured slower than `update`.)"""
    struct.Clear()
    struct.update(value)
