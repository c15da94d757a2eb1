"""Expectations (kubelab/runtime/expectations.py): the writes a reconcile made and waits to
see in its informer before planning again, as the Deployment and EndpointSlice reconcilers
use them.

Regression: a pod event that arrived while a reconcile was still writing (nothing expected
yet) removed the expectation, and the reconcile's own cleanup then raised KeyError, so the
Deployment's reconcile failed and was retried with back-off.
"""

from __future__ import annotations

from kubelab.runtime.expectations import Expectations
from kubelab.testing.fakes import FakeClock
from kubelab.v1 import objects_pb2
from services.controller.deployments import GONE, PRESENT, pod_states

DEPLOYMENT = ("shop", "web")


def expectations(clock: FakeClock | None = None) -> tuple[Expectations[str, str], list[str]]:
    met: list[str] = []
    found: Expectations[str, str] = Expectations(
        kind="deploy",
        what="pod changes",
        timeout=30.0,
        clock=clock or FakeClock(),
        on_met=met.append,
    )
    return found, met


def test_an_event_mid_write_leaves_the_expectation_to_its_reconcile() -> None:
    exp, met = expectations()
    exp.begin("web")
    exp.observe("someone-else", PRESENT)
    assert "web" in exp  # still being written: not met
    exp.expect("web", "web-1", PRESENT)  # the reconcile's next create, not seen yet
    exp.finish("web")
    assert exp.wait("web") is not None
    exp.observe("web-1", PRESENT)
    assert "web" not in exp and met == ["web"]  # met once its own write shows up


def test_an_expectation_is_met_when_every_expected_object_was_seen() -> None:
    exp, met = expectations()
    exp.begin("web")
    exp.expect("web", "web-1", PRESENT)
    exp.expect("web", "web-0", GONE)
    exp.finish("web")
    exp.observe("web-1", PRESENT)
    assert exp.pending("web") == {"web-0": frozenset({GONE})}
    exp.observe("web-0", PRESENT)  # still there: not what a delete waits for
    assert met == []
    exp.observe("web-0", GONE)
    assert "web" not in exp and met == ["web"]
    assert exp.wait("web") is None


def test_what_the_informer_already_shows_is_not_waited_for() -> None:
    exp, met = expectations()
    exp.begin("web")
    exp.expect("web", "web-1", PRESENT, seen=(PRESENT,))
    exp.finish("web")
    assert "web" not in exp and exp.wait("web") is None
    assert met == []  # the reconcile itself ran: no need to queue it again


def test_a_write_never_seen_costs_one_timeout_then_plans_anew() -> None:
    clock = FakeClock()
    exp, _ = expectations(clock)
    exp.begin("web")
    exp.expect("web", "web-1", PRESENT)
    exp.finish("web")
    assert exp.wait("web") == 30.0
    clock.advance(29.0)
    assert exp.wait("web") == 1.0
    clock.advance(1.0)
    assert exp.wait("web") is None
    assert "web" not in exp
    exp.observe("web-1", PRESENT)  # late: nothing left to tick off


def test_a_failed_write_leaves_nothing_to_wait_for() -> None:
    exp, _ = expectations()
    exp.begin("web")
    exp.finish("web")  # the write raised before anything was expected
    assert "web" not in exp


def test_a_terminating_pod_counts_as_present_and_as_gone() -> None:
    pod = objects_pb2.Pod()
    assert pod_states(pod) == (PRESENT,)
    assert pod_states(None) == (GONE,)
    pod.metadata.deletion_timestamp.seconds = 1
    assert set(pod_states(pod)) == {PRESENT, GONE}


def test_each_owner_waits_only_for_its_own_objects() -> None:
    exp, met = expectations()
    for owner, obj in (("web", "web-1"), ("api", "api-1")):
        exp.begin(owner)
        exp.expect(owner, obj, PRESENT)
        exp.finish(owner)
    exp.observe("api-1", PRESENT)
    assert met == ["api"] and "web" in exp
