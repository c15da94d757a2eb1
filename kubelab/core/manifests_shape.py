"""The shape check: a manifest's dict against the proto message it must become.

Step 3 of loading a manifest (`kubelab.core.manifests`): after the text is
parsed and the kind is known, `ShapeCheck.message` walks the document beside
the kind's message descriptor and returns a cleaned dict that
`json_format.ParseDict` cannot fail on for types.

- Each field is accepted by its JSON name (`clusterIP`) and its proto name
  (`cluster_ip`); giving both is an error. Mapping keys that YAML typed
  (`80:`, `true:`) are converted to text the way sigs.k8s.io/yaml does.
- Fields kubelab does not implement are dropped with a warning naming the
  full path (`spec.foo: unknown field, ignored`); a top-level `status` is
  dropped silently (kubectl ignores it on apply too); `null` means unset.
- Int-or-string fields (targetPort, probe ports, maxSurge/maxUnavailable) are
  proto strings and take `8080` or `"http"`; a number is stored as the string
  `"8080"`, so a string that spells a number the same way (`"12345"`) is
  refused here, in the words Kubernetes uses for a string that is no port name
  or percent: once stored it could not be told from the number. The number
  must fit an int32, as Kubernetes' IntOrString. Integers must fit their proto
  width; a float with no fractional part (JSON `8080.0`) counts as an integer.
- No value makes the check raise: integers of any length (Python refuses to
  print more than 4,300 digits), NaN and infinities, non-string keys, a list or
  an object where a scalar belongs; each is a field error.
- Every type error in the document is collected, not just the first, each
  with its path and Kubernetes wording
  (`spec.ports[0].port: Invalid value: "eighty": must be an integer`); the
  values in messages are shown as JSON would write them (`null`, `{...}`).

The descriptor helpers (`fields_of`, `is_map`, ...) are shared with the
printer in `kubelab.core.manifests`, which walks the same descriptors back.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from kubelab.core import errors
from kubelab.core.errors import FieldError
from kubelab.core.validation.syntax import INT_TEXT_RE, is_percent, is_port_name
from kubelab.core.yaml12 import LongInteger
from kubelab.v1 import objects_pb2

# Int-or-string fields are proto strings; Kubernetes YAML writes them as either.
INT_OR_STRING = frozenset(
    field.full_name
    for field in (
        objects_pb2.ServicePort.DESCRIPTOR.fields_by_name["target_port"],
        objects_pb2.HTTPGetAction.DESCRIPTOR.fields_by_name["port"],
        objects_pb2.TCPSocketAction.DESCRIPTOR.fields_by_name["port"],
        objects_pb2.RollingUpdateDeployment.DESCRIPTOR.fields_by_name["max_surge"],
        objects_pb2.RollingUpdateDeployment.DESCRIPTOR.fields_by_name["max_unavailable"],
    )
)

# How Kubernetes words a string int-or-string value that is not what a string must be.
_STRING_PROBLEMS = {
    objects_pb2.RollingUpdateDeployment.DESCRIPTOR.fields_by_name[
        "max_surge"
    ].full_name: is_percent,
    objects_pb2.RollingUpdateDeployment.DESCRIPTOR.fields_by_name[
        "max_unavailable"
    ].full_name: is_percent,
}
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1

_INT_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1, "a 32-bit integer"),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1, "a 64-bit integer"),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1, "an unsigned 32-bit integer"),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1, "an unsigned 64-bit integer"),
}
_TIMESTAMP = Timestamp.DESCRIPTOR.full_name
_STRUCT = "google.protobuf.Struct"


class _Shown:
    """A value as an error message shows it (`null`, `{...}`), not as Python does."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def show(value: object) -> object:
    """`value` as a Kubernetes error message shows it: scalars as they are,
    null, objects, lists and long strings abbreviated."""
    if value is None:
        return _Shown("null")
    if isinstance(value, dict):
        return _Shown("{...}")
    if isinstance(value, list):
        return _Shown("[...]")
    if isinstance(value, str) and len(value) > 64:
        return _Shown(json.dumps(value[:61]) + "...")
    if isinstance(value, int) and not isinstance(value, bool):
        return _Shown(errors.abbreviate(errors.int_text(value), 64))
    if isinstance(value, LongInteger):
        return _Shown(errors.abbreviate(value.text, 64))
    if isinstance(value, bool | float | str):
        return value
    return _Shown(type(value).__name__)


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _join(path: str, key: str) -> str:
    if not _PLAIN_KEY.fullmatch(key):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _key_text(key: object) -> str | None:
    """A mapping key as text, converted the way sigs.k8s.io/yaml converts it."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        text = errors.int_text(key)
        return text if text[-1:].isdigit() else None
    if isinstance(key, float):
        return str(key)
    return None


_FIELDS: dict[str, dict[str, FieldDescriptor]] = {}


def fields_of(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    """A message's fields by proto name and by JSON name (cached per message type)."""
    fields = _FIELDS.get(descriptor.full_name)
    if fields is None:
        fields = {f.name: f for f in descriptor.fields}
        fields.update({f.json_name: f for f in descriptor.fields})
        _FIELDS[descriptor.full_name] = fields
    return fields


def descriptor_of(message: Message | type[Message]) -> Descriptor:
    # The stubs type DESCRIPTOR as a union with upb's own class; it is one.
    return cast(Descriptor, message.DESCRIPTOR)


def message_type_of(field: FieldDescriptor) -> Descriptor:
    if field.message_type is None:
        raise TypeError(f"{field.full_name} is not a message field")
    return field.message_type


def is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


class _Invalid:
    """Marks a value that failed the check (its error is already recorded)."""


_INVALID = _Invalid()


class ShapeCheck:
    """One document's shape check: collects a cleaned dict, warnings and errors."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.errors: list[FieldError] = []

    def _invalid(self, path: str, value: object, detail: str) -> _Invalid:
        self.errors.append(errors.invalid(path, show(value), detail))
        return _INVALID

    def message(self, value: object, descriptor: Descriptor, path: str) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self._invalid(path, value, "must be an object")
            return None
        fields = fields_of(descriptor)
        cleaned: dict[str, Any] = {}
        given_as: dict[str, str] = {}
        for key, item in value.items():
            if not path and key == "status":
                continue  # Written by kubelab, never by a manifest (as with kubectl apply).
            text = _key_text(key)
            field = fields.get(text) if text is not None else None
            sub = _join(path, text if text is not None else str(show(key)))
            if field is None:
                self.warnings.append(f"{sub}: unknown field, ignored")
                continue
            if field.json_name in given_as:
                self._invalid(sub, item, f"the same field as {given_as[field.json_name]}")
                continue
            given_as[field.json_name] = sub
            if item is None:
                continue  # null means "not set", as in Kubernetes.
            result = self._field(item, field, sub)
            if not isinstance(result, _Invalid):
                cleaned[field.json_name] = result
        return cleaned

    def _field(self, value: object, field: FieldDescriptor, path: str) -> object:
        if is_map(field):
            if not isinstance(value, dict):
                return self._invalid(path, value, "must be an object")
            value_field = message_type_of(field).fields_by_name["value"]
            entries: dict[str, object] = {}
            for key, item in value.items():
                text = _key_text(key)
                if text is None:
                    self._invalid(path, key, "keys must be strings")
                    continue
                result = self._single(item, value_field, _join(path, text))
                if not isinstance(result, _Invalid):
                    entries[text] = result
            return entries
        if field.is_repeated:
            if not isinstance(value, list):
                return self._invalid(path, value, "must be a list")
            items = [self._single(item, field, f"{path}[{i}]") for i, item in enumerate(value)]
            return [item for item in items if not isinstance(item, _Invalid)]
        return self._single(value, field, path)

    def _single(self, value: object, field: FieldDescriptor, path: str) -> object:
        cpp = field.cpp_type
        if cpp == FieldDescriptor.CPPTYPE_MESSAGE:
            message_type = message_type_of(field)
            if message_type.full_name == _TIMESTAMP:
                return self._timestamp(value, path)
            if message_type.full_name == _STRUCT:
                # Free-form JSON (managedFields' fieldsV1): any object, kept as it is.
                if isinstance(value, dict):
                    return value
                return self._invalid(path, value, "must be an object")
            result = self.message(value, message_type, path)
            return _INVALID if result is None else result
        if cpp == FieldDescriptor.CPPTYPE_STRING:
            if field.full_name in INT_OR_STRING:
                return self._int_or_string(value, field, path)
            if isinstance(value, str):
                return value
            return self._invalid(path, value, "must be a string")
        if cpp == FieldDescriptor.CPPTYPE_BOOL:
            if isinstance(value, bool):
                return value
            return self._invalid(path, value, "must be a boolean")
        if cpp in _INT_RANGES:
            low, high, what = _INT_RANGES[cpp]
            if isinstance(value, LongInteger):
                return self._invalid(path, value, f"must fit in {what}")
            number = _as_int(value)
            if number is None:
                return self._invalid(path, value, "must be an integer")
            if not low <= number <= high:
                return self._invalid(path, value, f"must fit in {what}")
            return number
        if cpp in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
            if isinstance(value, float) and math.isfinite(value):
                return value
            if isinstance(value, int) and not isinstance(value, bool):
                # A float, or the nearest: ParseDict would refuse a huge int.
                as_float = float(value) if value.bit_length() < 1024 else math.inf
                if math.isfinite(as_float):
                    return as_float
            return self._invalid(path, value, "must be a number")
        if cpp == FieldDescriptor.CPPTYPE_ENUM and field.enum_type is not None:
            if isinstance(value, str) and value in field.enum_type.values_by_name:
                return value
            names = ", ".join(field.enum_type.values_by_name)
            return self._invalid(path, value, f"must be one of {names}")
        return self._invalid(path, value, "is not supported by kubelab")

    def _int_or_string(self, value: object, field: FieldDescriptor, path: str) -> object:
        if isinstance(value, str):
            if not INT_TEXT_RE.fullmatch(value):
                return value
            problems = _STRING_PROBLEMS.get(field.full_name, is_port_name)(value)
            for problem in problems:
                self._invalid(path, value, problem)
            return _INVALID
        if isinstance(value, LongInteger):
            return self._invalid(path, value, "must fit in a 32-bit integer")
        number = _as_int(value)
        if number is None:
            return self._invalid(path, value, "must be an integer or a string")
        if not _INT32_MIN <= number <= _INT32_MAX:
            return self._invalid(path, value, "must fit in a 32-bit integer")
        return str(number)

    def _timestamp(self, value: object, path: str) -> object:
        if isinstance(value, str):
            try:
                Timestamp().FromJsonString(value)
            except ValueError:
                pass
            else:
                return value
        return self._invalid(path, value, "must be an RFC 3339 time (2006-01-02T15:04:05Z)")


def _as_int(value: object) -> int | None:
    """An integer, or a float with no fractional part (JSON `8080.0`); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None
