"""Kubernetes field selectors: `involvedObject.name=shop,type!=Normal`.

The grammar is apimachinery's `fields.ParseSelector`: comma-separated terms
`field=value`, `field==value` or `field!=value`, a backslash escaping `,`, `=`,
`!` and itself in a value; the empty selector matches everything. Each kind
selects only on the fields Kubernetes lets it (`SELECTABLE`: metadata.name and
metadata.namespace everywhere; a pod's spec.nodeName, an event's
involvedObject.*, a namespace's status.phase, ...); another field is refused in
Kubernetes' words (`field label not supported: spec.x`). A field an object does
not set reads as "" (Kubernetes' field sets do the same).

This is what `kubectl describe` and `kubectl get events --field-selector` need:
the events of one object are `involvedObject.kind=Pod,involvedObject.name=x,
involvedObject.namespace=ns,involvedObject.uid=...`. Pure: no I/O. Failures raise
`FieldSelectorError` (a ValueError): the apiserver answers INVALID_ARGUMENT (400).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubelab.core import kinds
from kubelab.core.kinds import KindInfo

Getter = Callable[[Any], str]

_META: dict[str, Getter] = {
    "metadata.name": lambda o: str(o.metadata.name),
    "metadata.namespace": lambda o: str(o.metadata.namespace),
}


def _event_source(event: Any) -> str:
    # Kubernetes: source.component, else reportingController.
    return str(event.source.component or event.reporting_component)


SELECTABLE: Mapping[str, Mapping[str, Getter]] = {
    kinds.PODS.resource: {
        **_META,
        "spec.nodeName": lambda o: str(o.spec.node_name),
        "spec.restartPolicy": lambda o: str(o.spec.restart_policy),
        "status.phase": lambda o: str(o.status.phase),
        "status.podIP": lambda o: str(o.status.pod_ip),
    },
    kinds.SERVICES.resource: {
        **_META,
        "spec.type": lambda o: str(o.spec.type),
        "spec.clusterIP": lambda o: str(o.spec.cluster_ip),
    },
    kinds.NODES.resource: {
        **_META,
        "spec.unschedulable": lambda o: "true" if o.spec.unschedulable else "false",
    },
    kinds.DEPLOYMENTS.resource: _META,
    kinds.ENDPOINTSLICES.resource: _META,
    kinds.SERVICEACCOUNTS.resource: _META,
    **{info.resource: _META for info in kinds.RBAC_KINDS},
    kinds.NAMESPACES.resource: {
        **_META,
        "name": lambda o: str(o.metadata.name),
        "status.phase": lambda o: str(o.status.phase),
    },
    kinds.EVENTS.resource: {
        **_META,
        "involvedObject.kind": lambda o: str(o.involved_object.kind),
        "involvedObject.namespace": lambda o: str(o.involved_object.namespace),
        "involvedObject.name": lambda o: str(o.involved_object.name),
        "involvedObject.uid": lambda o: str(o.involved_object.uid),
        "involvedObject.apiVersion": lambda o: str(o.involved_object.api_version),
        "involvedObject.resourceVersion": lambda o: str(o.involved_object.resource_version),
        "involvedObject.fieldPath": lambda o: str(o.involved_object.field_path),
        "reason": lambda o: str(o.reason),
        "reportingComponent": lambda o: str(o.reporting_component),
        "source": _event_source,
        "type": lambda o: str(o.type),
    },
}


class FieldSelectorError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Term:
    field: str
    value: str
    equal: bool  # False for !=


@dataclass(frozen=True, slots=True)
class FieldSelector:
    resource: str = ""
    terms: tuple[Term, ...] = ()

    def matches(self, obj: Any) -> bool:
        if not self.terms:
            return True
        getters = SELECTABLE[self.resource]
        return all((getters[t.field](obj) == t.value) == t.equal for t in self.terms)

    def __str__(self) -> str:
        return ",".join(
            f"{t.field}{'=' if t.equal else '!='}{_escape(t.value)}" for t in self.terms
        )


def _escape(value: str) -> str:
    return "".join("\\" + c if c in "\\,=!" else c for c in value)


def _split_terms(text: str) -> list[str]:
    """Split on unescaped commas, keeping the escapes for `_unescape`."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


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


def _unescape(value: str) -> str:
    out, escaped = [], False
    for char in value:
        if escaped:
            if char not in "\\,=!":
                raise FieldSelectorError(
                    f"invalid field selector: invalid escape sequence: \\{char}"
                )
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=!":
            raise FieldSelectorError(
                f"invalid field selector: unescaped {char!r} in value {value!r}"
            )
        else:
            out.append(char)
    if escaped:
        raise FieldSelectorError("invalid field selector: a value ends in a lone backslash")
    return "".join(out)


def _term(text: str) -> Term:
    for operator, equal in (("!=", False), ("==", True), ("=", True)):
        index = _find_unescaped(text, operator)
        if index >= 0:
            field = text[:index].strip()
            return Term(field, _unescape(text[index + len(operator) :]), equal)
    raise FieldSelectorError(
        f"invalid field selector: {text!r}: expected field=value or field!=value"
    )


def parse(text: str, info: KindInfo) -> FieldSelector:
    """The selector `text` names, checked against what `info`'s kind can select on."""
    if not text.strip():
        return FieldSelector(info.resource)
    terms = tuple(_term(part) for part in _split_terms(text) if part)
    supported = SELECTABLE.get(info.resource, _META)
    for term in terms:
        if term.field not in supported:
            raise FieldSelectorError(f"field label not supported: {term.field}")
    return FieldSelector(info.resource, terms)
