"""The Deployment reconciler's expectations (services/controller/reconcilers.py): the pod
names a reconcile wrote and waits to see in its informer before planning again.

Regression: a pod event that arrived while a reconcile was still writing (its sets of
expected names empty so far) removed the expectation, and the reconcile's own cleanup
then raised KeyError, so the Deployment's reconcile failed and was retried with back-off.
No etcd here: nothing is started, only the bookkeeping is exercised.
"""

from __future__ import annotations

from kubelab.store import Fence, Store
from kubelab.v1 import objects_pb2
from services.controller.reconcilers import Controllers

DEPLOYMENT = ("shop", "web")


def controllers() -> Controllers:
    return Controllers(Store("127.0.0.1:9"), Fence(b"lease", 1), node_grace=40.0)


def pod(name: str) -> objects_pb2.Pod:
    found = objects_pb2.Pod()
    found.metadata.namespace, found.metadata.name = "shop", name
    return found


def test_a_pod_event_mid_write_leaves_the_expectation_to_its_reconcile() -> None:
    c = controllers()
    adds: set[str] = set()
    c.expectations[DEPLOYMENT] = (adds, set(), 1e12)
    c.writing.add(DEPLOYMENT)
    c._observe(("shop", "someone-else"), pod("someone-else"))
    assert DEPLOYMENT in c.expectations  # still being filled: not met
    adds.add("web-1")  # the reconcile's next create, not seen yet
    c.writing.discard(DEPLOYMENT)
    c._observe(("shop", "web-1"), pod("web-1"))
    assert DEPLOYMENT not in c.expectations  # met once its own write shows up


def test_an_expectation_is_met_when_every_expected_pod_was_seen() -> None:
    c = controllers()
    c.expectations[DEPLOYMENT] = ({"web-1"}, {"web-0"}, 1e12)
    c._observe(("shop", "web-1"), pod("web-1"))
    assert DEPLOYMENT in c.expectations  # web-0's deletion not seen yet
    c._observe(("shop", "web-0"), None)
    assert DEPLOYMENT not in c.expectations
    c._observe(("other", "web-0"), None)  # another namespace: nothing to tick off
