"""How an actor's gRPC servicer turns an exception into a status, the same way everywhere.

A servicer method runs its work through `answer`: errors the actor knows map to a
status code and message (its own `status_of`, which ends with `store_status` for the
storage errors every actor meets); field errors travel as JSON in the `kubelab-field-errors`
trailer, which the CLI prints a line each; anything else is a bug, logged with its
traceback and answered INTERNAL (`internal_status`) with an id that is in that log line, never
with the exception's text: it is the server's business, not the client's.

Messages and the field-errors trailer are capped (`MESSAGE_MAX_BYTES`, `TRAILER_MAX_BYTES`):
both travel as metadata, and a client refuses a response whose metadata exceeds its limit
(8 KiB by default), which would turn one error about a huge value into an unreadable one.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc

from kubelab.core.errors import FieldError
from kubelab.core.paging import InvalidContinueError
from kubelab.store import (
    ClaimTakenError,
    CompactedError,
    ConflictError,
    ExpiredContinueError,
    NotFoundError,
    RequestTooLargeError,
    StoreUnavailableError,
)

T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]
Status = tuple[grpc.StatusCode, str]
FIELD_ERRORS_TRAILER = "kubelab-field-errors"
MESSAGE_MAX_BYTES = 2048
TRAILER_MAX_BYTES = 4096


def internal_status(log: logging.Logger, method: str) -> Status:
    """Log the exception being handled with a fresh id; the status to answer with it."""
    error_id = uuid.uuid4().hex[:12]
    log.exception("internal error in %s (error id %s)", method, error_id)
    return grpc.StatusCode.INTERNAL, f"internal error (error id {error_id}); see the server log"


def capped(message: str, limit: int = MESSAGE_MAX_BYTES) -> str:
    """`message` cut to at most `limit` bytes on the wire, saying so."""
    data = message.encode()
    if not (message.isascii() and message.isprintable()):
        # grpc percent-encodes every other byte of a status message: three bytes each.
        limit //= 3
    if len(data) <= limit:
        return message
    return data[: limit - 40].decode(errors="ignore") + f"... ({len(data)} bytes in all)"


def _field_errors_trailer(fields: Sequence[FieldError]) -> str:
    """As many field errors as fit `TRAILER_MAX_BYTES` (the message says them all)."""
    listed: list[dict[str, str]] = []
    size = 2
    for field in fields:
        entry = {k: capped(v, 512) for k, v in field.as_dict().items()}
        size += len(json.dumps(entry)) + 2
        if size > TRAILER_MAX_BYTES:
            break
        listed.append(entry)
    return json.dumps(listed)


def store_status(err: Exception) -> Status | None:
    """The storage errors, as every actor answers them."""
    match err:
        case NotFoundError():
            return grpc.StatusCode.NOT_FOUND, str(err)
        case ConflictError() | ClaimTakenError():
            return grpc.StatusCode.ABORTED, str(err)
        case ExpiredContinueError():
            return grpc.StatusCode.OUT_OF_RANGE, str(err)
        case InvalidContinueError():
            return grpc.StatusCode.INVALID_ARGUMENT, str(err)
        case CompactedError():
            return grpc.StatusCode.OUT_OF_RANGE, f"too old resource version: {err}; relist"
        case StoreUnavailableError():
            return grpc.StatusCode.UNAVAILABLE, f"storage is unavailable: {err}"
        case RequestTooLargeError():
            return grpc.StatusCode.INVALID_ARGUMENT, f"the request is too large to store: {err}"
    return None


async def answer(
    method: str,
    context: Context,
    call: Callable[[], Awaitable[T]],
    *,
    status_of: Callable[[Exception], Status | None],
    field_errors: Callable[[Exception], Sequence[FieldError]],
    log: logging.Logger,
    observe: Callable[[grpc.StatusCode], None] | None = None,
) -> T:
    """`call()`'s result, or an abort with the status `status_of` maps its error to;
    `field_errors` says which errors carry field errors.
    `observe` hears every call's code (OK included)."""
    code = grpc.StatusCode.OK
    try:
        return await call()
    except Exception as err:
        mapped = status_of(err)
        if mapped is None:
            mapped = internal_status(log, method)
        code = mapped[0]
        trailing: tuple[tuple[str, str], ...] = ()
        fields = field_errors(err)
        if fields:
            trailing = ((FIELD_ERRORS_TRAILER, _field_errors_trailer(fields)),)
        await context.abort(mapped[0], capped(mapped[1]), trailing_metadata=trailing)
        raise  # abort raises; this is for the type checker
    finally:
        if observe is not None:
            observe(code)
