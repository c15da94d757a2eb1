"""Kubernetes' words for a refused request: Go's %q, the 403 Status message, error lists.

The apiserver's 403 is `responsewriters.Forbidden`: `forbiddenMessage` (the user, the
verb and what was asked, `&<>` escaped so it cannot read as HTML), then `: <reason>`
when an authorizer gave one, wrapped by `apierrors.NewForbidden` into
`<resource>[.<group>] "<name>" is forbidden: ...` (`forbidden: ...` for a path). Names
are quoted as Go's %q quotes them. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.apiserver.logic.rbac import Attributes


def aggregate_errors(messages: Iterable[str]) -> str:
    """apimachinery's errors.NewAggregate(...).Error(): one message alone, several
    de-duplicated, comma-separated, in brackets."""
    unique = list(dict.fromkeys(messages))
    if len(unique) == 1:
        return unique[0]
    return "[" + ", ".join(unique) + "]" if unique else ""


def go_quote(text: str) -> str:
    """Go's %q (strconv.Quote), which Kubernetes' messages use for names."""
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}
# Kubernetes' responsewriters: keep a message from reading as HTML.
_SANITIZED = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def _refusal(attrs: Attributes) -> str:
    """responsewriters.forbiddenMessage."""
    user = go_quote(attrs.user.name)
    if not attrs.resource_request:
        return f"User {user} cannot {attrs.verb} path {go_quote(attrs.path)}"
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    what = f"User {user} cannot {attrs.verb} resource {go_quote(resource)} in API group "
    what += go_quote(attrs.api_group)
    if attrs.namespace:
        return f"{what} in the namespace {go_quote(attrs.namespace)}"
    return f"{what} at the cluster scope"


def forbidden_message(attrs: Attributes, reason: str = "") -> str:
    """The message of Kubernetes' 403 Status for a refused request (responsewriters'
    Forbidden wrapped by apierrors.NewForbidden): `services "shop" is forbidden: User
    "u" cannot delete resource "services" in API group "" in the namespace "default"`,
    followed by `: <reason>` when the authorizers gave one."""
    refusal = _refusal(attrs).translate(_SANITIZED)
    if reason:
        refusal = f"{refusal}: {reason}"
    resource = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    if not resource:
        return f"forbidden: {refusal}"
    if not attrs.name:
        return f"{resource} is forbidden: {refusal}"
    return f"{resource} {go_quote(attrs.name)} is forbidden: {refusal}"


def forbidden_details(attrs: Attributes) -> dict[str, str]:
    """The 403 Status's `details` (group, kind = the resource, name), empty ones left out."""
    details = {"group": attrs.api_group, "kind": attrs.resource, "name": attrs.name}
    return {k: v for k, v in details.items() if v}
