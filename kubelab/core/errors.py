"""Field errors, worded as Kubernetes words them.

Every validation problem is a `FieldError` naming the field path
(`spec.ports[1].nodePort`), so a user sees exactly what to fix. `str()` gives
Kubernetes' text: `spec.ports[1].nodePort: Invalid value: 40000: provided port
is not in the valid range. The range of valid ports is 30000-32767`.
`format_invalid` joins several into the message of one INVALID_ARGUMENT error.

Nothing here raises on any value, and no message grows with the input: a value
longer than `MAX_SHOWN_CHARS` is shown abbreviated with its length (a 5 MB name,
a 5,000-digit integer), and `format_invalid` shows the first problems up to
`MAX_MESSAGE_CHARS`, then counts the rest. Kubernetes can print values whole
because its 3 MiB request limit bounds them; a gRPC status travels in trailers,
which clients cap at 8 KiB, so an unbounded message would turn a clear refusal
into a transport error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

# Longer than any valid name (253), so only values that cannot be valid are cut.
MAX_SHOWN_CHARS = 256
MAX_MESSAGE_CHARS = 2048


class ErrorType(StrEnum):
    REQUIRED = "Required value"
    INVALID = "Invalid value"
    NOT_SUPPORTED = "Unsupported value"
    DUPLICATE = "Duplicate value"
    FORBIDDEN = "Forbidden"
    TOO_LONG = "Too long"
    TOO_MANY = "Too many"


_NO_VALUE = object()


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    type: ErrorType
    detail: str = ""
    value: object = _NO_VALUE

    def __str__(self) -> str:
        parts = [f"{abbreviate(self.field)}: {self.type.value}"]
        if self.value is not _NO_VALUE and self.type in (
            ErrorType.INVALID,
            ErrorType.NOT_SUPPORTED,
            ErrorType.DUPLICATE,
        ):
            parts.append(_render_value(self.value))
        if self.detail:
            parts.append(self.detail)
        return ": ".join(parts)

    def as_dict(self) -> dict[str, str]:
        return {"field": abbreviate(self.field), "type": self.type.value, "detail": self.detail}


def abbreviate(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """`text`, or its head and its length when longer than `limit`."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 3]}... ({len(text)} characters)"


def int_text(number: int) -> str:
    """`str(number)` that never raises: Python refuses to print more than
    `sys.get_int_max_str_digits()` digits (ValueError), and a manifest may hold more."""
    limit = sys.get_int_max_str_digits()
    # bit_length * log10(2) bounds the digit count without converting.
    if limit and number.bit_length() * 0.30103 > limit - 1:
        digits = int(number.bit_length() * 0.30103) + 1
        sign = "-" if number < 0 else ""
        return f"{sign}<an integer of about {digits} digits>"
    return str(number)


def _render_value(value: object) -> str:
    if isinstance(value, str):
        shown = json.dumps(value)
        if len(shown) > MAX_SHOWN_CHARS:
            return f'{json.dumps(value[:MAX_SHOWN_CHARS])[:-1]}..." ({len(value)} characters)'
        return shown
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return abbreviate(int_text(value))
    return abbreviate(str(value))


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(field, ErrorType.REQUIRED, detail)


def invalid(field: str, value: object, detail: str) -> FieldError:
    return FieldError(field, ErrorType.INVALID, detail, value)


def not_supported(field: str, value: object, supported: Sequence[str]) -> FieldError:
    detail = "supported values: " + ", ".join(json.dumps(s) for s in supported)
    return FieldError(field, ErrorType.NOT_SUPPORTED, detail, value)


def duplicate(field: str, value: object) -> FieldError:
    return FieldError(field, ErrorType.DUPLICATE, "", value)


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError(field, ErrorType.FORBIDDEN, detail)


def _shown_count(errors: Sequence[FieldError]) -> int:
    """How many of `errors` fit `MAX_MESSAGE_CHARS` (at least one)."""
    used = 0
    for count, error in enumerate(errors):
        used += len(str(error)) + 2
        if count and used > MAX_MESSAGE_CHARS:
            return count
    return len(errors)


def format_invalid(kind: str, name: str, errors: Sequence[FieldError]) -> str:
    """`Service "shop" is invalid: <err>` or `... is invalid: [<err>, <err>]`."""
    shown = _shown_count(errors)
    rendered = [str(e) for e in errors[:shown]]
    if shown < len(errors):
        rendered.append(f"and {len(errors) - shown} more errors")
    body = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    return f'{kind} "{abbreviate(name)}" is invalid: {body}'


class InvalidObjectError(Exception):
    """Raised where validation fails; the apiserver maps it to INVALID_ARGUMENT.

    `errors` holds the problems the message shows, so the field-error trailer
    stays as bounded as the message."""

    def __init__(self, kind: str, name: str, errors: Sequence[FieldError]) -> None:
        self.kind = kind
        self.name = name
        self.errors = tuple(errors[: _shown_count(errors)])
        super().__init__(format_invalid(kind, name, errors))


class ForbiddenError(Exception):
    """A request the apiserver refuses whatever its content (Kubernetes' 403 Forbidden
    from an admission plugin): `namespaces "default" is forbidden: this namespace may not
    be deleted`. The apiserver maps it to PERMISSION_DENIED."""

    def __init__(self, resource: str, name: str, reason: str) -> None:
        self.resource = resource
        self.name = name
        self.reason = reason
        super().__init__(f'{resource} "{abbreviate(name)}" is forbidden: {reason}')
