"""What every kind shares: ObjectMeta, labels, annotations, label selectors.

The checks follow `k8s.io/apimachinery/pkg/api/validation` (ObjectMeta) and
`.../apis/meta/v1/validation` (labels, selectors), with their field paths:
label problems are reported at the map (`metadata.labels`), never at a key, and
owner-reference problems at `metadata.ownerReferences.<field>` without an index,
exactly as Kubernetes reports them.

Values that are not plain strings or numbers are rendered as Kubernetes renders
them, Go-style, through `GoLiteral`: a label map prints as
`map[string]string{"app":"web"}`, an int-or-string as its bare text (`25%`).
Every function returns a list of `FieldError`s and never raises.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from kubelab.core import errors
from kubelab.core.errors import ErrorType, FieldError
from kubelab.core.validation.syntax import (
    is_dns1123_label,
    is_label_value,
    is_port_name,
    is_port_num,
    is_qualified_name,
    parse_int_or_string,
)
from kubelab.v1 import meta_pb2

NameCheck = Callable[[str], list[str]]

# Kubelab speaks TCP and UDP; SCTP gets `Unsupported value` listing these.
PROTOCOLS = ("TCP", "UDP")
IMMUTABLE = "field is immutable"
NEGATIVE = "must be greater than or equal to 0"
ANNOTATIONS_MAX_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class GoLiteral:
    """A value that `FieldError` prints as is, unquoted: `25%`, `map[string]string{...}`."""

    text: str

    def __str__(self) -> str:
        return self.text


def go_map(labels: Mapping[str, str]) -> GoLiteral:
    if not labels:
        return GoLiteral("map[string]string(nil)")
    body = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(labels.items()))
    return GoLiteral(f"map[string]string{{{body}}}")


def go_label_selector(selector: meta_pb2.LabelSelector) -> GoLiteral:
    exprs = []
    for expr in selector.match_expressions:
        values = (
            "[]string{" + ", ".join(json.dumps(v) for v in expr.values) + "}"
            if expr.values
            else "[]string(nil)"
        )
        exprs.append(
            f"v1.LabelSelectorRequirement{{Key:{json.dumps(expr.key)}, "
            f"Operator:{json.dumps(expr.operator)}, Values:{values}}}"
        )
    listed = (
        "[]v1.LabelSelectorRequirement{" + ", ".join(exprs) + "}"
        if exprs
        else "[]v1.LabelSelectorRequirement(nil)"
    )
    labels = go_map(selector.match_labels)
    return GoLiteral(f"v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{listed}}}")


def go_int_or_string(value: str) -> GoLiteral:
    """Kubernetes prints an IntOrString through its String(): `0`, `25%`, unquoted."""
    return GoLiteral(str(parse_int_or_string(value)))


def immutable(path: str, value: object) -> FieldError:
    return errors.invalid(path, value, IMMUTABLE)


def too_many(path: str, count: int, limit: int) -> FieldError:
    # Kubernetes: `endpoints: Too many: 1001: must have at most 1000 items`.
    return FieldError(path, ErrorType.TOO_MANY, f"{count}: must have at most {limit} items")


def nonnegative(path: str, value: int) -> list[FieldError]:
    return [errors.invalid(path, value, NEGATIVE)] if value < 0 else []


def names(path: str, value: str, check: NameCheck) -> list[FieldError]:
    """One `Invalid value` per problem `check` finds, as Kubernetes lists them."""
    return [errors.invalid(path, value, problem) for problem in check(value)]


def port_num_or_name(path: str, value: str) -> list[FieldError]:
    """An int-or-string port (`targetPort`, a probe's port): 1-65535 or an IANA_SVC_NAME.

    Empty is Go's zero IntOrString, the number 0, and is reported as such.
    """
    parsed = parse_int_or_string(value) if value else 0
    if isinstance(parsed, int):
        return [errors.invalid(path, parsed, p) for p in is_port_num(parsed)]
    return [errors.invalid(path, parsed, p) for p in is_port_name(parsed)]


def _mask_trailing_dash(name: str) -> str:
    # generateName is a prefix: "web-" is fine because a random suffix follows.
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def validate_object_meta(
    meta: meta_pb2.ObjectMeta, *, namespaced: bool, name_check: NameCheck, path: str = "metadata"
) -> list[FieldError]:
    found: list[FieldError] = []
    if meta.generate_name:
        masked = _mask_trailing_dash(meta.generate_name)
        found += [
            errors.invalid(f"{path}.generateName", meta.generate_name, problem)
            for problem in name_check(masked)
        ]
    # The apiserver turns generateName into a name before validating, as Kubernetes'
    # BeforeCreate does; an object reaching here without a name has neither.
    if not meta.name:
        found.append(errors.required(f"{path}.name", "name or generateName is required"))
    else:
        found += names(f"{path}.name", meta.name, name_check)
    if namespaced:
        if not meta.namespace:
            found.append(errors.required(f"{path}.namespace"))
        else:
            found += names(f"{path}.namespace", meta.namespace, is_dns1123_label)
    elif meta.namespace:
        found.append(errors.forbidden(f"{path}.namespace", "not allowed on this type"))
    found += nonnegative(f"{path}.generation", meta.generation)
    found += validate_labels(meta.labels, f"{path}.labels")
    found += validate_annotations(meta.annotations, f"{path}.annotations")
    found += _validate_owner_references(meta.owner_references, f"{path}.ownerReferences")
    return found


def validate_labels(labels: Mapping[str, str], path: str) -> list[FieldError]:
    found: list[FieldError] = []
    for key, value in sorted(labels.items()):
        found += names(path, key, is_qualified_name)
        found += names(path, value, is_label_value)
    return found


def validate_annotations(annotations: Mapping[str, str], path: str) -> list[FieldError]:
    found: list[FieldError] = []
    size = 0
    for key, value in sorted(annotations.items()):
        # Annotation keys are qualified names compared case-insensitively (Kubernetes).
        found += [errors.invalid(path, key, p) for p in is_qualified_name(key.lower())]
        size += len(key.encode()) + len(value.encode())
    if size > ANNOTATIONS_MAX_BYTES:
        found.append(
            FieldError(path, ErrorType.TOO_LONG, f"must have at most {ANNOTATIONS_MAX_BYTES} bytes")
        )
    return found


def _validate_owner_references(
    refs: Sequence[meta_pb2.OwnerReference], path: str
) -> list[FieldError]:
    found: list[FieldError] = []
    controller = ""
    for ref in refs:
        # Kubernetes reports these at `ownerReferences.<field>`, without the index.
        if not ref.api_version.rpartition("/")[2]:
            found.append(
                errors.invalid(f"{path}.apiVersion", ref.api_version, "version must not be empty")
            )
        if not ref.kind:
            found.append(errors.invalid(f"{path}.kind", ref.kind, "kind must not be empty"))
        if not ref.name:
            found.append(errors.invalid(f"{path}.name", ref.name, "name must not be empty"))
        if not ref.uid:
            found.append(errors.invalid(f"{path}.uid", ref.uid, "uid must not be empty"))
        if ref.controller:
            current = f"{ref.kind}/{ref.name}"
            if controller:
                listed = GoLiteral("[" + ", ".join(f"{r.kind}/{r.name}" for r in refs) + "]")
                found.append(
                    errors.invalid(
                        path,
                        listed,
                        "Only one reference can have Controller set to true. Found "
                        f'"true" in references for {controller} and {current}',
                    )
                )
            else:
                controller = current
    return found


def validate_label_selector(selector: meta_pb2.LabelSelector, path: str) -> list[FieldError]:
    found = validate_labels(selector.match_labels, f"{path}.matchLabels")
    for i, expr in enumerate(selector.match_expressions):
        at = f"{path}.matchExpressions[{i}]"
        if expr.operator in ("In", "NotIn"):
            if not expr.values:
                found.append(
                    errors.required(
                        f"{at}.values", "must be specified when `operator` is 'In' or 'NotIn'"
                    )
                )
        elif expr.operator in ("Exists", "DoesNotExist"):
            if expr.values:
                found.append(
                    errors.forbidden(
                        f"{at}.values",
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
        else:
            found.append(
                errors.invalid(f"{at}.operator", expr.operator, "not a valid selector operator")
            )
        found += names(f"{at}.key", expr.key, is_qualified_name)
        for j, value in enumerate(expr.values):
            found += names(f"{at}.values[{j}]", value, is_label_value)
    return found


def validate_meta_update(
    old: meta_pb2.ObjectMeta, new: meta_pb2.ObjectMeta, path: str = "metadata"
) -> list[FieldError]:
    """Kubernetes' ValidateObjectMetaUpdate, for the fields kubelab stores.

    An empty uid in `new` means "keep": Kubernetes' BeforeUpdate copies the old
    uid (and creationTimestamp) into a manifest that leaves them out.
    """
    found: list[FieldError] = []
    if new.name != old.name:
        found.append(immutable(f"{path}.name", new.name))
    if new.namespace != old.namespace:
        found.append(immutable(f"{path}.namespace", new.namespace))
    if new.uid and new.uid != old.uid:
        found.append(immutable(f"{path}.uid", new.uid))
    return found
