"""Field selectors (`fieldSelector=metadata.name=shop,spec.nodeName!=node-1`).

Kubernetes' grammar (apimachinery `fields.ParseSelector`): comma-separated terms
`field=value`, `field==value` or `field!=value`; a backslash escapes `,`, `=`, `!`
and itself in a value. Only the fields a kind declares selectable may be used
(`SELECTABLE`, shared with the gRPC front), and another is refused with
Kubernetes' words (`field label not supported: ...`): every kind has metadata.name
and metadata.namespace; pods add spec.nodeName (what a kubelet watches),
status.phase, status.podIP, spec.restartPolicy; services spec.type and
spec.clusterIP; nodes spec.unschedulable; events involvedObject.*, reason, type,
source; namespaces status.phase.
An object missing a field has it as "" (Kubernetes' field sets do the same).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubelab.core.kinds import KindInfo
from services.apiserver.logic import field_selectors
from services.apiserver.rest.errors import ApiError, bad_request

# Kubernetes' selectable fields per kind, one table for both fronts
# (`services.apiserver.logic.field_selectors`: an event's involvedObject.*, a namespace's
# status.phase, ...).
SELECTABLE: Mapping[str, Mapping[str, Callable[[Any], str]]] = field_selectors.SELECTABLE


@dataclass(frozen=True, slots=True)
class Term:
    field: str
    value: str
    equal: bool  # False for !=


@dataclass(frozen=True, slots=True)
class FieldSelector:
    terms: tuple[Term, ...] = ()

    def matches(self, info: KindInfo, obj: Any) -> bool:
        getters = SELECTABLE[info.resource]
        return all((getters[t.field](obj) == t.value) == t.equal for t in self.terms)

    def exact(self, field: str) -> str | None:
        """The value `field` must equal, when the selector pins it (`metadata.name=x`)."""
        for term in self.terms:
            if term.field == field and term.equal:
                return term.value
        return None


def _split(text: str, separator: str) -> list[str]:
    """Split on an unescaped `separator`, keeping escapes for the next step."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    out, escaped = [], False
    for char in value:
        if escaped:
            if char not in "\\,=!":
                raise bad_request(f"invalid field selector: invalid escape sequence: \\{char}")
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=!":
            raise bad_request(f"invalid field selector: unescaped {char!r} in value {value!r}")
        else:
            out.append(char)
    if escaped:
        raise bad_request("invalid field selector: a value ends in a lone backslash")
    return "".join(out)


def _term(text: str) -> Term:
    for operator, equal in (("!=", False), ("==", True), ("=", True)):
        index = _find_unescaped(text, operator)
        if index >= 0:
            field, value = text[:index], text[index + len(operator) :]
            return Term(field.strip(), _unescape(value), equal)
    raise bad_request(f"invalid field selector: {text!r}: expected field=value or field!=value")


def _find_unescaped(text: str, needle: str) -> int:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith(needle, i):
            return i
        i += 1
    return -1


def parse(text: str, info: KindInfo) -> FieldSelector:
    """The selector `text` names, checked against what `info` can select on."""
    if not text.strip():
        return FieldSelector()
    terms = tuple(_term(part) for part in _split(text, ",") if part)
    supported = SELECTABLE[info.resource]
    for term in terms:
        if term.field not in supported:
            raise ApiError(400, "BadRequest", f'field label not supported: "{term.field}"')
    return FieldSelector(terms)
