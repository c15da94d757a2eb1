"""Strategic merge patch by Kubernetes' merge keys, with kubectl's directives."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.apiserver.k8s.jsonvalue import Json, PatchError, json_equal
from services.apiserver.k8s.merge_patch import apply_merge_patch
from services.apiserver.k8s.strategic_merge import apply_strategic_merge_patch
from tests.unit.k8s_values import LABELS, SERVICE_PORTS, json_objects, services

LAST_APPLIED = json.dumps(
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "annotations": {},
            "labels": {"app": "x", "tier": "web"},
            "name": "x",
            "namespace": "default",
        },
        "spec": {
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
            "selector": {"app": "x"},
        },
    },
    separators=(",", ":"),
)
LIVE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "x",
        "namespace": "default",
        "labels": {"app": "x", "env": "dev"},
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
    },
    "spec": {
        "clusterIP": "10.96.0.11",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
        "selector": {"app": "x"},
        "type": "ClusterIP",
    },
}


def with_spec(**spec: Any) -> dict[str, Any]:
    return {**LIVE, "spec": {**LIVE["spec"], **spec}}


HTTP = {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        pytest.param(
            # Recording 10 #36: `kubectl apply` after a label was added to the file.
            {
                "metadata": {
                    "annotations": {
                        "kubectl.kubernetes.io/last-applied-configuration": LAST_APPLIED
                    },
                    "labels": {"tier": "web"},
                }
            },
            {
                **LIVE,
                "metadata": {
                    **LIVE["metadata"],
                    "labels": {"app": "x", "env": "dev", "tier": "web"},
                    "annotations": {
                        "kubectl.kubernetes.io/last-applied-configuration": LAST_APPLIED
                    },
                },
            },
            id="kubectl-apply-label-keeps-kubectl-label-one",
        ),
        pytest.param(
            {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}},
            with_spec(ports=[{**HTTP, "targetPort": 9090}]),
            id="ports-merge-by-port",
        ),
        pytest.param(
            {"spec": {"ports": [{"port": 443, "name": "https"}]}},
            with_spec(ports=[{"port": 443, "name": "https"}, HTTP]),
            id="new-port-without-order-goes-first",
        ),
        pytest.param(
            {
                "spec": {
                    "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
                    "ports": [{"port": 443, "name": "https", "targetPort": 8443}],
                }
            },
            with_spec(ports=[HTTP, {"port": 443, "name": "https", "targetPort": 8443}]),
            id="kubectl-adds-a-port-with-set-element-order",
        ),
        pytest.param(
            {"spec": {"$setElementOrder/ports": [], "ports": [{"$patch": "delete", "port": 80}]}},
            with_spec(ports=[]),
            id="kubectl-removes-a-port",
        ),
        pytest.param(
            # What kubectl's three-way patch is when the file's port 80 becomes 8080.
            {
                "spec": {
                    "$setElementOrder/ports": [{"port": 8080}],
                    "ports": [
                        {"name": "http", "port": 8080, "targetPort": 8080},
                        {"$patch": "delete", "port": 80},
                    ],
                }
            },
            with_spec(ports=[{"name": "http", "port": 8080, "targetPort": 8080}]),
            id="kubectl-renumbers-a-port",
        ),
        pytest.param(
            {"spec": {"ports": [{"$patch": "replace"}, {"port": 53, "protocol": "UDP"}]}},
            with_spec(ports=[{"port": 53, "protocol": "UDP"}]),
            id="list-replace-directive",
        ),
        pytest.param(
            {"spec": {"ports": [{"port": 80, "name": None}]}},
            with_spec(ports=[{"port": 80, "protocol": "TCP", "targetPort": 8080}]),
            id="null-deletes-a-field-of-an-item",
        ),
        pytest.param(
            {"spec": {"selector": {"tier": "web"}}},
            with_spec(selector={"app": "x", "tier": "web"}),
            id="selector-has-no-patch-strategy-so-merges",
        ),
        pytest.param(
            {"spec": {"selector": {"$patch": "replace", "tier": "web"}}},
            with_spec(selector={"tier": "web"}),
            id="map-replace-directive",
        ),
        pytest.param(
            {"spec": {"clusterIPs": ["10.96.0.12"]}},
            with_spec(clusterIPs=["10.96.0.12"]),
            id="atomic-list-replaced",
        ),
        pytest.param(
            {"metadata": {"labels": {"env": None}}, "spec": {"type": None}},
            {
                **LIVE,
                "metadata": {**LIVE["metadata"], "labels": {"app": "x"}},
                "spec": {k: v for k, v in LIVE["spec"].items() if k != "type"},
            },
            id="null-deletes-keys",
        ),
        pytest.param(
            {"spec": {"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60, "x": None}}}},
            with_spec(sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}),
            id="nulls-in-new-values-dropped",
        ),
        pytest.param({}, LIVE, id="empty"),
    ],
)
def test_service_patches(patch: Json, expected: Json) -> None:
    before = copy.deepcopy(LIVE)
    assert apply_strategic_merge_patch(LIVE, patch, "Service") == expected
    assert LIVE == before


POD: dict[str, Any] = {
    "metadata": {"name": "p", "finalizers": ["a", "b", "c"]},
    "spec": {
        "containers": [
            {"name": "1", "other": "a"},
            {
                "name": "2",
                "image": "shop:1",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 8080, "name": "http"}],
                "args": ["x", "y"],
            },
        ]
    },
}


def containers(*items: Any) -> dict[str, Any]:
    return {**POD, "spec": {"containers": list(items)}}


C1, C2 = POD["spec"]["containers"]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        pytest.param(
            {"spec": {"containers": [{"name": "2", "image": "shop:2"}]}},
            containers(C1, {**C2, "image": "shop:2"}),
            id="containers-by-name",
        ),
        pytest.param(
            {
                "spec": {
                    "containers": [
                        {
                            "name": "2",
                            "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                        }
                    ]
                }
            },
            containers(
                C1,
                {
                    **C2,
                    "env": [
                        {"name": "A", "value": "1"},
                        {"name": "B", "value": "3"},
                        {"name": "C", "value": "4"},
                    ],
                },
            ),
            id="env-by-name-nested-in-containers",
        ),
        pytest.param(
            {
                "spec": {
                    "containers": [{"name": "2", "ports": [{"containerPort": 8080, "name": "web"}]}]
                }
            },
            containers(C1, {**C2, "ports": [{"containerPort": 8080, "name": "web"}]}),
            id="container-ports-by-containerPort",
        ),
        pytest.param(
            {"spec": {"containers": [{"name": "2", "args": ["z"]}]}},
            containers(C1, {**C2, "args": ["z"]}),
            id="args-replaced",
        ),
        pytest.param(
            # Kubernetes' patch_test "add map and delete map from merging list".
            {
                "spec": {
                    "$setElementOrder/containers": [{"name": "2"}, {"name": "3"}],
                    "containers": [{"name": "3"}, {"name": "1", "$patch": "delete"}],
                }
            },
            containers(C2, {"name": "3"}),
            id="set-element-order-with-delete",
        ),
        pytest.param(
            {
                "spec": {
                    "$setElementOrder/containers": [
                        {"name": "4"},
                        {"name": "1"},
                        {"name": "2"},
                        {"name": "3"},
                    ],
                    "containers": [{"name": "4", "value": 4}, {"name": "3", "value": 3}],
                }
            },
            containers({"name": "4", "value": 4}, C1, C2, {"name": "3", "value": 3}),
            id="set-element-order-interleaves",
        ),
        pytest.param(
            {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}},
            {**POD, "metadata": {"name": "p", "finalizers": ["a", "c"]}},
            id="delete-from-primitive-list",
        ),
        pytest.param(
            {"metadata": {"finalizers": ["d", "a"]}},
            {**POD, "metadata": {"name": "p", "finalizers": ["d", "a", "b", "c"]}},
            id="primitive-merge-list-is-a-union",
        ),
        pytest.param(
            {"metadata": {"$setElementOrder/finalizers": ["c", "a", "b"]}},
            {**POD, "metadata": {"name": "p", "finalizers": ["c", "a", "b"]}},
            id="set-element-order-of-primitives",
        ),
    ],
)
def test_pod_patches(patch: Json, expected: Json) -> None:
    assert apply_strategic_merge_patch(POD, patch, "Pod") == expected


DEPLOY: dict[str, Any] = {
    "spec": {
        "replicas": 3,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
    }
}


@pytest.mark.parametrize(
    ("strategy_patch", "strategy"),
    [
        pytest.param(
            # What kubectl sends when a Deployment's strategy becomes Recreate.
            {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None},
            {"type": "Recreate"},
            id="recreate",
        ),
        pytest.param(
            # Kubernetes' patch_test "retainKeys map clears a field".
            {"$retainKeys": ["rollingUpdate", "type"]},
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            id="nothing-to-clear",
        ),
        pytest.param(
            {"$retainKeys": ["rollingUpdate"]},
            {"rollingUpdate": {"maxSurge": 1}},
            id="clears-a-field",
        ),
        pytest.param(
            # "retainKeys map should clear defaulted field".
            {"$retainKeys": ["rollingUpdate"], "rollingUpdate": {"maxUnavailable": 2}},
            {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 2}},
            id="clears-defaulted-field-and-merges-the-rest",
        ),
        pytest.param(
            {"rollingUpdate": {"maxSurge": None}},
            {"type": "RollingUpdate", "rollingUpdate": {}},
            id="no-directive-plain-merge",
        ),
    ],
)
def test_retain_keys(strategy_patch: Any, strategy: Any) -> None:
    patch: Any = {"spec": {"strategy": strategy_patch}}
    result = apply_strategic_merge_patch(DEPLOY, patch, "Deployment")
    assert result == {"spec": {"replicas": 3, "strategy": strategy}}


@pytest.mark.parametrize(
    ("metadata_patch", "finalizers"),
    [
        pytest.param({"$deleteFromPrimitiveList/finalizers": ["z"]}, ["a", "b", "c"], id="absent"),
        pytest.param({"$deleteFromPrimitiveList/finalizers": ["a", "c"]}, ["b"], id="two"),
        pytest.param(
            {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["d"]},
            ["d", "b", "c"],
            id="delete-and-add",
        ),
    ],
)
def test_delete_from_primitive_list(metadata_patch: Any, finalizers: list[str]) -> None:
    result: Any = apply_strategic_merge_patch(POD, {"metadata": metadata_patch}, "Pod")
    assert result["metadata"]["finalizers"] == finalizers


def test_delete_from_a_missing_primitive_list_adds_no_list() -> None:
    patch: Any = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}
    assert apply_strategic_merge_patch({"metadata": {}}, patch, "Pod") == {"metadata": {}}


@pytest.mark.parametrize(
    ("kind", "original", "patch", "message"),
    [
        pytest.param(
            "Service",
            LIVE,
            {"spec": {"ports": [{"name": "x"}]}},
            'spec.ports[0]: missing merge key "port"',
            id="missing-merge-key",
        ),
        pytest.param(
            "Service",
            LIVE,
            {"spec": {"ports": [{"$patch": "delete"}]}},
            'spec.ports[0]: $patch delete without merge key "port"',
            id="delete-without-key",
        ),
        pytest.param(
            "Service",
            LIVE,
            {"spec": {"ports": [{"$patch": "frob", "port": 80}]}},
            "spec.ports[0]: unknown $patch 'frob' in a list",
            id="unknown-list-directive",
        ),
        pytest.param(
            "Service",
            LIVE,
            {"spec": {"$patch": "frob"}},
            "spec: unknown $patch 'frob' for an object",
            id="unknown-map-directive",
        ),
        pytest.param(
            "Service",
            LIVE,
            {"spec": {"$frob": 1}},
            "spec.$frob: unknown directive",
            id="unknown-directive",
        ),
        pytest.param(
            "Service",
            LIVE,
            {"spec": {"$setElementOrder/ports": [{"port": 80}], "ports": [{"port": 443}]}},
            "spec.$setElementOrder/ports: does not match the order of the patch's list",
            id="order-misses-an-item",
        ),
        pytest.param(
            "Deployment",
            DEPLOY,
            {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}}}},
            "spec.strategy.$retainKeys: the patch sets 'rollingUpdate', which is not retained",
            id="retain-keys-must-cover-the-patch",
        ),
        pytest.param(
            "Service",
            LIVE,
            {"spec": {"ports": [3]}},
            "spec.ports[0]: must be an object, as every item of this list",
            id="scalar-in-list-of-objects",
        ),
    ],
)
def test_errors_name_the_path(
    kind: str, original: dict[str, Json], patch: Json, message: str
) -> None:
    before = copy.deepcopy(original)
    with pytest.raises(PatchError) as caught:
        apply_strategic_merge_patch(original, patch, kind)
    assert str(caught.value) == message
    assert caught.value.status_code == 422
    assert original == before


@given(services())
def test_an_empty_patch_changes_nothing(service: dict[str, Json]) -> None:
    assert apply_strategic_merge_patch(service, {}, "Service") == service


@given(json_objects(), json_objects())
def test_without_lists_it_is_a_merge_patch(
    original: dict[str, Json], patch: dict[str, Json]
) -> None:
    # An unknown kind has no merge keys: every list is replaced, objects merge.
    def no_lists(v: Json) -> Json:
        if isinstance(v, dict):
            return {k: no_lists(x) for k, x in v.items()}
        return "l" if isinstance(v, list) else v

    original, patch = no_lists(original), no_lists(patch)  # type: ignore[assignment]
    assert json_equal(
        apply_strategic_merge_patch(original, patch, "Widget"), apply_merge_patch(original, patch)
    )


@given(services(), SERVICE_PORTS, LABELS)
def test_ports_merge_by_port_and_patching_twice_is_patching_once(
    service: dict[str, Any], ports: list[dict[str, Any]], labels: dict[str, str]
) -> None:
    # Strategic merge keys Service ports by `port` alone (server-side apply by port and
    # protocol): two patch items with one port number are one item to it, as in Kubernetes.
    ports = list({p["port"]: p for p in ports}.values())
    patch: Any = {"metadata": {"labels": labels}, "spec": {"ports": ports}}
    once: Any = apply_strategic_merge_patch(service, patch, "Service")
    assert apply_strategic_merge_patch(once, patch, "Service") == once
    merged = once["spec"]["ports"]
    live_ports = {p["port"] for p in service["spec"]["ports"]}
    assert {p["port"] for p in merged} == live_ports | {p["port"] for p in ports}
    for port in ports:
        # Every field the patch gave is on the item with its port.
        item = next(p for p in merged if p["port"] == port["port"])
        assert item | port == item


@given(services(), st.data())
def test_delete_directive_removes_exactly_that_port(
    service: dict[str, Any], data: st.DataObject
) -> None:
    ports = service["spec"]["ports"]
    if not ports:
        return
    gone = data.draw(st.sampled_from(ports))["port"]
    result = apply_strategic_merge_patch(
        service, {"spec": {"ports": [{"$patch": "delete", "port": gone}]}}, "Service"
    )
    assert result["spec"]["ports"] == [p for p in ports if p["port"] != gone]  # type: ignore[index,call-overload]
