"""How an actor's gRPC servicer turns an exception into a status, the same way everywhere.

A servicer method runs its work through `answer`: errors the actor knows map to a
status code and message (its own `status_of`, which ends with `store_status` for the
storage errors every actor meets); field errors travel as JSON in the `kubelab-field-errors`
trailer, which the CLI prints a line each; anything else is a bug, logged with its
traceback and answered INTERNAL.
"""

from __future__ import annotations

import json
import logging
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
    StoreUnavailableError,
)

T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]
Status = tuple[grpc.StatusCode, str]
FIELD_ERRORS_TRAILER = "kubelab-field-errors"


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
            log.exception("internal error in %s", method)
            mapped = (grpc.StatusCode.INTERNAL, f"internal error: {type(err).__name__}: {err}")
        code = mapped[0]
        trailing: tuple[tuple[str, str], ...] = ()
        fields = field_errors(err)
        if fields:
            trailing = ((FIELD_ERRORS_TRAILER, json.dumps([f.as_dict() for f in fields])),)
        await context.abort(mapped[0], mapped[1], trailing_metadata=trailing)
        raise  # abort raises; this is for the type checker
    finally:
        if observe is not None:
            observe(code)
