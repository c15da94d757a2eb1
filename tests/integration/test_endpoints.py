"""`endpoints` (core/v1), read-only and derived from EndpointSlices, through the real
kubectl and the official `kubernetes` Python client.

Without a controller, slices written by hand (labelled as the EndpointSlice
controller's) show exactly what the mirror makes of them, event by event (and a watch
from a compacted revision is 410 Gone, as for stored kinds); with a whole
cluster, the controller's slices for real pods: `kubectl get endpoints`, a pod leaving
the selector seen by a watch, `kubectl describe svc` (which reads the slices and the
Service's events), and the Service's deletion ending its Endpoints.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from kubelab.core import manifests
from kubelab.core.endpointslices import MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL
from kubelab.lab import write_kubeconfig
from kubelab.testing.processes import ApiServerProcess, EtcdServer
from tests.integration.conftest import Cluster
from tests.integration.test_kubectl import KUBECTL, SHOP, Kubectl, grpc_apply, rows, until

pytestmark = pytest.mark.integration

HTTP = {"name": "http", "protocol": "TCP", "port": 8080}
ETCDCTL = KUBECTL.parent / "etcdctl"
DEPRECATED = "Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"


@pytest.fixture
def api_client(apiserver: ApiServerProcess, tmp_path: Path) -> Iterator[client.ApiClient]:
    path = write_kubeconfig(tmp_path, apiserver.http_url)
    with config.new_client_from_config(config_file=str(path)) as api_client:
        yield api_client


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def kubectl(apiserver: ApiServerProcess, tmp_path: Path) -> Kubectl:
    return Kubectl(apiserver.http_url, tmp_path / "kubectl-home")


def a_slice(
    name: str,
    endpoints: list[dict[str, Any]],
    *,
    service: str = "shop",
    managed_by: str = MANAGED_BY,
) -> dict[str, Any]:
    labels = {SERVICE_NAME_LABEL: service, MANAGED_BY_LABEL: managed_by, "app": service}
    return {
        "metadata": {"name": name, "labels": labels},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [HTTP],
    }


def endpoint(ip: str, pod: str, *, ready: bool = True) -> dict[str, Any]:
    return {
        "addresses": [ip],
        "conditions": {"ready": ready},
        "nodeName": "node-1",
        "targetRef": {"kind": "Pod", "namespace": "default", "name": pod, "uid": f"uid-{pod}"},
    }


def ips(endpoints: client.V1Endpoints, field: str = "addresses") -> list[str]:
    return [a.ip for s in endpoints.subsets or [] for a in getattr(s, field) or []]


def events_since(
    core: client.CoreV1Api, resource_version: str, **selectors: str
) -> list[tuple[str, str, list[str]]]:
    """The Endpoints events after `resource_version`, replayed (the watch ends after 1 s)."""
    return [
        (e["type"], e["object"].metadata.name, ips(e["object"]))
        for e in watch.Watch().stream(
            core.list_namespaced_endpoints,
            "default",
            resource_version=resource_version,
            timeout_seconds=1,
            **selectors,
        )
    ]


def test_endpoints_follow_the_slices_written_by_hand(
    core: client.CoreV1Api, api_client: client.ApiClient
) -> None:
    slices = client.DiscoveryV1Api(api_client)
    slices.create_namespaced_endpoint_slice(
        "default",
        a_slice(
            "shop-a",
            [endpoint("127.0.0.2", "p2", ready=False), endpoint("127.0.0.1", "p1")],
        ),
    )
    slices.create_namespaced_endpoint_slice(
        "default", a_slice("shop-b", [endpoint("127.0.0.3", "p3")])
    )
    # Another manager's slice is not mirrored back.
    slices.create_namespaced_endpoint_slice(
        "default", a_slice("cart-x", [endpoint("127.0.0.9", "p9")], service="cart", managed_by="me")
    )
    listed = core.list_namespaced_endpoints("default")
    assert [e.metadata.name for e in listed.items] == ["shop"]
    before = listed.metadata.resource_version

    shop = core.read_namespaced_endpoints("shop", "default")
    assert shop.metadata.labels == {"app": "shop"}
    assert ips(shop) == ["127.0.0.1", "127.0.0.3"]
    assert ips(shop, "not_ready_addresses") == ["127.0.0.2"]
    (subset,) = shop.subsets
    assert [(p.name, p.port, p.protocol) for p in subset.ports] == [("http", 8080, "TCP")]
    first = subset.addresses[0]
    assert (first.node_name, first.target_ref.kind, first.target_ref.name) == (
        "node-1",
        "Pod",
        "p1",
    )
    assert first.target_ref.uid == "uid-p1"

    # p2 turns ready; shop-b goes; then shop-a, the last slice.
    ready_now = [endpoint("127.0.0.2", "p2"), endpoint("127.0.0.1", "p1")]
    slices.patch_namespaced_endpoint_slice("shop-a", "default", {"endpoints": ready_now})
    slices.delete_namespaced_endpoint_slice("shop-b", "default")
    slices.delete_namespaced_endpoint_slice("shop-a", "default")
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_endpoints("shop", "default")
    assert gone.value.status == 404
    assert json.loads(gone.value.body)["message"] == 'endpoints "shop" not found'

    assert events_since(core, before) == [
        ("MODIFIED", "shop", ["127.0.0.1", "127.0.0.2", "127.0.0.3"]),
        ("MODIFIED", "shop", ["127.0.0.1", "127.0.0.2"]),
        ("DELETED", "shop", ["127.0.0.1", "127.0.0.2"]),
    ]
    # Selectors apply to the Endpoints (the Service's labels, its name).
    assert [t for t, _, _ in events_since(core, before, label_selector="app=shop")] == [
        "MODIFIED",
        "MODIFIED",
        "DELETED",
    ]
    assert events_since(core, before, field_selector="metadata.name=cart") == []


def test_kubectl_reads_endpoints_and_every_write_is_refused(
    core: client.CoreV1Api, api_client: client.ApiClient, kubectl: Kubectl
) -> None:
    resources = rows(kubectl.ok("api-resources"))
    assert ["endpoints", "ep", "v1", "true", "Endpoints"] in resources
    wide = rows(kubectl.ok("api-resources", "-o", "wide"))
    (endpoints_row,) = [r for r in wide if r[0] == "endpoints"]
    assert endpoints_row[5] == "get,list,watch"

    slices = client.DiscoveryV1Api(api_client)
    five = [endpoint(f"127.0.0.{i}", f"shop-{i}") for i in range(1, 6)]
    one = [endpoint("127.0.0.20", "cart-0")]
    # `get -w` (list, then a watch from the list's revision) prints the changes live.
    watching = subprocess.Popen(
        [str(KUBECTL), "get", "endpoints", "-w", "--output-watch-events"],
        env=kubectl.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert watching.stdout is not None
        slices.create_namespaced_endpoint_slice("default", a_slice("shop-a", five))
        first = watching.stdout.readline().split()
        if first[0] == "EVENT":  # the header comes with the first row
            first = watching.stdout.readline().split()
        assert first[:3] == ["ADDED", "shop", "127.0.0.1:8080,127.0.0.2:8080,127.0.0.3:8080"]
        slices.create_namespaced_endpoint_slice("default", a_slice("cart-a", one, service="cart"))
        assert watching.stdout.readline().split()[:3] == ["ADDED", "cart", "127.0.0.20:8080"]
    finally:
        watching.terminate()
        watching.wait(10)

    shown = kubectl.run("get", "endpoints")
    assert shown.returncode == 0, shown.stderr
    assert DEPRECATED in shown.stderr  # the apiserver's warning, printed by kubectl
    table = rows(shown.stdout)
    assert table[0] == ["NAME", "ENDPOINTS", "AGE"]
    assert [r[:2] for r in table[1:]] == [
        ["cart", "127.0.0.20:8080"],
        ["shop", "127.0.0.1:8080,127.0.0.2:8080,127.0.0.3:8080"],
    ]
    assert table[2][2:4] == ["+", "2"]  # "+ 2 more..."
    assert rows(kubectl.ok("get", "ep", "cart"))[1][:2] == ["cart", "127.0.0.20:8080"]
    as_json = json.loads(kubectl.ok("get", "ep", "shop", "-o", "json"))
    assert as_json["kind"] == "Endpoints"
    assert [a["ip"] for a in as_json["subsets"][0]["addresses"]][:2] == ["127.0.0.1", "127.0.0.2"]
    paged = core.list_namespaced_endpoints("default", limit=1)
    assert [e.metadata.name for e in paged.items] == ["cart"]
    rest = core.list_namespaced_endpoints("default", limit=1, _continue=paged.metadata._continue)
    assert [e.metadata.name for e in rest.items] == ["shop"]

    # Writes: 405 MethodNotAllowed, as a Status that says why, and nothing changes.
    refused = kubectl.fails("delete", "endpoints", "shop")
    assert "Error from server (MethodNotAllowed)" in refused
    assert "read-only in kubelab" in refused
    manifest = json.dumps({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "x"}})
    # (--validate=false: kubectl validates on the server only for kinds it can write.)
    created = kubectl.run("create", "--validate=false", "-f", "-", stdin=manifest)
    assert "MethodNotAllowed" in created.stderr
    writes: list[Callable[[], object]] = [
        lambda: core.create_namespaced_endpoints("default", {"metadata": {"name": "x"}}),
        lambda: core.patch_namespaced_endpoints("shop", "default", {"metadata": {"labels": {}}}),
        lambda: core.replace_namespaced_endpoints(
            "shop", "default", {"metadata": {"name": "shop"}}
        ),
        lambda: core.delete_namespaced_endpoints("shop", "default"),
    ]
    for write in writes:
        with pytest.raises(ApiException) as not_allowed:
            write()
        assert not_allowed.value.status == 405
        status = json.loads(not_allowed.value.body)
        assert (status["kind"], status["reason"]) == ("Status", "MethodNotAllowed")
        assert "read-only" in status["message"]
    assert len(ips(core.read_namespaced_endpoints("shop", "default"))) == 5


def test_a_clusters_endpoints_describe_and_watch(cluster: Cluster, tmp_path: Path) -> None:
    apiserver = cluster.apiserver
    kubectl = Kubectl(apiserver.http_url, tmp_path / "kubectl-home")
    path = write_kubeconfig(tmp_path, apiserver.http_url)
    api_client = config.new_client_from_config(config_file=str(path))
    core = client.CoreV1Api(api_client)
    grpc_apply(apiserver, *(loaded.object for loaded in manifests.load_manifest_files([str(SHOP)])))

    def selected() -> set[str]:
        table = rows(kubectl.ok("get", "pods", "-l", "app=shop,env=prod", "-o", "wide"))
        return {r[5] for r in table[1:] if r[1] == "1/1"}

    def ready_ips() -> list[str]:
        try:
            return ips(core.read_namespaced_endpoints("shop", "default"))
        except ApiException:
            return []

    until(lambda: len(selected()) == 5 and sorted(ready_ips()) == sorted(selected()), "5 ready")
    pods = selected()
    table = rows(kubectl.ok("get", "endpoints", "shop"))
    name, shown, plus, more = table[1][:4]
    assert (name, plus, more) == ("shop", "+", "2")
    assert {cell.rsplit(":", 1)[0] for cell in shown.split(",")} <= pods
    assert {cell.rsplit(":", 1)[1] for cell in shown.split(",")} == {"8080"}

    # describe reads the slices and the Service's events (by its uid).
    svc = core.read_namespaced_service("shop", "default")
    core.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "shop.checked"},
            "involvedObject": {
                "kind": "Service",
                "name": "shop",
                "namespace": "default",
                "uid": svc.metadata.uid,
                "apiVersion": "v1",
            },
            "reason": "Checked",
            "message": "looked at by the endpoints test",
            "type": "Normal",
            "count": 1,
            "source": {"component": "endpoints-test"},
        },
    )
    described = kubectl.ok("describe", "svc", "shop")
    lines = described.splitlines()
    (endpoints_line,) = [line for line in lines if line.startswith("Endpoints:")]
    listed = endpoints_line.split()[1]
    assert {cell.rsplit(":", 1)[0] for cell in listed.split(",")} <= pods
    assert endpoints_line.endswith("+ 2 more...")
    events = described[described.index("Events:") :].splitlines()
    assert events[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert any(
        line.split()[:2] == ["Normal", "Checked"] and "endpoints-test" in line for line in events
    ), events

    # A pod whose labels no longer match leaves; a watch from before sees one change.
    usd = core.read_namespaced_pod("shop-usd", "default").status.pod_ip
    before = core.list_namespaced_endpoints("default").metadata.resource_version
    core.patch_namespaced_pod("shop-usd", "default", {"metadata": {"labels": {"env": "staging"}}})
    until(lambda: usd not in ready_ips(), "shop-usd to leave the Endpoints")
    assert events_since(core, before) == [("MODIFIED", "shop", sorted(pods - {usd}))]

    # The Service's deletion takes its slices, and so its Endpoints.
    before = core.list_namespaced_endpoints("default").metadata.resource_version
    kubectl.ok("delete", "svc", "shop")
    until(lambda: not core.list_namespaced_endpoints("default").items, "the Endpoints to go")
    assert events_since(core, before) == [("DELETED", "shop", sorted(pods - {usd}))]
    api_client.close()


def test_a_watch_from_a_compacted_revision_is_gone(
    core: client.CoreV1Api, api_client: client.ApiClient, etcd: EtcdServer
) -> None:
    slices = client.DiscoveryV1Api(api_client)
    before = core.list_namespaced_endpoints("default").metadata.resource_version
    slices.create_namespaced_endpoint_slice("default", a_slice("shop-a", []))
    now = core.list_namespaced_endpoints("default").metadata.resource_version
    subprocess.run(
        [str(ETCDCTL), "--endpoints", etcd.endpoint, "compact", now],
        check=True,
        capture_output=True,
        timeout=30,
    )
    with pytest.raises(ApiException) as gone:
        events_since(core, before)
    assert gone.value.status == 410
    assert events_since(core, now) == []  # the list's revision still works
