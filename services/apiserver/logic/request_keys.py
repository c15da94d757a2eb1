"""What a request names, checked before anything touches the store.

A Get, Delete or Watch carries a kind, a namespace and a name that become an etcd
key; an Update or a Delete precondition carries a resourceVersion that becomes an
etcd revision. etcd refuses a key over its request size and a revision beyond
int64, and those refusals would reach the client as server faults. So the
apiserver checks them here first and answers INVALID_ARGUMENT naming the field.

The rules are deliberately kind-agnostic and no stricter than any kind's name
validation: an object stored under an older, looser rule must stay readable and
deletable. A name is a path segment as Kubernetes' `IsValidPathSegmentName` has
it (not `.` or `..`, no `/` or `%`) of at most 253 bytes (the longest name any
kind accepts); a namespace is a DNS-1123 label, as every namespace ever stored
was validated. A resourceVersion parses as Kubernetes' `ParseResourceVersion`
does (an unsigned decimal), bounded by etcd's int64 revisions.

Values are echoed shortened (`shown`), so a 5 MB name cannot make a 5 MB error.
Every function is pure and raises only `InvalidRequestError` or `UnknownKindError`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from kubelab.core import errors, kinds
from kubelab.core.errors import ErrorType, FieldError
from kubelab.core.kinds import KindInfo, UnknownKindError
from kubelab.core.validation.syntax import DNS1123_LABEL_MAX, is_dns1123_label

NAME_MAX_BYTES = 253
MAX_REVISION = 2**63 - 1
_SHOWN_CHARS = 64


class InvalidRequestError(ValueError):
    """A request (not an object) is malformed; the apiserver answers INVALID_ARGUMENT."""

    def __init__(self, found: Sequence[FieldError]) -> None:
        self.errors = tuple(found)
        super().__init__("; ".join(str(e) for e in self.errors))


def shown(value: str, limit: int = _SHOWN_CHARS) -> str:
    """`value` cut to `limit` characters for an error message, saying how long it was."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}...({len(value)} characters)"


def too_long(path: str, limit: int) -> FieldError:
    # Kubernetes' field.TooLong omits the value; so does this.
    return FieldError(path, ErrorType.TOO_LONG, f"may not be more than {limit} bytes")


def kind_of(name: str) -> KindInfo:
    """`kinds.kind_info`, with the unknown kind's text shortened in the error."""
    try:
        return kinds.kind_info(name)
    except UnknownKindError:
        known = ", ".join(i.resource for i in kinds.ALL_KINDS)
        raise UnknownKindError(
            f"unknown kind {json.dumps(shown(name))}; known kinds: {known}"
        ) from None


def name_errors(name: str, path: str = "name", *, required: bool = True) -> list[FieldError]:
    if not name:
        return [errors.required(path, "resource name may not be empty")] if required else []
    if len(name.encode()) > NAME_MAX_BYTES:
        return [too_long(path, NAME_MAX_BYTES)]
    if name in (".", ".."):
        return [errors.invalid(path, name, f"may not be '{name}'")]
    return [
        errors.invalid(path, name, f"may not contain '{char}'") for char in "/%" if char in name
    ]


def namespace_errors(namespace: str, path: str = "namespace") -> list[FieldError]:
    """Empty is fine: the caller picks `default` or every namespace."""
    if not namespace:
        return []
    if len(namespace.encode()) > DNS1123_LABEL_MAX:
        return [too_long(path, DNS1123_LABEL_MAX)]
    return [errors.invalid(path, namespace, problem) for problem in is_dns1123_label(namespace)]


def check_key(kind: str, namespace: str, name: str, *, name_required: bool = True) -> KindInfo:
    """The kind a key names, once its namespace and name could name a stored object."""
    info = kind_of(kind)
    found = namespace_errors(namespace) if info.namespaced else []
    found += name_errors(name, required=name_required)
    if found:
        raise InvalidRequestError(found)
    return info


def parse_resource_version(value: str, path: str = "resourceVersion") -> int | None:
    """The revision `value` names, None when empty."""
    if not value:
        return None
    if not (value.isascii() and value.isdigit()):
        detail = "must be a non-negative integer"
    elif len(value) > len(str(MAX_REVISION)) or int(value) > MAX_REVISION:
        detail = f"must be no more than {MAX_REVISION}"
    else:
        return int(value)
    raise InvalidRequestError([errors.invalid(path, shown(value), detail)])
