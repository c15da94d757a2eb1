"""Field errors, worded as Kubernetes words them.

Every validation problem is a `FieldError` naming the field path
(`spec.ports[1].nodePort`), so a user sees exactly what to fix. `str()` gives
Kubernetes' text: `spec.ports[1].nodePort: Invalid value: 40000: provided port
is not in the valid range. The range of valid ports is 30000-32767`.
`format_invalid` joins several into the message of one INVALID_ARGUMENT error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


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
        parts = [f"{self.field}: {self.type.value}"]
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
        return {"field": self.field, "type": self.type.value, "detail": self.detail}


def _render_value(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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


def format_invalid(kind: str, name: str, errors: Sequence[FieldError]) -> str:
    """`Service "shop" is invalid: <err>` or `... is invalid: [<err>, <err>]`."""
    rendered = [str(e) for e in errors]
    body = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    return f'{kind} "{name}" is invalid: {body}'


class InvalidObjectError(Exception):
    """Raised where validation fails; the apiserver maps it to INVALID_ARGUMENT."""

    def __init__(self, kind: str, name: str, errors: Sequence[FieldError]) -> None:
        self.kind = kind
        self.name = name
        self.errors = tuple(errors)
        super().__init__(format_invalid(kind, name, self.errors))
