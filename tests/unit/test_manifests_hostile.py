"""Hostile manifests: whatever a user writes, loading raises only `ManifestError`.

The values are the ones that used to escape as another exception and reach
the CLI's "kubelab bug" line: integers past Python's 4,300-digit conversion
limit, NaN and infinities, non-string mapping keys, lists and objects where a
scalar belongs. They are written as YAML flow text and as JSON by the small
emitters below (json/yaml dumpers would refuse the same values), placed under
real field names so they reach the shape check, validation and the messages.
Whatever loads is then defaulted and validated, and every message rendered:
none of that may raise either, and no message may grow with the input.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubelab.core import errors
from kubelab.core.manifests import ManifestError, load_manifests
from kubelab.core.validation import objects as validation


@dataclass(frozen=True)
class Digits:
    """An integer written out as digits, however many (Python could not print it)."""

    text: str


Scalar = None | bool | int | float | str | Digits

FIELD_NAMES = [
    "name", "namespace", "labels", "annotations", "selector", "ports", "port", "targetPort",
    "nodePort", "protocol", "type", "clusterIP", "externalIPs", "containers", "image", "env",
    "value", "terminationGracePeriodSeconds", "replicas", "strategy", "rollingUpdate",
    "maxSurge", "podCIDRs", "addresses", "endpoints", "timeoutSeconds", "generation",
]  # fmt: skip
SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=4290, max_value=6000).map(lambda n: Digits("9" * n)),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, 5e-324]),
    st.text(max_size=8),
    st.sampled_from(["12345", "0080", "-5", " ", "0.0.0.0", "224.0.0.1", "25%", "http"]),
)
KEYS: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(FIELD_NAMES),
    st.integers(-5, 70000),
    st.booleans(),
    st.floats(allow_nan=False),
    st.just(Digits("7" * 4400)),
    st.none(),
)
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(KEYS, children, max_size=4)
    ),
    max_leaves=16,
)
SKELETONS = st.sampled_from(
    [
        ("v1", "Service", "spec"),
        ("v1", "Pod", "spec"),
        ("apps/v1", "Deployment", "spec"),
        ("v1", "Node", "spec"),
        ("discovery.k8s.io/v1", "EndpointSlice", "endpoints"),
        ("v1", "Service", "metadata"),
    ]
)


def yaml_flow(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Digits):
        return value.text
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(yaml_flow(v) for v in value) + "]"
    return "{" + ", ".join(f"{yaml_flow(k)}: {yaml_flow(v)}" for k, v in value.items()) + "}"


def json_text(value: Any) -> str:
    if isinstance(value, Digits):
        return value.text
    if isinstance(value, list):
        return "[" + ", ".join(json_text(v) for v in value) + "]"
    if isinstance(value, dict):
        # JSON keys are strings: the key's YAML spelling, quoted.
        body = (f"{json.dumps(yaml_flow(k))}: {json_text(v)}" for k, v in value.items())
        return "{" + ", ".join(body) + "}"
    return json.dumps(value)  # NaN/Infinity: Python's json reads them too


def assert_loads_or_refuses(text: str) -> None:
    try:
        loaded = load_manifests(text)
    except ManifestError as err:
        assert len(str(err)) < 4 * errors.MAX_MESSAGE_CHARS
        return
    for item in loaded:
        validation.apply_defaults(item.info, item.object)
        found = validation.validate_object(item.info, item.object)
        if found:
            message = errors.format_invalid(item.info.kind, item.object.metadata.name, found)
            assert len(message) < 2 * errors.MAX_MESSAGE_CHARS + 1024


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SKELETONS, st.dictionaries(KEYS, TREES, max_size=4))
def test_hostile_values_only_raise_manifest_error(
    skeleton: tuple[str, str, str], body: dict[Any, Any]
) -> None:
    api_version, kind, section = skeleton
    document = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}, section: body}
    assert_loads_or_refuses(yaml_flow(document))
    assert_loads_or_refuses(json_text(document))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FIELD_NAMES), TREES)
def test_hostile_value_in_a_container(field: str, value: Any) -> None:
    container = {"name": "c", "image": "i", field: value}
    document = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [container]},
    }
    assert_loads_or_refuses(yaml_flow(document))
    assert_loads_or_refuses(json_text(document))
