"""How large an object may be: one limit, answered before anything is stored.

etcd refuses a request above 1.5 MiB (its `--max-request-bytes` default) with
`etcdserver: request is too large`; an object that size would fail in the
store, after validation and allocation, as an internal error. So an object
whose encoded size (protobuf, as the store writes it) exceeds
`MAX_OBJECT_BYTES` (1 MiB) is invalid. The half MiB left covers the key, the
allocation claims written in the same transaction, and the status actors add
later. Kubernetes' own bound is similar: 1.5 MiB in etcd, 3 MiB per request.

The error names the object's largest part, found by descending into the
largest field at each level (`spec.containers[0].env[0].value`), since that
is what a user has to shrink; the wording is Kubernetes' `Too long`.
`validate_size` never raises; the walk visits each field once.
"""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from kubelab.core.errors import ErrorType, FieldError

MAX_OBJECT_BYTES = 1024 * 1024


def validate_size(obj: Message) -> list[FieldError]:
    size = obj.ByteSize()
    if size <= MAX_OBJECT_BYTES:
        return []
    detail = (
        f"must have at most {MAX_OBJECT_BYTES} bytes: the whole object is {size} bytes "
        "encoded, and this field is its largest part"
    )
    return [FieldError(largest_part(obj) or "<object>", ErrorType.TOO_LONG, detail)]


def largest_part(message: Message, path: str = "") -> str:
    """The JSON path of the largest scalar in `message` (by encoded bytes)."""
    best_path, best_size, best_item = "", -1, None
    for field, value in message.ListFields():
        at = f"{path}.{field.json_name}" if path else field.json_name
        if _is_map(field):
            items = [(f"{at}[{key}]", item) for key, item in value.items()]
        elif field.is_repeated:
            items = [(f"{at}[{i}]", item) for i, item in enumerate(value)]
        else:
            items = [(at, value)]
        for item_path, item in items:
            size = _size(item)
            if size > best_size:
                best_path, best_size, best_item = item_path, size, item
    if isinstance(best_item, Message):
        return largest_part(best_item, best_path) or best_path
    return best_path


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _size(value: object) -> int:
    if isinstance(value, Message):
        return value.ByteSize()
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bytes):
        return len(value)
    return 8
