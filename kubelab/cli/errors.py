"""What the user reads when a command fails: one line on stderr, never a traceback.

Commands raise `CliError` for their own failures (bad arguments, unknown
kinds, bad selectors). API failures arrive as `kubelab.client.ApiError` and
are worded here the way kubectl words them, keyed on the gRPC status code (the
meaning), not on the server's text:

    Error from server (NotFound): services "x" not found
    The Service "shop" is invalid: spec.ports[0].nodePort: Invalid value: ...
    The connection to the server 127.0.0.1:6443 was refused - did you specify ...

Errors name the component that is down. A client that cannot reach the
apiserver sees UNAVAILABLE with grpc's own words ("failed to connect", "errors
resolving"): `error: cannot reach the apiserver at X: ...`. An apiserver whose
etcd is down answers UNAVAILABLE too, with `storage is unavailable: ...`
(kubelab/rpc/errors.py), whose detail carries etcd's own connect failure: that
is checked first, so it reads as the store being down, not the apiserver
(`error: the cluster's store (etcd) is unavailable: ...`). Either way nothing
later in the same command can work (`stops_everything`).
"""

from __future__ import annotations

import re

import grpc

from kubelab.client import ApiError
from kubelab.core import kinds

UP_HINT = "Is a cluster running? Start one with: kubelab up"
STORE_HINT = "etcd is stopped or has lost its quorum; see which actor is down with: kubelab status"
# How the apiserver begins its answer when etcd does not answer (kubelab/rpc/errors.py).
STORE_DOWN_PREFIX = "storage is unavailable"


class CliError(Exception):
    """A failure the user can act on: `message` (and `hint`) go to stderr, then exit `code`."""

    def __init__(self, message: str, *, hint: str | None = None, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code


# kubectl's StatusReason for each code (the HTTP status Kubernetes would send).
_REASONS = {
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.ABORTED: "Conflict",
    grpc.StatusCode.FAILED_PRECONDITION: "Conflict",
    grpc.StatusCode.INVALID_ARGUMENT: "Invalid",
    grpc.StatusCode.OUT_OF_RANGE: "Expired",
    grpc.StatusCode.UNAVAILABLE: "ServiceUnavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "Timeout",
    grpc.StatusCode.PERMISSION_DENIED: "Forbidden",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthorized",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "TooManyRequests",
    grpc.StatusCode.UNIMPLEMENTED: "NotImplemented",
}

_CONNECT_FAILURES = ("failed to connect", "errors resolving", "dns resolution failed")
_INVALID_PREFIX = re.compile(r'^[A-Z][A-Za-z]* "[^"]*" is invalid: ')


def not_found(resource: str, name: str) -> str:
    """kubectl's words, the resource named with its group (`deployments.apps`)."""
    try:
        resource = kinds.kind_info(resource).qualified_resource
    except kinds.UnknownKindError:
        pass
    return f'Error from server (NotFound): {resource} "{name}" not found'


def from_api_error(
    err: ApiError, server: str, *, kind: str = "", resource: str = "", name: str = ""
) -> CliError:
    """kubectl's wording for an API failure. `kind`/`resource`/`name` name the
    object the call was about, when the caller knows it."""
    code, message = err.code, err.message.strip()
    if is_store_down(err):
        detail = message.removeprefix(STORE_DOWN_PREFIX).lstrip(": ")
        return CliError(
            f"error: the cluster's store (etcd) is unavailable: the apiserver at {server} "
            f"answers but cannot reach it ({detail or 'no detail'})",
            hint=STORE_HINT,
        )
    if is_connection_error(err):
        if "connection refused" in message.lower():
            return CliError(
                f"error: cannot reach the apiserver at {server}: the connection was refused - "
                "did you specify the right host or port?",
                hint=UP_HINT,
            )
        return CliError(f"error: cannot reach the apiserver at {server}: {message}", hint=UP_HINT)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return CliError(f"Unable to connect to the server {server}: timeout ({message})")
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return CliError(
            f"error: the server at {server} does not serve the kubelab API ({message})",
            hint="Check --server / KUBELAB_SERVER, or run: kubelab status",
        )
    if code == grpc.StatusCode.NOT_FOUND and resource and name:
        # The object's namespace may be what is missing: `namespaces "dev" not found`.
        if message.startswith('namespaces "') and resource != "namespaces":
            return CliError(f"Error from server (NotFound): {message}")
        return CliError(not_found(resource, name))
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        # The server's message already reads `Service "shop" is invalid: <field>: ...`.
        if _INVALID_PREFIX.match(message):
            return CliError(f"The {message}")
        if kind and name:
            return CliError(f'The {kind} "{name}" is invalid: {message}')
    reason = _REASONS.get(code, "InternalError")
    return CliError(f"Error from server ({reason}): {message or code.name}")


def is_store_down(err: ApiError) -> bool:
    """The apiserver answered, and said its store (etcd) does not."""
    return err.code == grpc.StatusCode.UNAVAILABLE and err.message.strip().startswith(
        STORE_DOWN_PREFIX
    )


def is_connection_error(err: ApiError) -> bool:
    """The client never reached an apiserver: nothing later will either."""
    message = err.message.lower()
    return (
        err.code == grpc.StatusCode.UNAVAILABLE
        and not is_store_down(err)
        and any(f in message for f in _CONNECT_FAILURES)
    )


def stops_everything(err: ApiError) -> bool:
    """No later call of the same command can succeed: the apiserver or its store is down."""
    return is_connection_error(err) or is_store_down(err)
