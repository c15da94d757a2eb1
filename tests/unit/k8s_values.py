"""Hypothesis strategies for JSON values and kubectl-shaped objects (k8s package tests)."""

from __future__ import annotations

from hypothesis import strategies as st

from services.apiserver.k8s.jsonvalue import Json

KEYS = st.sampled_from(["a", "b", "c", "app", "tier", "x.io/y"])
SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["", "v", "w"])


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Json]:
    return st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
        max_leaves=max_leaves,
    )


def json_objects(max_leaves: int = 12) -> st.SearchStrategy[dict[str, Json]]:
    return st.dictionaries(KEYS, json_values(max_leaves), max_size=4)


def without_nulls(value: Json) -> Json:
    """A merge patch cannot set null inside an object (null means delete)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


LABELS = st.dictionaries(st.sampled_from(["app", "tier", "env"]), st.sampled_from(["x", "y"]))
SERVICE_PORTS = st.lists(
    st.fixed_dictionaries(
        {"port": st.sampled_from([80, 443, 8080])},
        optional={
            "name": st.sampled_from(["http", "https", "alt"]),
            "targetPort": st.sampled_from([8080, 8443, "web"]),
            "protocol": st.sampled_from(["TCP", "UDP"]),
        },
    ),
    max_size=3,
    unique_by=lambda p: (p["port"], p.get("protocol", "TCP")),
)


@st.composite
def services(draw: st.DrawFn) -> dict[str, Json]:
    spec: dict[str, Json] = {"ports": draw(SERVICE_PORTS)}  # type: ignore[dict-item]
    if draw(st.booleans()):
        spec["selector"] = draw(LABELS)  # type: ignore[assignment]
    if draw(st.booleans()):
        spec["type"] = draw(st.sampled_from(["ClusterIP", "NodePort"]))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "shop", "namespace": "default", "labels": draw(LABELS)},  # type: ignore[dict-item]
        "spec": spec,
    }
