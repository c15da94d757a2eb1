"""Generators for the bad-input campaign: what a careless or hostile client sends.

Manifests start from one valid manifest per kind (`BASES`) and take one or two
mutations (`mutated`): a value replaced by a bad one (wrong type, huge or negative
number, 5,000-digit integer, long or odd unicode string, nesting), a key removed,
an extra key, a value wrapped in a list or a map, a list element repeated. Raw gRPC
messages are random bytes or a valid request's bytes flipped, cut or extended
(`raw_messages`).

`examples` draws a fixed number of distinct values from a strategy, deterministically
(`derandomize`), so the campaign sends the same inputs on every run and in CI. A
generated manifest's `metadata.name`, when still the placeholder `NAME`, becomes a
unique name (`render`), so what got stored can be told apart afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Iterator
from typing import Any, TypeVar

import yaml
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st

from kubelab.core.kinds import SERVICE_NAME_LABEL

T = TypeVar("T")
NAME = "NAME"
# A 5,000-digit integer: past Python's int/str conversion limit, so it is spliced into
# the text instead of going through json.dumps.
BIG_DIGITS = "9" * 5000
_BIG = "__kubelab_big_integer__"
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

_CONTAINER: dict[str, Any] = {
    "name": "web",
    "image": "kubelab/echo",
    "args": ["--port", "8080"],
    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
    "env": [{"name": "GREETING", "value": "hello"}],
    "readinessProbe": {
        "httpGet": {"path": "/healthz", "port": "http"},
        "periodSeconds": 1,
        "failureThreshold": 3,
    },
}

BASES: dict[str, dict[str, Any]] = {
    "Service": {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME, "labels": {"app": "shop"}, "annotations": {"a": "b"}},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": "shop"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            "sessionAffinity": "None",
        },
    },
    "Pod": {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": NAME, "labels": {"app": "shop"}},
        "spec": {"containers": [_CONTAINER], "terminationGracePeriodSeconds": 2},
    },
    "Deployment": {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "shop"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "shop"}},
                "spec": {"containers": [_CONTAINER]},
            },
        },
    },
    "EndpointSlice": {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": NAME, "labels": {SERVICE_NAME_LABEL: "shop"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.244.1.5"], "conditions": {"ready": True}, "nodeName": "node-1"}
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    },
    "Node": {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": NAME, "labels": {"zone": "a"}},
        "spec": {"podCIDR": "10.244.9.0/24", "podCIDRs": ["10.244.9.0/24"]},
    },
}

_ODD_STRINGS = (
    "",
    " ",
    "0080",
    "12345",
    "-1",
    "0.0.0.0",
    "224.0.0.1",
    "::",
    "on",
    "no",
    "null",
    "NaN",
    "25%",
    "a/b",
    "..",
    "\u202e",
    "😀",
    "é" * 64,
    "\t\n",
    "x" * 64,
)
_ODD_NUMBERS = (0, -1, 1, 65535, 65536, 2**31 - 1, 2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 10**30)


def _long_strings() -> st.SearchStrategy[str]:
    return st.builds(
        lambda unit, count: unit * count,
        st.sampled_from(["a", "-", "é", "😀", "a.", " "]),
        st.sampled_from([63, 64, 254, 1000, 5000]),
    )


def _scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(_ODD_STRINGS),
        st.sampled_from(_ODD_NUMBERS),
        st.just(_BIG),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=40),
        _long_strings(),
        st.booleans(),
        st.none(),
    )


def bad_values() -> st.SearchStrategy[Any]:
    """Scalars and small nestings of them."""
    return st.recursive(
        _scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=4,
    )


def _same_type(value: Any) -> st.SearchStrategy[Any]:
    """A bad value that still passes a client's type check, so the server judges it."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.one_of(st.sampled_from(_ODD_NUMBERS), st.integers(-(2**31), 2**31 - 1))
    if isinstance(value, str):
        return st.one_of(st.sampled_from(_ODD_STRINGS), st.text(max_size=40), _long_strings())
    return bad_values()


_HEADER = ("apiVersion", "kind")
Slot = tuple[Any, Any]  # a container (dict or list) and a key or index in it


def _slots(value: Any, *, root: bool = False) -> Iterator[Slot]:
    if isinstance(value, dict):
        for key, item in value.items():
            # A document's kind is the first thing a client checks: mutated rarely
            # (`_HEADER`), or little would reach the server.
            if not (root and key in ("apiVersion", "kind")):
                yield value, key
            yield from _slots(item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield value, index
            yield from _slots(item)


@st.composite
def _mutate_once(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    slots = list(_slots(doc, root=True))
    header = [(doc, key) for key in _HEADER if key in doc]
    if not slots or (header and draw(st.integers(0, 11)) == 0):
        slots = header
    container, key = draw(st.sampled_from(slots))
    operation = draw(
        st.sampled_from(["same-type"] * 4 + ["replace", "remove", "extra", "wrap", "repeat"])
    )
    if operation == "same-type":
        container[key] = draw(_same_type(container[key]))
    elif operation == "replace":
        container[key] = draw(bad_values())
    elif operation == "remove":
        del container[key]
    elif operation == "extra":
        target = container[key] if isinstance(container[key], dict | list) else container
        if isinstance(target, dict):
            target[draw(st.text(max_size=12))] = draw(bad_values())
        else:
            target.append(draw(bad_values()))
    elif operation == "wrap":
        container[key] = draw(st.sampled_from([[container[key]], {"value": container[key]}]))
    elif isinstance(container, list):
        container.extend([container[key]] * draw(st.sampled_from([1, 2, 50])))
    else:
        container[key] = [container[key]] * draw(st.sampled_from([2, 50]))


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A base manifest of any kind with one or two mutations."""
    doc = copy.deepcopy(BASES[draw(st.sampled_from(sorted(BASES)))])
    for _ in range(draw(st.integers(1, 2))):
        draw(_mutate_once(doc))
    return doc


def render(doc: Any, name: str) -> str:
    """`doc` as a YAML document, the placeholder name replaced by `name`. (YAML, not
    JSON: a stream of several documents is read as YAML, which refuses the raw control
    characters JSON may carry; the YAML dumper escapes them.)"""
    doc = copy.deepcopy(doc)
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    if isinstance(meta, dict) and meta.get("name") == NAME:
        meta["name"] = name
    text = yaml.dump(doc, Dumper=_DUMPER, allow_unicode=True, sort_keys=False, width=1 << 20)
    return text.replace(_BIG, BIG_DIGITS)


def name_of(doc: Any) -> str | None:
    """The name a rendered manifest carries, when it is a plain string."""
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else None


@st.composite
def _mutated_bytes(draw: st.DrawFn, valid: bytes) -> bytes:
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["flip", "cut", "insert", "length"]))
        if not data:
            operation = "insert"
        if operation == "flip":
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif operation == "cut":
            del data[draw(st.integers(0, len(data) - 1)) :]
        elif operation == "insert":
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            # A length prefix claiming far more than follows.
            data[draw(st.integers(0, len(data) - 1))] = 0xFF
    return bytes(data)


def raw_messages(valid: list[bytes]) -> st.SearchStrategy[bytes]:
    """Random bytes, and valid requests' bytes damaged."""
    return st.one_of(
        st.binary(max_size=256), st.sampled_from(valid).flatmap(lambda v: _mutated_bytes(v))
    )


def examples(
    strategy: st.SearchStrategy[T], count: int, key: Callable[[T], Hashable] = repr
) -> list[T]:
    """`count` distinct values of `strategy` (told apart by `key`), the same ones on
    every run. Hypothesis draws small values first and repeats some, so it is asked for
    more than `count`; ValueError if even those hold too few distinct ones. The draw
    runs to its end: stopping it with an exception made hypothesis replay that example,
    and a replay that drew differently failed the run (FlakyStrategyDefinition)."""
    drawn: dict[Hashable, T] = {}

    @settings(
        max_examples=count * 2,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    @given(strategy)
    def collect(value: T) -> None:
        if len(drawn) < count:
            drawn.setdefault(key(value), value)

    collect()
    if len(drawn) < count:
        raise ValueError(f"only {len(drawn)} distinct values of {count} wanted")
    return list(drawn.values())[:count]
