"""DeleteOptions of a DELETE, of one object or of a collection, as Kubernetes reads them.

Kubernetes' delete handlers decode the body when there is one and the query
parameters only when there is none (`handlers/delete.go`): kubectl sends
`{"propagationPolicy":"Background"}` (and `gracePeriodSeconds`, `dryRun` when
asked), the Python client's `delete_collection_namespaced_*` sends its options as
query parameters (`gracePeriodSeconds=0&propagationPolicy=Foreground`). Either way
the same checks run: gracePeriodSeconds an integer, propagationPolicy one of
Kubernetes' three, not with orphanDependents, dryRun only `All`; a bad value is a
400 (422 for dryRun, as `field_validation.dry_run` answers it) naming the option.

propagationPolicy is accepted and has nothing to do: nothing kubelab stores has
dependents that outlive their owner's delete (a Deployment's pods are its
controller's to remove).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from multidict import MultiDict, MultiMapping

from services.apiserver.rest import convert, field_validation
from services.apiserver.rest.errors import bad_request

POLICIES = ("Orphan", "Background", "Foreground")


@dataclass(frozen=True, slots=True)
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str = ""
    # preconditions
    resource_version: str = ""
    uid: str = ""
    dry_run: bool = False

    @property
    def has_preconditions(self) -> bool:
        return bool(self.resource_version or self.uid)


def parse(raw: bytes, query: MultiMapping[str]) -> DeleteOptions:
    """The options of a DELETE: from its body when it has one, else from its query."""
    if raw.strip():
        return _from_body(raw)
    return _from_query(query)


def _integer(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise bad_request(f'{name}: Invalid value: "{text[:64]}": must be an integer') from None


def _policy(policy: object, orphan: object) -> str:
    if policy is None or policy == "":
        return ""
    if policy not in POLICIES:
        shown = str(policy)[:64]
        raise bad_request(
            f'propagationPolicy: Unsupported value: "{shown}": supported values: '
            '"Orphan", "Background", "Foreground"'
        )
    if orphan is not None:
        # Kubernetes' ValidateDeleteOptions: the old switch and its replacement together.
        raise bad_request(
            f'propagationPolicy: Invalid value: "{policy}": orphanDependents and '
            "deletionPropagation cannot be both set"
        )
    return str(policy)


def _from_query(query: MultiMapping[str]) -> DeleteOptions:
    grace_text = query.get("gracePeriodSeconds", "")
    grace = _integer(grace_text, "gracePeriodSeconds") if grace_text else None
    orphan = query.get("orphanDependents")
    if orphan is not None and orphan.lower() not in ("true", "false"):
        raise bad_request(f'orphanDependents: Invalid value: "{orphan[:64]}": must be a boolean')
    return DeleteOptions(
        grace_period_seconds=grace,
        propagation_policy=_policy(query.get("propagationPolicy"), orphan),
        dry_run=field_validation.dry_run(query, "DeleteOptions"),
    )


def _from_body(raw: bytes) -> DeleteOptions:
    decoded = convert.parse_json(raw)
    if not isinstance(decoded, dict):
        raise bad_request("the body of a delete must be a DeleteOptions object")
    grace = decoded.get("gracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
        raise bad_request("gracePeriodSeconds: must be an integer")
    orphan = decoded.get("orphanDependents")
    if orphan is not None and not isinstance(orphan, bool):
        raise bad_request("orphanDependents: must be a boolean")
    preconditions = decoded.get("preconditions")
    if preconditions is None:
        preconditions = {}
    if not isinstance(preconditions, dict):
        raise bad_request("preconditions: must be an object")
    return DeleteOptions(
        grace_period_seconds=grace,
        propagation_policy=_policy(decoded.get("propagationPolicy"), orphan),
        resource_version=_text(preconditions, "resourceVersion"),
        uid=_text(preconditions, "uid"),
        dry_run=_dry_run(decoded.get("dryRun")),
    )


def _text(preconditions: dict[str, Any], name: str) -> str:
    value = preconditions.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad_request(f"preconditions.{name}: must be a string")
    return value


def _dry_run(value: object) -> bool:
    if value is None:
        return False
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request("dryRun: must be a list of strings")
    # The query form's check, for the same words.
    return field_validation.dry_run(MultiDict(("dryRun", v) for v in value), "DeleteOptions")
