"""What an update may not change: `validate_update(info, old, new)`.

Both objects are defaulted first, as the apiserver does. `expected` is the full
error text, or None when the update is allowed.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from google.protobuf.json_format import ParseDict

from kubelab.core import kinds
from kubelab.core.kinds import KindInfo
from kubelab.core.validation.objects import apply_defaults, validate_update

Manifest = dict[str, Any]

POD_SPEC_FIXED = (
    "spec: Forbidden: pod updates may not change fields other than "
    "`spec.containers[*].image`,`spec.nodeName` (only from empty, to bind an unscheduled pod)"
)

SERVICE: Manifest = {
    "metadata": {"name": "web", "uid": "u-1", "labels": {"app": "web"}},
    "spec": {
        "clusterIP": "10.96.0.5",
        "selector": {"app": "web"},
        "ports": [{"port": 80, "targetPort": "8080"}],
    },
}
POD: Manifest = {
    "metadata": {"name": "web-1", "labels": {"app": "web"}},
    "spec": {
        "containers": [
            {"name": "web", "image": "echo:1", "ports": [{"name": "http", "containerPort": 8080}]}
        ]
    },
}
DEPLOYMENT: Manifest = {
    "metadata": {"name": "web"},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": POD["spec"]},
    },
}
SLICE: Manifest = {
    "metadata": {"name": "web-abc"},
    "addressType": "IPv4",
    "endpoints": [{"addresses": ["127.244.1.5"]}],
}
NODE: Manifest = {"metadata": {"name": "node-1"}, "spec": {"podCIDR": "127.244.1.0/24"}}


def changed(base: Manifest, *edits: tuple[str, Any]) -> Manifest:
    """`base` with dotted paths set (`"spec.clusterIP"`); a value of ... deletes the key."""
    out = copy.deepcopy(base)
    for path, value in edits:
        *parents, last = path.split(".")
        node: Any = out
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        if value is ...:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return out


@pytest.mark.parametrize(
    ("info", "old", "new", "expected"),
    [
        # ------------------------------------------------------------ Service
        pytest.param(kinds.SERVICES, SERVICE, SERVICE, None, id="svc-unchanged"),
        pytest.param(
            kinds.SERVICES,
            SERVICE,
            changed(SERVICE, ("spec.clusterIP", "10.96.0.6")),
            'spec.clusterIP: Invalid value: "10.96.0.6": field is immutable',
            id="svc-cluster-ip-changed",
        ),
        pytest.param(
            kinds.SERVICES,
            SERVICE,
            changed(SERVICE, ("spec.clusterIP", ...)),
            None,
            id="svc-cluster-ip-omitted-means-keep",
        ),
        pytest.param(
            kinds.SERVICES,
            changed(SERVICE, ("spec.clusterIP", "None")),
            SERVICE,
            'spec.clusterIP: Invalid value: "10.96.0.5": field is immutable',
            id="svc-headless-to-cluster-ip",
        ),
        pytest.param(
            kinds.SERVICES,
            SERVICE,
            changed(
                SERVICE,
                ("spec.type", "ExternalName"),
                ("spec.clusterIP", ...),
                ("spec.externalName", "db.example.com"),
            ),
            None,
            id="svc-to-external-name",
        ),
        pytest.param(
            kinds.SERVICES,
            changed(SERVICE, ("spec.type", "ExternalName"), ("spec.clusterIP", "")),
            changed(SERVICE, ("spec.clusterIP", "10.96.0.77")),
            None,
            id="svc-from-external-name",
        ),
        pytest.param(
            kinds.SERVICES,
            SERVICE,
            changed(SERVICE, ("spec.type", "NodePort")),
            None,
            id="svc-cluster-ip-to-node-port",
        ),
        pytest.param(
            kinds.SERVICES,
            SERVICE,
            changed(SERVICE, ("metadata.labels", {"app": "web", "tier": "front"})),
            None,
            id="svc-labels-mutable",
        ),
        pytest.param(
            kinds.SERVICES,
            SERVICE,
            changed(SERVICE, ("metadata.name", "web2")),
            'metadata.name: Invalid value: "web2": field is immutable',
            id="svc-name",
        ),
        pytest.param(
            kinds.SERVICES,
            SERVICE,
            changed(SERVICE, ("metadata.namespace", "shop")),
            'metadata.namespace: Invalid value: "shop": field is immutable',
            id="svc-namespace",
        ),
        pytest.param(
            kinds.SERVICES,
            SERVICE,
            changed(SERVICE, ("metadata.uid", "u-2")),
            'metadata.uid: Invalid value: "u-2": field is immutable',
            id="svc-uid",
        ),
        pytest.param(
            kinds.SERVICES,
            SERVICE,
            changed(SERVICE, ("metadata.uid", ...)),
            None,
            id="svc-uid-omitted-means-keep",
        ),
        pytest.param(
            kinds.SERVICES,
            changed(
                SERVICE,
                ("spec.type", "LoadBalancer"),
                ("spec.externalTrafficPolicy", "Local"),
                ("spec.healthCheckNodePort", 31000),
            ),
            changed(
                SERVICE,
                ("spec.type", "LoadBalancer"),
                ("spec.externalTrafficPolicy", "Local"),
                ("spec.healthCheckNodePort", 31001),
            ),
            "spec.healthCheckNodePort: Forbidden: field is immutable",
            id="svc-health-check-node-port",
        ),
        # ------------------------------------------------------------ Pod
        pytest.param(
            kinds.PODS,
            POD,
            changed(POD, ("spec.containers.0.image", "echo:2")),
            None,
            id="pod-image-mutable",
        ),
        pytest.param(
            kinds.PODS,
            POD,
            changed(POD, ("metadata.labels", {"app": "web", "canary": "yes"})),
            None,
            id="pod-labels-mutable",
        ),
        pytest.param(
            kinds.PODS,
            POD,
            changed(POD, ("metadata.annotations", {"note": "x"})),
            None,
            id="pod-annotations-mutable",
        ),
        pytest.param(
            kinds.PODS, POD, changed(POD, ("spec.nodeName", "node-1")), None, id="pod-bind"
        ),
        pytest.param(
            kinds.PODS,
            changed(POD, ("spec.nodeName", "node-1")),
            changed(POD, ("spec.nodeName", "node-2")),
            f"{POD_SPEC_FIXED}\nchanged: spec.nodeName",
            id="pod-rebind",
        ),
        pytest.param(
            kinds.PODS,
            POD,
            changed(POD, ("spec.restartPolicy", "Never")),
            f"{POD_SPEC_FIXED}\nchanged: spec.restartPolicy",
            id="pod-restart-policy",
        ),
        pytest.param(
            kinds.PODS,
            POD,
            changed(
                POD,
                ("spec.containers.0.image", "echo:2"),
                ("spec.containers.0.ports", [{"name": "http", "containerPort": 9090}]),
            ),
            f"{POD_SPEC_FIXED}\nchanged: spec.containers[0].ports[0].containerPort",
            id="pod-container-port",
        ),
        pytest.param(
            kinds.PODS,
            POD,
            changed(
                POD,
                ("spec.containers", [*POD["spec"]["containers"], {"name": "b", "image": "b"}]),
            ),
            "spec.containers: Forbidden: pod updates may not add or remove containers",
            id="pod-add-container",
        ),
        # ------------------------------------------------------------ Deployment
        pytest.param(
            kinds.DEPLOYMENTS,
            DEPLOYMENT,
            changed(
                DEPLOYMENT,
                ("spec.replicas", 5),
                ("spec.template.spec", {"containers": [{"name": "web", "image": "echo:2"}]}),
            ),
            None,
            id="deploy-scale-and-roll",
        ),
        pytest.param(
            kinds.DEPLOYMENTS,
            DEPLOYMENT,
            changed(DEPLOYMENT, ("spec.selector", {"matchLabels": {"app": "api"}})),
            'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":'
            '"api"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable',
            id="deploy-selector",
        ),
        # ------------------------------------------------------------ EndpointSlice
        pytest.param(
            kinds.ENDPOINTSLICES,
            SLICE,
            changed(SLICE, ("endpoints", [{"addresses": ["127.244.2.9"]}])),
            None,
            id="slice-endpoints-mutable",
        ),
        pytest.param(
            kinds.ENDPOINTSLICES,
            SLICE,
            changed(SLICE, ("addressType", "IPv6")),
            'addressType: Invalid value: "IPv6": field is immutable',
            id="slice-address-type",
        ),
        # ------------------------------------------------------------ Node
        pytest.param(
            kinds.NODES,
            changed(NODE, ("spec.podCIDR", ...)),
            NODE,
            None,
            id="node-pod-cidr-set-once",
        ),
        pytest.param(
            kinds.NODES,
            NODE,
            changed(NODE, ("spec.podCIDR", "127.244.9.0/24")),
            'spec.podCIDR: Forbidden: node updates may not change podCIDR except from "" to valid',
            id="node-pod-cidr-changed",
        ),
        pytest.param(
            kinds.NODES,
            NODE,
            changed(NODE, ("spec.unschedulable", True)),
            None,
            id="node-cordon",
        ),
    ],
)
def test_update(info: KindInfo, old: Manifest, new: Manifest, expected: str | None) -> None:
    before, after = ParseDict(old, info.message()), ParseDict(new, info.message())
    apply_defaults(info, before)
    apply_defaults(info, after)
    rendered = [str(e) for e in validate_update(info, before, after)]
    assert rendered == ([] if expected is None else [expected])
