"""What can go wrong when talking to the store, as exceptions callers can branch on."""

from __future__ import annotations

from collections.abc import Sequence

from kubelab.core.allocators import Claim


class StoreError(Exception):
    pass


class StoreUnavailableError(StoreError):
    """etcd cannot be reached right now; retry."""


class NotFoundError(StoreError):
    pass


class RequestTooLargeError(StoreError):
    """etcd refused a request over its --max-request-bytes and applied none of it.
    Validation keeps objects well under that; this is the net under it."""


class AlreadyExistsError(StoreError):
    pass


class ConflictError(StoreError):
    """The object changed since the revision the caller read (Kubernetes' 409)."""

    def __init__(self, message: str, current_revision: int) -> None:
        super().__init__(message)
        self.current_revision = current_revision

    @classmethod
    def modified(cls, resource: str, name: str, current_revision: int) -> ConflictError:
        """Kubernetes' words for a stale resourceVersion."""
        return cls(
            f'Operation cannot be fulfilled on {resource} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again",
            current_revision,
        )


class ClaimTakenError(StoreError):
    def __init__(self, claims: Sequence[Claim]) -> None:
        super().__init__("already allocated: " + ", ".join(c.name for c in claims))
        self.claims = tuple(claims)


class CompactedError(StoreError):
    def __init__(self, compact_revision: int, message: str = "") -> None:
        super().__init__(message or f"revision compacted; oldest available is {compact_revision}")
        self.compact_revision = compact_revision


class ExpiredContinueError(CompactedError):
    """A list page was asked for at a revision etcd has compacted since the first page
    (Kubernetes' 410 Gone for an expired continue token): start the list again."""

    def __init__(self) -> None:
        StoreError.__init__(
            self,
            "The provided continue parameter is too old to display a consistent list result. "
            "You can start a new list without the continue parameter.",
        )
        self.compact_revision = 0


class NotLeaderError(StoreError):
    """A fenced write was refused: the writer's leadership is over."""


class LeaseExpiredError(StoreError):
    """The lease a write was attached to no longer exists (it expired or was revoked)."""
