"""The protobuf wire format, read field by field, and Kubernetes' envelope around it.

A Kubernetes protobuf body (`application/vnd.kubernetes.protobuf`) is the magic
`k8s\\x00` then a `runtime.Unknown`: `typeMeta` (field 1: apiVersion 1, kind 2),
`raw` (2: the object's own message), `contentEncoding` (3), `contentType` (4).
`envelope` unwraps it; `fields` walks any message's fields as they are on the
wire, so the caller (`k8s_protobuf`) gives them meaning from its schema.

Only what the wire says is trusted: a length past the end, a varint longer than
ten bytes or a group (wire types 3 and 4, unused since proto2's deprecation) is a
`ProtobufError` naming the byte offset. No recursion happens here.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

MAGIC = b"k8s\x00"

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
_MAX_VARINT_BYTES = 10


class ProtobufError(ValueError):
    """A body that is not the protobuf it claims to be; the message says where."""


@dataclass(frozen=True, slots=True)
class WireField:
    number: int
    wire_type: int
    value: int | bytes  # an int for VARINT and the fixed types, bytes for LENGTH


def _varint(data: bytes, at: int) -> tuple[int, int]:
    result = shift = 0
    for i in range(at, min(at + _MAX_VARINT_BYTES, len(data))):
        byte = data[i]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, i + 1
        shift += 7
    raise ProtobufError(f"a varint at byte {at} is truncated or longer than 10 bytes")


def fields(data: bytes) -> Iterator[WireField]:
    """The fields of one message, in wire order."""
    at = 0
    while at < len(data):
        start = at
        key, at = _varint(data, at)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ProtobufError(f"field number 0 at byte {start}")
        value: int | bytes
        if wire_type == VARINT:
            value, at = _varint(data, at)
        elif wire_type == LENGTH:
            size, at = _varint(data, at)
            if at + size > len(data):
                raise ProtobufError(
                    f"field {number} at byte {start} claims {size} bytes; {len(data) - at} remain"
                )
            value, at = data[at : at + size], at + size
        elif wire_type in (FIXED64, FIXED32):
            width = 8 if wire_type == FIXED64 else 4
            if at + width > len(data):
                raise ProtobufError(f"field {number} at byte {start} is truncated")
            value, at = int.from_bytes(data[at : at + width], "little"), at + width
        else:
            raise ProtobufError(f"field {number} at byte {start} has wire type {wire_type}")
        yield WireField(number, wire_type, value)


def signed(value: int) -> int:
    """A varint as the int64 it encodes (negative numbers are sign-extended to 64 bits)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass(frozen=True, slots=True)
class Envelope:
    api_version: str
    kind: str
    raw: bytes


def _text(value: int | bytes, what: str) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError(f"{what} is not a string")
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise ProtobufError(f"{what} is not UTF-8") from None


def envelope(body: bytes) -> Envelope:
    """The `runtime.Unknown` a Kubernetes protobuf body carries."""
    if not body.startswith(MAGIC):
        raise ProtobufError('the body does not start with the Kubernetes protobuf magic "k8s\\x00"')
    api_version = kind = encoding = ""
    raw = b""
    for field in fields(body[len(MAGIC) :]):
        if field.number == 1 and isinstance(field.value, bytes):
            for meta in fields(field.value):
                if meta.number == 1:
                    api_version = _text(meta.value, "typeMeta.apiVersion")
                elif meta.number == 2:
                    kind = _text(meta.value, "typeMeta.kind")
        elif field.number == 2 and isinstance(field.value, bytes):
            raw = field.value
        elif field.number == 3:
            encoding = _text(field.value, "contentEncoding")
    if encoding:
        raise ProtobufError(f'contentEncoding "{encoding[:64]}" is not supported')
    if not kind:
        raise ProtobufError("typeMeta.kind: Required value")
    return Envelope(api_version, kind, raw)
