"""`kubelab dns NAME [TYPE]`: ask the cluster's DNS, the way a pod would.

The server is the running cluster's (`dns` in cluster.json, see
`kubelab.home`; `$KUBELAB_DNS` or `--dns-server IP:PORT` override it). A
NAME without a trailing dot goes through the search list a pod in namespace
`-n` (default: default) gets in its resolv.conf: `<ns>.svc.<domain>`,
`svc.<domain>`, `<domain>`, then the name as given. So `shop` finds
`shop.default.svc.cluster.local`, `shop.other` finds Service shop in namespace
other (after `shop.other.default.svc...` answers NXDOMAIN, as it does for a
pod), and `_http._tcp.shop SRV` the SRV records of port http. A name that
already ends in the cluster domain, or with a dot, is asked as is. An IP
address asks its PTR record (`dig -x`).

Output is `dig +short`'s (one record's data per line) or, with `--long`,
whole records in zone-file form, additional section included. Queries go over
UDP and retry over TCP when truncated (`--tcp`: TCP only).

Exit 0 with an answer; 1 otherwise, with one line on stderr that says which:
no such name (NXDOMAIN, every name of the search list tried), the name
exists without records of that type (NODATA), a name outside the cluster
domain (REFUSED: kubelab's DNS does not forward), or no answer at all.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

import click

from kubelab import home
from kubelab.cli.common import Settings, namespace_option, pass_settings
from kubelab.cli.errors import CliError
from kubelab.core.kinds import DEFAULT_NAMESPACE

if TYPE_CHECKING:
    import dns.message

# dnspython is imported where used: every `kubelab` command loads this module.
TIMEOUT = 2.0
NOERROR, NXDOMAIN, REFUSED = 0, 3, 5


def search_names(name: str, namespace: str, domain: str) -> list[str]:
    """The absolute names a pod's resolver tries for `name`, in order."""
    domain = domain.strip(".").lower()
    if name.endswith("."):
        return [name]
    if name.lower() == domain or name.lower().endswith("." + domain):
        return [name + "."]
    search = [f"{namespace}.svc.{domain}", f"svc.{domain}", domain]
    return [f"{name}.{suffix}." for suffix in search] + [name + "."]


def question(name: str, rtype: str | None) -> tuple[str, int, bool]:
    """(name, type, absolute): an IP asks for its PTR record."""
    import dns.rdatatype
    import dns.reversename

    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return dns.reversename.from_address(str(address)).to_text(), dns.rdatatype.PTR, True
    try:
        wanted = dns.rdatatype.from_text((rtype or "A").upper())
    except dns.rdatatype.UnknownRdatatype:
        raise CliError(f'error: unknown record type "{rtype}" (try A, AAAA, SRV, PTR)') from None
    return name, wanted, False


def split_server(address: str) -> tuple[str, int]:
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit():
        raise CliError(f'error: DNS server "{address}" is not IP:PORT')
    return host.strip("[]"), int(port)


def ask(server: tuple[str, int], name: str, rtype: int, *, tcp: bool) -> dns.message.Message:
    import dns.exception
    import dns.message
    import dns.query
    import dns.rdatatype

    query = dns.message.make_query(name, dns.rdatatype.RdataType(rtype))
    host, port = server
    try:
        if tcp:
            return dns.query.tcp(query, host, port=port, timeout=TIMEOUT)
        reply, _ = dns.query.udp_with_fallback(query, host, port=port, timeout=TIMEOUT)
        return reply
    except (OSError, dns.exception.DNSException) as err:
        why = "no answer" if isinstance(err, dns.exception.Timeout) else str(err)
        raise CliError(
            f"error: cluster DNS at {host}:{port}: {why} within {TIMEOUT:.0f}s",
            hint="Is the cluster running? See: kubelab status",
        ) from None


def _print(reply: dns.message.Message, long: bool) -> None:
    if long:
        for rrset in reply.answer + reply.additional:
            click.echo(rrset.to_text())
        return
    for rrset in reply.answer:
        for rdata in rrset:
            click.echo(rdata.to_text())


@click.command("dns")
@click.argument("name")
@click.argument("rtype", metavar="[TYPE]", required=False)
@click.option(
    "--dns-server",
    metavar="IP:PORT",
    help="The DNS server (default: $KUBELAB_DNS, else the running cluster's).",
)
@click.option("--tcp", is_flag=True, help="Ask over TCP only.")
@click.option("--long", "-l", "long", is_flag=True, help="Whole records, additional section too.")
@namespace_option
@pass_settings
def dns_command(
    settings: Settings,
    name: str,
    rtype: str | None,
    dns_server: str | None,
    tcp: bool,
    long: bool,
) -> None:
    """Resolve a name through the cluster's DNS: kubelab dns shop.

    NAME may be short, as a pod would write it: `shop` (namespace from -n, else
    default), `shop.other` (namespace other), `_http._tcp.shop SRV`, or an IP for
    its PTR record. TYPE: A by default; AAAA, SRV, PTR, CNAME, TXT, SOA, ANY.
    """
    address = dns_server or home.dns_address()
    if not address:
        raise CliError(
            "error: no cluster DNS known: no running cluster records one",
            hint="Start one with: kubelab up (or pass --dns-server IP:PORT)",
        )
    server = split_server(address)
    domain = home.cluster_domain()
    qname, qtype, absolute = question(name, rtype)
    namespace = settings.namespace or DEFAULT_NAMESPACE
    names = [qname] if absolute else search_names(qname, namespace, domain)
    import dns.rdatatype

    kind = dns.rdatatype.to_text(dns.rdatatype.RdataType(qtype))
    outcomes: list[tuple[str, int]] = []
    for candidate in names:
        reply = ask(server, candidate, qtype, tcp=tcp)
        rcode = reply.rcode()
        if rcode == NOERROR and reply.answer:
            _print(reply, long)
            return
        outcomes.append((candidate, rcode))
    raise failure(outcomes, kind, domain)


def failure(outcomes: list[tuple[str, int]], kind: str, domain: str) -> CliError:
    """What to say when no name of the search list answered: (name, rcode) each."""
    nodata = [name for name, rcode in outcomes if rcode == NOERROR]
    if nodata:
        return CliError(f"error: {nodata[0]} exists but has no {kind} record (NODATA)")
    refused = [name for name, rcode in outcomes if rcode == REFUSED]
    outside = (
        f"{refused[-1]} is outside {domain}: kubelab's DNS answers only for the cluster "
        "and does not forward (REFUSED)"
        if refused
        else ""
    )
    first, rcode = outcomes[0]
    if rcode != REFUSED and refused and "." not in refused[-1].rstrip("."):
        outside = ""  # `nope.`, the last of a short name's search list: no news to anyone
    if rcode == REFUSED:
        return CliError(f"error: {outside}")
    if rcode != NXDOMAIN:
        import dns.rcode

        return CliError(f"error: {first}: {dns.rcode.to_text(dns.rcode.Rcode(rcode))}")
    tried = [name for name, rcode in outcomes[1:] if rcode == NXDOMAIN]
    hints = ([f"Also tried: {', '.join(tried)}"] if tried else []) + ([outside] if outside else [])
    return CliError(f"error: {first}: no such name (NXDOMAIN)", hint="\n".join(hints) or None)
