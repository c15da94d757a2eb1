"""Errors as the Kubernetes API answers them: `Status` objects with a code and a reason.

`ApiError` is what the HTTP front raises and answers; `api_error_of` maps the
registry's and the store's exceptions to it in one place, as `_status_of` does for
gRPC, with Kubernetes' codes and reasons:

* InvalidObjectError → 422 Invalid, `details.causes[]` one per field error, each with
  the field path (`spec.ports[0].nodePort`) and the error without it (Kubernetes'
  `ErrorBody`), `details.kind` the Kind;
* NotFound → 404, AlreadyExists → 409, a stale resourceVersion → 409 Conflict, whose
  `details.kind` is the resource (`services`), as Kubernetes' `NewNotFound` sets it;
* a compacted revision or an expired continue token → 410 Expired;
* bad parameters (selectors, names, resourceVersions) → 400 BadRequest;
* etcd down → 503 ServiceUnavailable (clients retry), a full range → 500 with
  Kubernetes' words;
* a patch that cannot apply (`services.apiserver.k8s`): its own code, 400
  BadRequest, 415 UnsupportedMediaType or 422 Invalid; a server-side apply conflict
  → 409 Conflict with one `FieldManagerConflict` cause per field.

Anything else is a bug: the server logs its traceback and answers 500 InternalError
naming only an error id. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kubelab.core import errors as field_errors
from kubelab.core import selectors
from kubelab.core.allocators import RangeFullError
from kubelab.core.errors import ErrorType, FieldError, ForbiddenError, InvalidObjectError
from kubelab.core.kinds import KindInfo, UnknownKindError
from kubelab.core.paging import InvalidContinueError
from kubelab.store import (
    AlreadyExistsError,
    CompactedError,
    ConflictError,
    NotFoundError,
    RequestTooLargeError,
    StoreUnavailableError,
)
from services.apiserver.k8s.jsonvalue import PatchError
from services.apiserver.k8s.managed_fields import ApplyConflict
from services.apiserver.logic.request_keys import InvalidRequestError
from services.apiserver.namespace_view import NamespaceNotFoundError

# Kubernetes' `CauseType`s for each kind of field error (apimachinery field.ErrorType).
_CAUSE_REASONS = {
    ErrorType.REQUIRED: "FieldValueRequired",
    ErrorType.INVALID: "FieldValueInvalid",
    ErrorType.NOT_SUPPORTED: "FieldValueNotSupported",
    ErrorType.DUPLICATE: "FieldValueDuplicate",
    ErrorType.FORBIDDEN: "FieldValueForbidden",
    ErrorType.TOO_LONG: "FieldValueTooLong",
    ErrorType.TOO_MANY: "FieldValueTooMany",
}


@dataclass(frozen=True, slots=True)
class ApiError(Exception):
    """An answer other than success: becomes a `Status` body with this code."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


def bad_request(message: str, details: dict[str, Any] | None = None) -> ApiError:
    return ApiError(400, "BadRequest", message, details or {})


def not_found(message: str) -> ApiError:
    return ApiError(404, "NotFound", message)


def method_not_allowed(method: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f"the server does not allow this method ({method})")


def unsupported_media_type(
    content_type: str, accepted: tuple[str, ...] = ("application/json",)
) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f'the body of the request was in an unknown format "{content_type}" - accepted media '
        f"types include: {', '.join(accepted)}",
    )


def too_large(limit: int) -> ApiError:
    return ApiError(
        413, "RequestEntityTooLarge", f"the request is too large: limit is {limit} bytes"
    )


def status_body(err: ApiError) -> dict[str, Any]:
    """The `Status` object Kubernetes answers an error with."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": err.message,
        "reason": err.reason,
        "code": err.code,
    }
    if err.details:
        body["details"] = err.details
    return body


def success_status(info: KindInfo, name: str, uid: str) -> dict[str, Any]:
    """What a delete answers when it cannot answer the object (Kubernetes' shape)."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, **_group(info), "kind": info.resource, "uid": uid},
    }


# Kinds whose delete answers the object, as their Kubernetes registries do
# (`ReturnDeletedObject`; a pod or namespace still terminating is answered as it now
# stands). Every other kind answers a success Status naming the resource and uid, as
# Kubernetes' does. Typed clients read what Kubernetes' API description names: the
# Python client's `delete_namespaced_pod` a V1Pod (a Status would not parse), its
# `delete_namespaced_deployment` any object; `kubectl delete --wait` reads either.
RETURNS_DELETED_OBJECT = frozenset({"services", "pods", "namespaces", "serviceaccounts"})


def delete_answer(info: KindInfo, deleted: dict[str, Any]) -> dict[str, Any]:
    """What DELETE answers, given the deleted object's JSON."""
    if info.resource in RETURNS_DELETED_OBJECT:
        return deleted
    meta = deleted.get("metadata") or {}
    return success_status(info, str(meta.get("name", "")), str(meta.get("uid", "")))


def causes(found: Sequence[FieldError]) -> list[dict[str, str]]:
    """`details.causes`: the field and the error without its field (Kubernetes' `ErrorBody`)."""
    out = []
    for problem in found:
        text = str(problem)
        prefix = field_errors.abbreviate(problem.field) + ": "
        out.append(
            {
                "reason": _CAUSE_REASONS.get(problem.type, "FieldValueInvalid"),
                "message": text.removeprefix(prefix),
                "field": field_errors.abbreviate(problem.field),
            }
        )
    return out


def _group(info: KindInfo) -> dict[str, str]:
    group = info.api_version.rpartition("/")[0]
    return {"group": group} if group else {}


def _about(info: KindInfo | None, name: str, kind: str | None = None) -> dict[str, Any]:
    if info is None:
        return {}
    details: dict[str, Any] = {"kind": kind or info.resource, **_group(info)}
    if name:
        details["name"] = name
    return details


def api_error_of(err: Exception, info: KindInfo | None = None, name: str = "") -> ApiError | None:
    """The answer for an error the registry or the store raised; None for a bug."""
    match err:
        case ApiError():
            return err
        case InvalidObjectError():
            details = _about(info, err.name, err.kind) or {"kind": err.kind, "name": err.name}
            details["causes"] = causes(err.errors)
            return ApiError(422, "Invalid", str(err), details)
        case InvalidRequestError():
            return bad_request(str(err), {"causes": causes(err.errors)} if err.errors else None)
        case UnknownKindError() | selectors.SelectorError() | InvalidContinueError():
            return bad_request(str(err))
        case NamespaceNotFoundError():
            return ApiError(
                404, "NotFound", str(err), {"name": err.namespace, "kind": "namespaces"}
            )
        case NotFoundError():
            return ApiError(404, "NotFound", str(err), _about(info, name))
        case ForbiddenError():
            return ApiError(403, "Forbidden", str(err), {"name": err.name, "kind": err.resource})
        case AlreadyExistsError():
            return ApiError(409, "AlreadyExists", str(err), _about(info, name))
        case ConflictError():
            return ApiError(409, "Conflict", str(err), _about(info, name))
        case CompactedError():
            return ApiError(410, "Expired", _expired_message(err))
        case StoreUnavailableError():
            return ApiError(503, "ServiceUnavailable", f"the store is unavailable: {err}; retry")
        case RequestTooLargeError():
            return ApiError(413, "RequestEntityTooLarge", str(err))
        case RangeFullError():
            return ApiError(500, "InternalError", f"failed to allocate: {err}")
        case ApplyConflict():
            return ApiError(409, "Conflict", str(err), {"causes": err.causes()})
        case PatchError():
            code = err.status_code
            reason = _PATCH_REASONS.get(code, "Invalid")
            return ApiError(code, reason, str(err), _about(info, name) if code == 422 else {})
    return None


_PATCH_REASONS = {400: "BadRequest", 415: "UnsupportedMediaType", 422: "Invalid"}


def _expired_message(err: CompactedError) -> str:
    if err.compact_revision:
        return f"too old resource version: the oldest available is {err.compact_revision}"
    return str(err)
