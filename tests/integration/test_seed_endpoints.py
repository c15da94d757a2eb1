"""The seed, end to end: "the Service's EndpointSlice should always be up to date with a list
of healthy pods that the Service can route to" — with real etcd, apiserver, controller and
node agents, each step against a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from kubelab.client import ApiError, Client
from kubelab.core.manifests import load_manifest_files
from kubelab.store import Store
from kubelab.testing.processes import ControllerProcess, EtcdServer, controller_synced
from kubelab.testing.traffic import echo_post
from kubelab.testing.wait import until, until_logged, until_read
from kubelab.v1 import objects_pb2
from tests.integration.conftest import LEASE_TTL, Cluster, eventually, ready_count

pytestmark = pytest.mark.integration

SEED = Path(__file__).resolve().parents[2] / "examples" / "shop.yaml"
Endpoints = dict[str, tuple[str, bool, bool, bool]]


async def endpoints(api: Client) -> Endpoints:
    """Pod name → (address, ready, serving, terminating), over every slice of `shop`."""
    items, _ = await api.list("endpointslices", label_selector="kubernetes.io/service-name=shop")
    found: Endpoints = {}
    for item in items:
        assert isinstance(item, objects_pb2.EndpointSlice)
        for endpoint in item.endpoints:
            name = endpoint.target_ref.name
            assert name not in found, f"{name} listed twice"
            conditions = endpoint.conditions
            found[name] = (
                endpoint.addresses[0],
                conditions.ready,
                conditions.serving,
                conditions.terminating,
            )
    return found


async def slices_until(
    api: Client, check: Callable[[Endpoints], bool], timeout: float, what: str
) -> Endpoints:
    return await until(what, lambda: endpoints(api), check, timeout=timeout)


def ready_names(found: Endpoints) -> set[str]:
    return {name for name, (_, ready, _, _) in found.items() if ready}


async def apply_seed(api: Client) -> set[str]:
    """Apply the seed's example; the names of the pods the Service must select once Ready."""
    for item in load_manifest_files([str(SEED)]):
        await api.apply(item.object)
    pods = await eventually(api, ready_count(6), 40, "the seed's 6 pods ready")
    return {p.metadata.name for p in pods if p.metadata.labels.get("env") == "prod"}


async def test_the_slice_lists_exactly_the_prod_pods_including_extra_labels(
    cluster: Cluster, api: Client
) -> None:
    prod = await apply_seed(api)
    assert "shop-usd" in prod and "shop-dev" not in prod
    found = await slices_until(
        api, lambda f: ready_names(f) == prod and set(f) == prod, 10, "the prod pods"
    )
    pods, _ = await api.list("pods")
    ips = {p.metadata.name: p.status.pod_ip for p in pods if isinstance(p, objects_pb2.Pod)}
    assert {name: address for name, (address, *_) in found.items()} == {n: ips[n] for n in prod}


async def test_relabel_moves_a_pod_out_and_back_in(cluster: Cluster, api: Client) -> None:
    prod = await apply_seed(api)
    await slices_until(api, lambda f: ready_names(f) == prod, 10, "the prod pods")
    moved = sorted(prod - {"shop-usd"})[0]

    async def relabel(env: str) -> float:
        # Read, change, compare-and-swap; ABORTED means someone wrote in between: again
        # (what `kubelab label` does).
        for _ in range(10):
            pod = await api.get("pods", moved)
            assert isinstance(pod, objects_pb2.Pod)
            pod.metadata.labels["env"] = env
            started = time.monotonic()
            try:
                await api.update(pod)
            except ApiError as err:
                if err.code is grpc.StatusCode.ABORTED:
                    continue
                raise
            return started
        raise AssertionError(f"{moved} kept changing")

    started = await relabel("dev")
    await slices_until(api, lambda f: moved not in f, 5, f"{moved} out of the slice")
    assert time.monotonic() - started < 1.0
    started = await relabel("prod")
    await slices_until(api, lambda f: moved in ready_names(f), 5, f"{moved} back in")
    assert time.monotonic() - started < 1.0


async def test_a_failing_readiness_probe_turns_the_endpoint_not_ready_and_back(
    cluster: Cluster, api: Client
) -> None:
    prod = await apply_seed(api)
    found = await slices_until(api, lambda f: ready_names(f) == prod, 10, "the prod pods")
    name = sorted(prod)[0]
    address = found[name][0]
    await asyncio.to_thread(echo_post, address, "/healthz/fail")
    after = await slices_until(api, lambda f: name in f and not f[name][1], 10, f"{name} not ready")
    assert after[name][2] is False, "a failing pod is not serving either"
    await asyncio.to_thread(echo_post, address, "/healthz/pass")
    await slices_until(api, lambda f: name in ready_names(f), 10, f"{name} ready again")


async def test_new_replicas_appear_once_ready(cluster: Cluster, api: Client) -> None:
    prod = await apply_seed(api)
    await slices_until(api, lambda f: ready_names(f) == prod, 10, "the prod pods")
    deployment = await api.get("deployments", "shop")
    assert isinstance(deployment, objects_pb2.Deployment)
    deployment.spec.replicas = 6
    await api.update(deployment)
    grown = await slices_until(
        api, lambda f: len(ready_names(f)) == len(prod) + 2, 30, "two more ready endpoints"
    )
    assert prod <= set(grown)


async def test_a_dead_nodes_pods_leave_the_slice(cluster: Cluster, api: Client) -> None:
    prod = await apply_seed(api)
    await slices_until(api, lambda f: ready_names(f) == prod, 10, "the prod pods")
    pods, _ = await api.list("pods")
    victim = next(
        p.spec.node_name
        for p in pods
        if isinstance(p, objects_pb2.Pod) and p.metadata.name in prod and p.spec.node_name
    )
    on_victim = {
        p.metadata.name
        for p in pods
        if isinstance(p, objects_pb2.Pod) and p.spec.node_name == victim
    }
    cluster.node(victim).kill()
    killed = time.monotonic()
    await slices_until(
        api, lambda f: not on_victim & set(f), LEASE_TTL + 3, "the dead node's endpoints gone"
    )
    assert time.monotonic() - killed <= LEASE_TTL + 1.5


async def shop_deployment(api: Client) -> objects_pb2.Deployment:
    deployment = await api.get("deployments", "shop")
    assert isinstance(deployment, objects_pb2.Deployment)
    return deployment


def rolled_out(deployment: objects_pb2.Deployment) -> bool:
    """The Deployment's status says what it will say until something changes: its last
    write by a controller over a cluster at rest."""
    status = deployment.status
    return (
        status.observed_generation == deployment.metadata.generation
        and status.replicas == status.updated_replicas == status.ready_replicas
        and status.ready_replicas == status.available_replicas == deployment.spec.replicas
    )


async def test_a_controller_restart_over_an_unchanged_cluster_writes_nothing(
    cluster: Cluster, api: Client, etcd: EtcdServer, tmp_path: Path
) -> None:
    prod = await apply_seed(api)
    await slices_until(api, lambda f: ready_names(f) == prod, 10, "the prod pods")
    # The first controller's last writes over the seed: the slice (above) and this status.
    await until(
        "the Deployment's status to say every replica is available",
        lambda: shop_deployment(api),
        rolled_out,
        describe=lambda d: d.status,
    )
    store = Store(etcd.endpoint)
    successor = ControllerProcess(etcd.endpoint, tmp_path, name="successor")
    try:
        settled = await store.current_revision()
        changed: list[bytes] = []
        delivered = settled

        async def collect() -> None:
            nonlocal delivered
            async for raw in store.watch_prefix(b"/registry/", settled):
                changed.append(raw.key)
                delivered = raw.revision

        collector = asyncio.create_task(collect())
        cluster.controllers[0].kill()
        successor.start()
        await until(
            "the successor to lead (failover)",
            lambda: store.leader("controller"),
            lambda leader: leader is not None and leader[0] == "successor",
            timeout=2 * LEASE_TTL + 2,
        )
        # "synced": it has reconciled every object once, so any write the restart causes
        # is done; once the watch has delivered every revision up to now, it has them all.
        assert successor.log is not None
        await until_logged("the successor's 'synced'", successor.log, controller_synced)
        reconciled = await store.current_revision()
        await until_read(
            f"the watch to deliver revision {reconciled}",
            lambda: delivered,
            lambda revision: revision >= reconciled,
        )
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
        writes = [k for k in changed if not k.startswith(b"/registry/elections/")]
        assert writes == [], f"the new leader rewrote {writes}"
        assert ready_names(await endpoints(api)) == prod
    finally:
        successor.stop()
        await store.close()
