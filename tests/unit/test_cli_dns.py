"""`kubelab dns` naming rules and messages, and how the launcher places cluster DNS."""

from __future__ import annotations

import socket
from pathlib import Path

import dns.rcode
import dns.rdatatype
import pytest

from kubelab import lab
from kubelab.cli.dns import failure, question, search_names
from kubelab.cli.errors import CliError
from kubelab.lab import ports as lab_ports

NX, OK, REFUSED = dns.rcode.NXDOMAIN, dns.rcode.NOERROR, dns.rcode.REFUSED


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(
            "shop",
            [
                "shop.default.svc.cluster.local.",
                "shop.svc.cluster.local.",
                "shop.cluster.local.",
                "shop.",
            ],
            id="short",
        ),
        pytest.param(
            "shop.other",
            [
                "shop.other.default.svc.cluster.local.",
                "shop.other.svc.cluster.local.",
                "shop.other.cluster.local.",
                "shop.other.",
            ],
            id="with-namespace",
        ),
        pytest.param(
            "shop.default.svc.cluster.local", ["shop.default.svc.cluster.local."], id="full"
        ),
        pytest.param("example.com.", ["example.com."], id="absolute"),
    ],
)
def test_search_names_follow_a_pods_resolv_conf(name: str, expected: list[str]) -> None:
    assert search_names(name, "default", "cluster.local") == expected


def test_an_ip_asks_for_its_ptr() -> None:
    assert question("127.96.0.20", None) == (
        "20.0.96.127.in-addr.arpa.",
        dns.rdatatype.PTR,
        True,
    )
    assert question("shop", "srv") == ("shop", dns.rdatatype.SRV, False)
    with pytest.raises(CliError, match='unknown record type "BOGUS"'):
        question("shop", "BOGUS")


def test_failure_messages() -> None:
    nx = failure(
        [("a.default.svc.cluster.local.", NX), ("a.svc.cluster.local.", NX), ("a.", REFUSED)],
        "A",
        "cluster.local",
    )
    assert nx.message == "error: a.default.svc.cluster.local.: no such name (NXDOMAIN)"
    assert nx.hint == "Also tried: a.svc.cluster.local."

    external = failure(
        [("example.com.default.svc.cluster.local.", NX), ("example.com.", REFUSED)],
        "A",
        "cluster.local",
    )
    assert "example.com. is outside cluster.local" in (external.hint or "")
    assert "does not forward (REFUSED)" in (external.hint or "")

    refused = failure([("example.com.", REFUSED)], "A", "cluster.local")
    assert refused.message.startswith("error: example.com. is outside cluster.local")

    nodata = failure([("shop.default.svc.cluster.local.", OK)], "AAAA", "cluster.local")
    assert nodata.message == (
        "error: shop.default.svc.cluster.local. exists but has no AAAA record (NODATA)"
    )


# ---------------------------------------------------------------- the launcher


def test_dns_listens_on_the_service_cidrs_tenth_address(tmp_path: Path) -> None:
    config = lab.LabConfig(home=tmp_path, service_cidr="127.97.0.0/16")
    layout = lab.Layout(
        config,
        {"etcd": 2379, "dns": 5353, "dns-health": 8181},
        lab.port_hosts(config, [lab.DNS]),
    )
    assert lab.DNS.location(layout) == "127.97.0.10:5353"
    command = lab.DNS.command(layout)
    assert command[command.index("--listen") + 1] == "127.97.0.10:5353"
    assert command[command.index("--fallback-port") + 1] == "0"
    assert command[command.index("--health") + 1] == "127.0.0.1:8181"
    assert lab.DNS in lab.cluster_stages(config)[2]


def test_a_service_cidr_off_loopback_is_refused(tmp_path: Path) -> None:
    with pytest.raises(lab.LabError, match=r"10\.96\.0\.10\), which must be on loopback"):
        lab.check_config(lab.LabConfig(home=tmp_path, service_cidr="10.96.0.0/16"))


def free_udp_and_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_port_53_refused_for_privilege_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fallback = free_udp_and_tcp_port()
    wish = lab.PortSpec("dns", 53, "--dns-port", udp=True, fallback=fallback)
    spec = lab.ProcessSpec(
        name="dns",
        title="dns",
        ports=(wish,),
        command=lambda _: [],
        ready=lambda _: True,
        address="dns",
    )
    real = lab_ports._bind_error

    def unprivileged(host: str, port: int, udp: bool = False) -> OSError | None:
        if 0 < port < 1024:
            return PermissionError(13, "Permission denied")
        return real(host, port, udp)

    monkeypatch.setattr(lab_ports, "_bind_error", unprivileged)
    notes: list[str] = []
    ports = lab.resolve_ports(lab.LabConfig(home=tmp_path), [spec], notes.append)
    assert ports == {"dns": fallback}
    assert notes == [
        f"port 53 needs root or CAP_NET_BIND_SERVICE; dns will use 127.0.0.1:{fallback} "
        "instead (--dns-port to choose)"
    ]
    asked = lab.LabConfig(home=tmp_path, ports={"dns": 53})
    with pytest.raises(lab.LabError, match=r"127\.0\.0\.1:53 \(--dns-port\) needs root"):
        lab.resolve_ports(asked, [spec], notes.append)


def udp_socket_with_a_free_tcp_twin() -> socket.socket:
    """A bound UDP socket whose port is free for TCP: any other process on the machine
    may hold a random TCP port."""
    for _ in range(100):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        if lab.port_free("127.0.0.1", sock.getsockname()[1]):
            return sock
        sock.close()
    raise AssertionError("no UDP port with a free TCP twin in 100 tries")


def test_a_udp_port_must_be_free_for_udp_too(tmp_path: Path) -> None:
    with udp_socket_with_a_free_tcp_twin() as busy:
        port = busy.getsockname()[1]
        assert lab.port_free("127.0.0.1", port)
        assert not lab.port_free("127.0.0.1", port, udp=True)
        taken = lab.LabConfig(home=tmp_path, ports={"dns": port})
        wish = lab.PortSpec("dns", 53, "--dns-port", udp=True)
        spec = lab.ProcessSpec("dns", "dns", (wish,), lambda _: [], lambda _: True, "dns")
        with pytest.raises(lab.LabError, match="already in use"):
            lab.resolve_ports(taken, [spec], lambda _: None)
