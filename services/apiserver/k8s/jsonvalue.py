"""The JSON value type every module of this package works on, and its errors.

`Json` is what `json.loads` returns. Helpers here never mutate their inputs:
patch functions deep-copy before they change anything, so a failed patch leaves
the caller's object as it was ("bad input changes nothing").
"""

from __future__ import annotations

from typing import TypeAlias

Json: TypeAlias = dict[str, "Json"] | list["Json"] | str | int | float | bool | None
JsonObject: TypeAlias = dict[str, Json]


class PatchError(ValueError):
    """A patch that cannot be applied; the message names the path and says why.

    The HTTP front answers it with `status_code`, as Kubernetes does: 422 Invalid
    for a patch that does not fit the object (a json-patch path that is not there,
    a failed `test`, a list item without its merge key), 400 BadRequest for a body
    that is not a patch of the declared type at all (`BadPatchError`).
    """

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path

    @property
    def status_code(self) -> int:
        return 422


class BadPatchError(PatchError):
    """The body is not a patch of the declared type (not JSON, wrong shape): 400."""

    @property
    def status_code(self) -> int:
        return 400


def deep_copy(value: Json) -> Json:
    """A copy sharing nothing mutable; several times faster than `copy.deepcopy`,
    which a JSON value (no cycles, no shared references worth keeping) does not need."""
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    return value


def type_name(value: Json) -> str:
    """How a message names a JSON value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def json_equal(a: Json, b: Json) -> bool:
    """Equality as JSON sees it: `true` is not `1` (Python's `True == 1` is)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(json_equal(v, b[k]) for k, v in a.items())
        )
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(json_equal, a, b))
    if isinstance(b, dict | list):
        return False
    return a == b
