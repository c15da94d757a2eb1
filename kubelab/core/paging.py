"""List paging (limit / continue), with Kubernetes' continue token.

A paged list reads every page at the revision of its first page, so the pages
together are one consistent snapshot. The continue token carries that
revision and the key to start the next page from, relative to the list's key
prefix; it is Kubernetes' own encoding (apiserver `storage.EncodeContinue`):
unpadded URL-safe base64 of `{"v":"meta.k8s.io/v1","rv":<revision>,"start":"<key>"}`.

A token is client input, so decoding checks it as Kubernetes does: a start key
that is not a clean relative path (`../`, `//`, a trailing `/`) could range
over keys outside the list's prefix, and is refused (`InvalidContinueError`).
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
from dataclasses import dataclass

_VERSION = "meta.k8s.io/v1"


class InvalidContinueError(ValueError):
    """A continue token that kubelab did not make, or that was altered."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"invalid continue token: continue key is not valid: {detail}")


@dataclass(frozen=True, slots=True)
class Continue:
    # The revision every page of the list is read at.
    revision: int
    # The key the next page starts at (inclusive), relative to the list's prefix.
    start: str


def encode_continue(token: Continue) -> str:
    doc = {"v": _VERSION, "rv": token.revision, "start": token.start}
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_continue(text: str) -> Continue:
    try:
        padded = text + "=" * (-len(text) % 4)
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
        doc = json.loads(raw)
    except (UnicodeError, binascii.Error, ValueError) as err:
        raise InvalidContinueError(str(err)) from None
    if not isinstance(doc, dict) or doc.get("v") != _VERSION:
        version = doc.get("v") if isinstance(doc, dict) else None
        raise InvalidContinueError(f"unrecognized encoded version {version!r}")
    revision, start = doc.get("rv"), doc.get("start")
    if not isinstance(revision, int) or isinstance(revision, bool) or not 0 < revision < 2**63:
        raise InvalidContinueError("resource version must be a positive 64-bit integer")
    if not isinstance(start, str) or not start:
        raise InvalidContinueError("start key is empty")
    rooted = "/" + start
    if start.startswith("/") or posixpath.normpath(rooted) != rooted:
        raise InvalidContinueError(f"start key {start!r} is not a clean relative key")
    return Continue(revision, start)


def next_start(last_key: str) -> str:
    """The smallest key after `last_key` (etcd orders keys bytewise)."""
    return last_key + "\x00"
