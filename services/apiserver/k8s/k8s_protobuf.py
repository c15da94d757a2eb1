"""Kubernetes protobuf bodies -> the JSON object the same client would have sent.

kubectl 1.37's typed clients send `application/vnd.kubernetes.protobuf` whatever the
server advertises: `kubectl create namespace|deployment|service ...` POST a protobuf
body as their very first request, before any discovery (measured with -v=9), so
advertising less cannot change it and a 415 fails the command. `decode` turns such
a body into the Kubernetes JSON object, and everything after (strict field
validation, defaults, validation, managedFields) is the JSON path's, unchanged.

Schema (`protobuf_schema`): per k8s.io/api message, the field numbers of the kinds
kubelab serves through protobuf (Namespace, Service, Deployment, Pod) as
`generated.proto` numbers them, with their JSON names. What the JSON form of Go's
structs would leave out is left out: the gogo marshaller writes every non-pointer
field, so a zero string, number or bool and an empty message, list or map are
dropped, except for pointer fields (`presence`: `replicas: 0`,
`terminationGracePeriodSeconds: 0`), which are on the wire only when set.
`status` is not decoded (a create or update ignores it; a `/status` write through
protobuf is refused by the caller). A field kubelab does not model
(`OPAQUE`: volumes, affinity, resources, ...) that carries anything becomes a
placeholder under its JSON name, and an unknown field number one named
`<protobuf field N>`: field validation then treats each as it treats that JSON
field (a field Kubernetes has and kubelab does not implement is dropped with a
warning; a field number nobody knows is an unknown field, refused under Strict).

Errors are `ProtobufError` naming the JSON path (`spec.ports[0].port: ...`).
Pure: no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime

from services.apiserver.k8s import protowire
from services.apiserver.k8s.jsonvalue import Json, JsonObject
from services.apiserver.k8s.protobuf_schema import (
    BOOL,
    DROP,
    INT,
    INT_OR_STRING,
    KINDS,
    NOT_DECODED,
    OPAQUE,
    SCHEMA,
    STRING,
    STRING_MAP,
    TIME,
    Field,
)
from services.apiserver.k8s.protowire import LENGTH, VARINT, ProtobufError

__all__ = ["KINDS", "NOT_DECODED", "SCHEMA", "ProtobufError", "UndecodedKindError", "decode"]


class UndecodedKindError(ProtobufError):
    """A well-formed body of a kind kubelab does not decode from protobuf."""


def decode(body: bytes) -> JsonObject:
    """A Kubernetes protobuf body as the JSON object of its kind (with apiVersion and
    kind). ProtobufError when it is not one, or of a kind kubelab does not decode."""
    wrapped = protowire.envelope(body)
    message = KINDS.get((wrapped.api_version, wrapped.kind))
    if message is None:
        known = ", ".join(kind for _, kind in KINDS)
        raise UndecodedKindError(
            f"a protobuf body of {wrapped.api_version} {wrapped.kind} is not decoded "
            f"(kubelab decodes {known}); send it as application/json"
        )
    document: JsonObject = {"apiVersion": wrapped.api_version, "kind": wrapped.kind}
    document.update(_message(wrapped.raw, message, ""))
    return document


def _message(data: bytes, message: str, path: str) -> JsonObject:
    schema = SCHEMA[message]
    out: JsonObject = {}
    for wire in protowire.fields(data):
        spec = schema.get(wire.number)
        if spec is None:
            out[f"<protobuf field {wire.number}>"] = NOT_DECODED
            continue
        here = f"{path}.{spec.name}" if path else spec.name
        if spec.type == DROP:
            continue
        if spec.type == OPAQUE:
            if wire.value:
                out[spec.name] = NOT_DECODED
            continue
        if spec.repeated:
            items = out.setdefault(spec.name, [])
            assert isinstance(items, list)
            items.append(_value(wire, spec, f"{here}[{len(items)}]"))
            continue
        value = _value(wire, spec, here)
        if spec.inline and isinstance(value, dict):
            out.update(value)
        elif spec.type == STRING_MAP:
            merged = out.setdefault(spec.name, {})
            assert isinstance(merged, dict) and isinstance(value, dict)
            merged.update(value)  # a map is one entry per wire field
        else:
            out[spec.name] = value
    return {name: v for name, v in out.items() if _kept(schema_field(schema, name), v)}


def schema_field(schema: dict[int, Field], name: str) -> Field | None:
    return next((f for f in schema.values() if f.name == name), None)


def _kept(spec: Field | None, value: Json) -> bool:
    """Whether Go's JSON would carry it (module doc: zero values dropped unless set)."""
    if spec is not None and spec.presence:
        return True
    return value not in ("", 0, False, None, {}, [])


def _value(wire: protowire.WireField, spec: Field, path: str) -> Json:
    kind = spec.type
    if kind in (INT, BOOL):
        if wire.wire_type != VARINT or not isinstance(wire.value, int):
            raise ProtobufError(f"{path}: expected a varint, found wire type {wire.wire_type}")
        return protowire.signed(wire.value) if kind == INT else wire.value != 0
    if wire.wire_type != LENGTH or not isinstance(wire.value, bytes):
        found = wire.wire_type
        raise ProtobufError(f"{path}: expected length-delimited data, found wire type {found}")
    data = wire.value
    if kind == STRING:
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise ProtobufError(f"{path}: not UTF-8") from None
    if kind == STRING_MAP:
        entry = _message_of(data, {1: Field("key", STRING), 2: Field("value", STRING)}, path)
        return {str(entry.get("key", "")): entry.get("value", "")}
    if kind == TIME:
        return _time(data, path)
    if kind == INT_OR_STRING:
        return _int_or_string(data, path, keep_zero=spec.presence)
    return _message(data, kind, path)


def _message_of(data: bytes, fields: dict[int, Field], path: str) -> JsonObject:
    out: JsonObject = {}
    for wire in protowire.fields(data):
        spec = fields.get(wire.number)
        if spec is not None:
            out[spec.name] = _value(wire, spec, f"{path}.{spec.name}")
    return out


def _time(data: bytes, path: str) -> Json:
    parts = _message_of(data, {1: Field("seconds", INT), 2: Field("nanos", INT)}, path)
    seconds = parts.get("seconds", 0)
    assert isinstance(seconds, int)
    if not seconds:
        return None  # Go's zero Time: `creationTimestamp: null`
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ProtobufError(f"{path}: {seconds} seconds is not a time") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_or_string(data: bytes, path: str, *, keep_zero: bool) -> Json:
    fields = {1: Field("type", INT), 2: Field("intVal", INT), 3: Field("strVal", STRING)}
    parts = _message_of(data, fields, path)
    if parts.get("type", 0) == 1:
        return parts.get("strVal", "")
    number = parts.get("intVal", 0)
    return number if number or keep_zero else None
