"""How objects are keyed in caches, queues and plans: `(namespace, name)`, one type for every kind.

`ObjectKey` is a `NewType` over the tuple rather than a dataclass: keys are hashed on every cache
lookup and informer event, and a tuple hashes in C (a slotted dataclass's `__hash__` is Python
code), unpacks as `namespace, name = key` and prints as it always did. The type checker still
tells an object's key from any other pair of strings (a label, a `(kind, name)`). A cluster-scoped
kind (Node) has namespace "".
"""

from __future__ import annotations

from typing import NewType, Protocol

ObjectKey = NewType("ObjectKey", tuple[str, str])


class _Meta(Protocol):
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...


class _HasMetadata(Protocol):
    @property
    def metadata(self) -> _Meta: ...


def key_of(obj: _HasMetadata) -> ObjectKey:
    """The key of an API object (any kind: every one has `metadata`)."""
    meta = obj.metadata
    return ObjectKey((meta.namespace, meta.name))
