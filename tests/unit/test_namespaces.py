"""Namespaces: defaults and validation in Kubernetes' words, and the namespace
controller's plan for emptying a terminating namespace; Events' validation."""

from __future__ import annotations

import pytest

from kubelab.core import kinds
from kubelab.core.kinds import ApiObject, KindInfo
from kubelab.core.validation import objects as validation
from kubelab.v1 import meta_pb2, objects_pb2
from services.controller.logic.namespaces import plan_deletion


def ns(
    name: str = "dev", *, terminating: bool = True, finalizers: tuple[str, ...] = ("kubernetes",)
) -> objects_pb2.Namespace:
    out = objects_pb2.Namespace(
        metadata=meta_pb2.ObjectMeta(name=name),
        spec=objects_pb2.NamespaceSpec(finalizers=list(finalizers)),
    )
    out.status.phase = "Terminating" if terminating else "Active"
    if terminating:
        out.metadata.deletion_timestamp.seconds = 1
    return out


def pod(name: str, *, node: str = "", leaving: bool = False) -> objects_pb2.Pod:
    out = objects_pb2.Pod(
        metadata=meta_pb2.ObjectMeta(name=name, namespace="dev"),
        spec=objects_pb2.PodSpec(node_name=node),
    )
    if leaving:
        out.metadata.deletion_timestamp.seconds = 1
    return out


def svc(name: str) -> objects_pb2.Service:
    return objects_pb2.Service(metadata=meta_pb2.ObjectMeta(name=name, namespace="dev"))


def event(name: str) -> objects_pb2.Event:
    return objects_pb2.Event(metadata=meta_pb2.ObjectMeta(name=name, namespace="dev"))


def names(objs: tuple[ApiObject, ...]) -> list[str]:
    return [o.metadata.name for o in objs]


@pytest.mark.parametrize(
    ("namespace", "contents", "deleted", "marked", "remaining", "finalizers", "remove"),
    [
        pytest.param(
            ns(terminating=False),
            {kinds.SERVICES: [svc("a")]},
            [],
            [],
            0,
            None,
            False,
            id="active-untouched",
        ),
        pytest.param(
            ns(),
            {kinds.EVENTS: [event("e")], kinds.SERVICES: [svc("a")], kinds.DEPLOYMENTS: []},
            ["a", "e"],
            [],
            2,
            None,
            False,
            id="services-before-events",
        ),
        pytest.param(
            ns(),
            {
                kinds.PODS: [
                    pod("bound", node="n1"),
                    pod("loose"),
                    pod("going", node="n1", leaving=True),
                ]
            },
            ["loose"],
            ["bound"],
            3,
            None,
            False,
            id="pods-gracefully",
        ),
        pytest.param(ns(), {}, [], [], 0, (), True, id="empty-then-removed"),
        pytest.param(
            ns(finalizers=("kubernetes", "example.com/hold")),
            {},
            [],
            [],
            0,
            ("example.com/hold",),
            False,
            id="another-finalizer-holds-it",
        ),
    ],
)
def test_plan_deletion(
    namespace: objects_pb2.Namespace,
    contents: dict[KindInfo, list[ApiObject]],
    deleted: list[str],
    marked: list[str],
    remaining: int,
    finalizers: tuple[str, ...] | None,
    remove: bool,
) -> None:
    plan = plan_deletion(namespace, contents)
    assert names(plan.delete) == deleted
    assert names(plan.mark) == marked
    assert plan.remaining == remaining
    assert plan.finalizers == finalizers
    assert plan.remove is remove


def test_a_namespace_is_defaulted_as_kubernetes_does() -> None:
    new = objects_pb2.Namespace(metadata=meta_pb2.ObjectMeta(name="dev"))
    validation.apply_defaults(kinds.NAMESPACES, new)
    assert (new.api_version, new.kind) == ("v1", "Namespace")
    assert list(new.spec.finalizers) == ["kubernetes"]
    assert new.status.phase == "Active"
    assert dict(new.metadata.labels) == {"kubernetes.io/metadata.name": "dev"}
    validation.apply_defaults(kinds.NAMESPACES, new)
    assert list(new.spec.finalizers) == ["kubernetes"]  # idempotent


@pytest.mark.parametrize(
    ("name", "finalizers", "errors"),
    [
        pytest.param("dev", ["kubernetes"], [], id="ok"),
        pytest.param("dev", ["example.com/x"], [], id="qualified-finalizer"),
        pytest.param(
            "dev",
            ["mine"],
            [
                'spec.finalizers: Invalid value: "mine": name is neither a standard finalizer '
                "name nor is it fully qualified"
            ],
            id="bare-finalizer",
        ),
        pytest.param("a" * 64, [], ["metadata.name: Invalid value"], id="too-long"),
        pytest.param("my.ns", [], ["metadata.name: Invalid value"], id="dots"),
    ],
)
def test_namespace_validation(name: str, finalizers: list[str], errors: list[str]) -> None:
    obj = objects_pb2.Namespace(
        metadata=meta_pb2.ObjectMeta(name=name),
        spec=objects_pb2.NamespaceSpec(finalizers=finalizers),
    )
    found = [str(e) for e in validation.validate_object(kinds.NAMESPACES, obj)]
    found = [f for f in found if not f.startswith("metadata.labels")]
    assert len(found) == len(errors), found
    for got, want in zip(found, errors, strict=True):
        assert got.startswith(want)


@pytest.mark.parametrize(
    ("namespace", "involved", "type_", "errors"),
    [
        pytest.param("dev", "dev", "Normal", [], id="same-namespace"),
        pytest.param("default", "", "Warning", [], id="node-event-in-default"),
        pytest.param(
            "dev",
            "other",
            "Normal",
            ['involvedObject.namespace: Invalid value: "other": does not match event.namespace'],
            id="elsewhere",
        ),
        pytest.param(
            "dev",
            "",
            "Normal",
            ['involvedObject.namespace: Invalid value: "": does not match event.namespace'],
            id="cluster-scoped-outside-default",
        ),
        pytest.param(
            "dev",
            "dev",
            "Bad",
            ['type: Unsupported value: "Bad": supported values: "Normal", "Warning"'],
            id="type",
        ),
    ],
)
def test_event_validation(namespace: str, involved: str, type_: str, errors: list[str]) -> None:
    obj = objects_pb2.Event(
        metadata=meta_pb2.ObjectMeta(name="x.1", namespace=namespace),
        involved_object=meta_pb2.ObjectReference(kind="Pod", name="x", namespace=involved),
        type=type_,
    )
    assert [str(e) for e in validation.validate_object(kinds.EVENTS, obj)] == errors
