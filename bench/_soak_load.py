"""The work bench/soak.py gives the cluster while its request loops run.

* A label storm: STORM_PODS real `kubelab/echo` pods behind the Service
  `soak-storm`, whose label `soak-storm` flips between `in` and `out` one pod
  after another (read, change, compare-and-swap update), so the controller
  rewrites that Service's slices and every proxy reprograms, all the time.
* A big headless Service `soak-big` with `endpoints` endpoints in slices of 100,
  written through the SDK as bench/dns.py writes its own: no selector, so no
  controller owns the slices and the endpoints need not be pods (10.<i/256>.<i%256>.n,
  never connected to). One endpoint after another turns not ready and back: a
  slice write every CHURN_PAUSE, each one felt by the DNS and every node proxy.
* The bad-input campaign of `tests/integration/test_bad_input.py`: manifests from
  `kubelab.testing.badinput`, loaded as the CLI would and applied through the SDK,
  CAMPAIGN_IN_FLIGHT at a time, round and round. What the apiserver accepts is
  deleted at once, so it runs but does not pile up. Two changes to the generated
  input, both so the campaign loads the cluster without becoming a different
  benchmark: the app name `shop` becomes `soak-bad` (a valid generated
  EndpointSlice labelled for `shop` would otherwise join the lab's shop Service
  and send the loops to 10.244.1.5), and a Deployment's replicas are capped at 2.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
from _headless import big_slice as headless_slice
from google.protobuf import json_format

from kubelab.client import ApiError, Client
from kubelab.core import kinds, manifests
from kubelab.core.kinds import ApiObject
from kubelab.testing import badinput
from kubelab.v1 import objects_pb2

STORM_PODS = 6
STORM_PAUSE = 0.05  # s between label flips
CHURN_PAUSE = 0.05  # s between slice writes of the big headless Service
CAMPAIGN_DOCS = 400
CAMPAIGN_IN_FLIGHT = 4
RETRY = (grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def storm_pod(index: int) -> objects_pb2.Pod:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"soak-storm-{index}",
            "labels": {"app": "soak-storm", "soak-storm": "in"},
        },
        "spec": {
            "containers": [
                {
                    "name": "echo",
                    "image": "kubelab/echo",
                    "ports": [{"name": "http", "containerPort": 8080}],
                }
            ]
        },
    }
    return json_format.ParseDict(body, objects_pb2.Pod())


def service(name: str, spec: dict[str, Any]) -> objects_pb2.Service:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}
    (loaded,) = manifests.load_manifests(json.dumps(body))  # what a user's YAML becomes
    assert isinstance(loaded.object, objects_pb2.Service)
    return loaded.object


def big_slice(index: int, not_ready: int | None = None) -> objects_pb2.EndpointSlice:
    return headless_slice("soak-big", index, not_ready)


def _renamed(value: Any) -> Any:
    if isinstance(value, dict):
        return {_renamed(k): _renamed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v) for v in value]
    return "soak-bad" if value == "shop" else value


def campaign_objects(count: int) -> list[ApiObject]:
    """The campaign's inputs the client sends (the rest it refuses itself)."""
    objects: list[ApiObject] = []
    for number, doc in enumerate(badinput.examples(badinput.mutated(), count)):
        try:
            loaded = manifests.load_manifests(badinput.render(_renamed(doc), f"soak-bad-{number}"))
        except manifests.ManifestError:
            continue
        for item in loaded:
            obj = item.object
            if item.info.namespaced and not obj.metadata.namespace:
                obj.metadata.namespace = "default"
            if isinstance(obj, objects_pb2.Deployment) and obj.spec.replicas > 2:
                obj.spec.replicas = 2
            objects.append(obj)
    return objects


@dataclass
class Workload:
    api: Client
    endpoints: int
    campaign: list[ApiObject] = field(default_factory=list)
    done: Counter[str] = field(default_factory=Counter)  # what each part did
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def prepare(self, timeout: float = 120.0) -> None:
        """The storm's Service and pods (Running), the big headless Service, the campaign's
        inputs drawn."""
        await self.api.apply(
            service(
                "soak-storm",
                {"selector": {"soak-storm": "in"}, "ports": [{"port": 80, "targetPort": 8080}]},
            )
        )
        for index in range(STORM_PODS):
            await self.api.apply(storm_pod(index))
        await self.api.apply(
            service("soak-big", {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]})
        )
        slices = (self.endpoints + 99) // 100
        async for stored, _ in self.api.apply_many(big_slice(i) for i in range(slices)):
            if isinstance(stored, ApiError):
                raise stored
        self.campaign = await asyncio.to_thread(campaign_objects, CAMPAIGN_DOCS)
        deadline = time.monotonic() + timeout
        while True:
            items, _ = await self.api.list("pods", "default", "app=soak-storm")
            running = [
                p for p in items if isinstance(p, objects_pb2.Pod) and p.status.phase == "Running"
            ]
            if len(running) >= STORM_PODS:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(running)} of {STORM_PODS} storm pods Running")
            await asyncio.sleep(0.2)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._storm(), name="label storm"),
            asyncio.create_task(self._churn(), name="headless churn"),
            *(
                asyncio.create_task(self._bad_input(n), name="bad input")
                for n in range(CAMPAIGN_IN_FLIGHT)
            ),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        for task, result in zip(self._tasks, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                self.done[f"{task.get_name()} ended: {result!r}"[:120]] += 1
        self._tasks = []

    async def _storm(self) -> None:
        index = 0
        while True:
            name = f"soak-storm-{index % STORM_PODS}"
            index += 1
            try:
                pod = await self.api.get("pods", name)
                assert isinstance(pod, objects_pb2.Pod)
                labels = pod.metadata.labels
                labels["soak-storm"] = "out" if labels.get("soak-storm") == "in" else "in"
                await self.api.update(pod)
                self.done["label flips"] += 1
            except ApiError as err:
                if err.code not in RETRY:
                    raise
                self.done[f"label flip {err.code.name}"] += 1
            await asyncio.sleep(STORM_PAUSE)

    async def _churn(self) -> None:
        slices = (self.endpoints + 99) // 100
        flip = 0
        while True:
            index, n = flip % slices, (flip // slices) % 100
            flip += 1
            for gone in (n, None):
                try:
                    await self.api.apply(big_slice(index, gone))
                    self.done["headless slice writes"] += 1
                except ApiError as err:
                    if err.code not in RETRY:
                        raise
                    self.done[f"headless slice write {err.code.name}"] += 1
                await asyncio.sleep(CHURN_PAUSE)

    async def _bad_input(self, start: int) -> None:
        position = start
        while True:
            obj = self.campaign[position % len(self.campaign)]
            position += CAMPAIGN_IN_FLIGHT
            try:
                stored, _ = await self.api.apply(obj)
            except ApiError as err:
                self.done[f"bad input refused {err.code.name}"] += 1
                continue
            self.done["bad input accepted (then deleted)"] += 1
            info = kinds.info_of(stored)
            try:
                await self.api.delete(
                    info.resource,
                    stored.metadata.name,
                    stored.metadata.namespace,
                    grace_period_seconds=0 if info is kinds.PODS else None,
                )
            except ApiError as err:
                self.done[f"bad input delete {err.code.name}"] += 1
