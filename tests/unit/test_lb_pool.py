"""The LoadBalancer address pool: usable addresses, requests, and which address an Ensure
plans (sticky, requested, moved, re-claimed, exhausted)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelab.core.lb_pool import (
    AddressPlan,
    AddressTakenError,
    LbPool,
    PoolExhaustedError,
    plan_address,
)

POOL = LbPool("127.200.0.0/24")


@pytest.mark.parametrize(
    ("cidr", "first", "last", "size"),
    [
        pytest.param("127.200.0.0/24", "127.200.0.1", "127.200.0.254", 254, id="slash-24"),
        pytest.param("127.200.0.0/30", "127.200.0.1", "127.200.0.2", 2, id="slash-30"),
        pytest.param("127.200.0.4/31", "127.200.0.4", "127.200.0.5", 2, id="slash-31-rfc3021"),
        pytest.param("127.200.0.9/32", "127.200.0.9", "127.200.0.9", 1, id="slash-32"),
        pytest.param("127.200.0.77/30", "127.200.0.77", "127.200.0.78", 2, id="host-bits-ignored"),
    ],
)
def test_usable_addresses(cidr: str, first: str, last: str, size: int) -> None:
    pool = LbPool(cidr)
    addresses = list(pool.addresses())
    assert (addresses[0], addresses[-1], len(addresses), pool.size) == (first, last, size, size)


@pytest.mark.parametrize(
    ("ip", "message"),
    [
        pytest.param("127.200.0.7", None, id="in-pool"),
        pytest.param(
            "10.0.0.1",
            'spec.loadBalancerIP: Invalid value: "10.0.0.1": provided IP is not in the load '
            "balancer pool 127.200.0.0/24",
            id="outside",
        ),
        pytest.param("127.200.0.0", "not in the load balancer pool", id="network-address"),
        pytest.param("127.200.0.255", "not in the load balancer pool", id="broadcast"),
        pytest.param("banana", "must be a valid IPv4 address", id="not-an-ip"),
        pytest.param("::1", "must be a valid IPv4 address", id="ipv6"),
    ],
)
def test_requested_address(ip: str, message: str | None) -> None:
    problem = POOL.check_requested(ip)
    if message is None:
        assert problem is None
    else:
        assert problem is not None
        assert str(problem).startswith("spec.loadBalancerIP: ")
        assert message in str(problem)


def test_pick_is_the_lowest_free_address() -> None:
    assert POOL.pick(set()) == "127.200.0.1"
    assert POOL.pick({"127.200.0.1", "127.200.0.3"}) == "127.200.0.2"


def test_pick_from_a_full_pool() -> None:
    pool = LbPool("127.200.0.0/30")
    with pytest.raises(PoolExhaustedError, match=r"^no free address in pool 127.200.0.0/30$"):
        pool.pick({"127.200.0.1", "127.200.0.2"})


def test_used_counts_only_pool_addresses() -> None:
    assert POOL.used({"127.200.0.1", "127.201.0.1", "127.200.0.0"}) == 1


ME = "default/shop"


@pytest.mark.parametrize(
    ("current", "requested", "holders", "plan"),
    [
        pytest.param("", "", {}, AddressPlan("127.200.0.1", claim=True), id="new-lowest-free"),
        pytest.param(
            "",
            "",
            {"127.200.0.1": "default/other"},
            AddressPlan("127.200.0.2", claim=True),
            id="new-skips-taken",
        ),
        pytest.param(
            "127.200.0.9", "", {"127.200.0.9": ME}, AddressPlan("127.200.0.9"), id="sticky"
        ),
        pytest.param(
            "127.200.0.9",
            "127.200.0.9",
            {"127.200.0.9": ME},
            AddressPlan("127.200.0.9"),
            id="requested-and-held",
        ),
        pytest.param(
            "", "127.200.0.7", {}, AddressPlan("127.200.0.7", claim=True), id="new-requested"
        ),
        pytest.param(
            "127.200.0.9",
            "127.200.0.7",
            {"127.200.0.9": ME},
            AddressPlan("127.200.0.7", release="127.200.0.9", claim=True),
            id="moved-releases-the-old",
        ),
        pytest.param(
            "127.200.0.9",
            "",
            {},
            AddressPlan("127.200.0.9", claim=True),
            id="claim-gone-missing-is-reclaimed",
        ),
        pytest.param(
            "127.200.0.9",
            "",
            {"127.200.0.9": "default/thief"},
            AddressPlan("127.200.0.1", claim=True),
            id="claim-lost-picks-anew",
        ),
        pytest.param(
            "127.200.0.9",
            "127.200.0.7",
            {"127.200.0.9": "default/thief"},
            AddressPlan("127.200.0.7", claim=True),
            id="claim-lost-nothing-to-release",
        ),
    ],
)
def test_plan_address(
    current: str, requested: str, holders: dict[str, str], plan: AddressPlan
) -> None:
    got = plan_address(POOL, me=ME, current=current, requested=requested, holders=holders)
    assert got == plan


def test_requested_address_held_by_another_service() -> None:
    with pytest.raises(AddressTakenError) as caught:
        plan_address(
            POOL,
            me=ME,
            current="127.200.0.9",
            requested="127.200.0.7",
            holders={"127.200.0.9": ME, "127.200.0.7": "prod/cart"},
        )
    assert caught.value.holder == "prod/cart"
    assert str(caught.value).startswith('spec.loadBalancerIP: Invalid value: "127.200.0.7"')
    assert "prod/cart" in str(caught.value)


def test_exhausted_pool_keeps_a_held_address() -> None:
    pool = LbPool("127.200.0.0/30")
    holders = {"127.200.0.1": ME, "127.200.0.2": "default/other"}
    plan = plan_address(pool, me=ME, current="127.200.0.1", requested="", holders=holders)
    assert plan == AddressPlan("127.200.0.1")
    with pytest.raises(PoolExhaustedError):
        plan_address(pool, me="default/third", current="", requested="", holders=holders)


@given(
    taken=st.sets(st.integers(min_value=1, max_value=14)),
    current=st.one_of(st.none(), st.integers(min_value=1, max_value=14)),
)
def test_plan_never_takes_another_services_address(taken: set[int], current: int | None) -> None:
    """Whatever is held by whom, the planned address is ours or free, and in the pool when
    new; a release is always an address we held."""
    pool = LbPool("127.200.0.0/28")
    ips = [str(ipaddress.IPv4Address(f"127.200.0.{n}")) for n in sorted(taken)]
    holders = {ip: f"default/s{i}" for i, ip in enumerate(ips)}
    mine = f"127.200.0.{current}" if current is not None else ""
    if mine:
        holders[mine] = ME
    try:
        plan = plan_address(pool, me=ME, current=mine, requested="", holders=holders)
    except PoolExhaustedError:
        assert not mine and len(holders) == pool.size
        return
    assert holders.get(plan.ip, ME) == ME
    assert plan.ip in pool
    assert plan.release == ""
    assert plan.claim == (plan.ip not in holders)
