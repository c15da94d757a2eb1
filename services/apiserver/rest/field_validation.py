"""`fieldValidation` on POST, PUT and PATCH: what happens to fields the schema lacks.

Kubernetes' three directives (the query parameter; Warn when absent, as since 1.27):

- `Strict`: a field no Kubernetes type has (`spec.portz`) fails the request, 400
  BadRequest with Kubernetes' words (`strict decoding error: unknown field
  "spec.portz"`), before anything is written;
- `Warn`: the request succeeds, the field is dropped, and the answer carries one
  `Warning: 299 - "unknown field \\"spec.portz\\""` header per field;
- `Ignore`: dropped silently.

A field given twice in one JSON object of a POST or PUT body (`parse`) counts the
same way, worded `duplicate field "metadata.name"` (the last value is kept).

Fields Kubernetes has and kubelab does not implement (`spec.containers[0].resources`,
`metadata.finalizers`) are never an error, whatever the directive: real manifests
carry them. They are dropped and, unless Ignore, named in a Warning saying kubelab
ignores them. Any other value of the parameter is a 422 as Kubernetes validates its
CreateOptions/UpdateOptions/PatchOptions.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from multidict import MultiMapping

from services.apiserver.k8s import openapi
from services.apiserver.k8s.jsonvalue import Json
from services.apiserver.rest import convert
from services.apiserver.rest.errors import ApiError, bad_request

Directive = Literal["Strict", "Warn", "Ignore"]
_DIRECTIVES: tuple[Directive, ...] = ("Ignore", "Strict", "Warn")
_SHAPE_SUFFIX = ": unknown field, ignored"


def directive(query: MultiMapping[str], options_kind: str) -> Directive:
    """The request's directive; `options_kind` (CreateOptions, UpdateOptions,
    PatchOptions) names the options object in the error, as Kubernetes does."""
    given = query.get("fieldValidation", "")
    if given == "":
        return "Warn"
    for known in _DIRECTIVES:
        if given == known:
            return known
    supported = ", ".join(f'"{d}"' for d in _DIRECTIVES)
    message = f'fieldValidation: Unsupported value: "{given[:64]}": supported values: {supported}'
    raise ApiError(
        422,
        "Invalid",
        f'{options_kind}.meta.k8s.io "" is invalid: {message}',
        {
            "kind": options_kind,
            "group": "meta.k8s.io",
            "causes": [
                {
                    "reason": "FieldValueNotSupported",
                    "message": message.removeprefix("fieldValidation: "),
                    "field": "fieldValidation",
                }
            ],
        },
    )


@dataclass(frozen=True, slots=True)
class Checked:
    """The Warning texts a request earned (Strict failures are raised instead)."""

    warnings: tuple[str, ...]


def check(
    document: Json,
    kind: str,
    mode: Directive,
    *,
    dropped: Iterable[str] = (),
    duplicates: Iterable[str] = (),
    prefix: str = "",
) -> Checked:
    """Check `document` (the body, or the object a patch produced) for `kind`.

    `dropped` are the shape check's warnings (`spec.foo: unknown field, ignored`):
    the fields kubelab's objects cannot hold; `duplicates` what `parse` found.
    `prefix` starts a Strict error's message (`Service in version "v1" cannot be
    handled as a Service: `)."""
    report = openapi.check_fields(document, kind)
    strict = [openapi.warning_text(p) for p in report.unknown]
    strict += [f'duplicate field "{p[1:]}"' for p in duplicates]
    if strict and mode == "Strict":
        raise bad_request(prefix + "strict decoding error: " + ", ".join(strict))
    if mode == "Ignore":
        return Checked(())
    warnings = strict if mode == "Warn" else []
    ignored = dict.fromkeys(report.ignored)
    ignored.update(dict.fromkeys("." + t.removesuffix(_SHAPE_SUFFIX) for t in dropped))
    unknown = set(report.unknown)
    warnings += [openapi.ignored_text(p) for p in ignored if p not in unknown]
    return Checked(tuple(warnings))


def cannot_handle(kind: str, api_version: str) -> str:
    """How Kubernetes starts a decoding error of a create or update body."""
    return f'{kind} in version "{api_version.rpartition("/")[2]}" cannot be handled as a {kind}: '


def dry_run(query: MultiMapping[str], options_kind: str) -> bool:
    """`dryRun=All` (the only value Kubernetes has); any other value is a 422."""
    given = query.getall("dryRun", [])
    if not given:
        return False
    if all(v == "All" for v in given):
        return True
    bad = next(v for v in given if v != "All")
    message = f'dryRun: Unsupported value: "{bad[:64]}": supported values: "All"'
    raise ApiError(
        422,
        "Invalid",
        f'{options_kind}.meta.k8s.io "" is invalid: {message}',
        {"kind": options_kind, "group": "meta.k8s.io"},
    )


class _Object(dict[str, Any]):
    """A JSON object that remembers the keys it was given more than once."""

    duplicates: list[str]


def parse(raw: bytes) -> tuple[Any, list[str]]:
    """A POST/PUT body as JSON, and the paths of its duplicate fields (`.metadata.name`)."""
    seen_any: list[bool] = []

    def pairs(items: list[tuple[str, Any]]) -> _Object:
        obj = _Object()
        for key, value in items:
            if key in obj:
                obj.duplicates = [*getattr(obj, "duplicates", []), key]
                seen_any.append(True)
            obj[key] = value
        return obj

    document = convert.parse_json(raw, pairs)
    return document, (_duplicate_paths(document, "") if seen_any else [])


def _duplicate_paths(value: Any, path: str) -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        found += [f"{path}.{key}" for key in getattr(value, "duplicates", [])]
        for key, item in value.items():
            found += _duplicate_paths(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _duplicate_paths(item, f"{path}[{index}]")
    return found
