"""Syntax of names, labels, ports and addresses, worded as Kubernetes words it.

Every `is_*` check takes one value and returns the list of problems with it,
empty when it is valid, in the words of `k8s.io/apimachinery/pkg/util/validation`
(`must be no more than 63 characters`, `a lowercase RFC 1123 label must ...`).
The caller wraps each problem into a `FieldError` at its own field path, so the
same check serves `metadata.name`, `spec.ports[0].name` and a selector parser.
Nothing here raises on any input string.

Label keys and values are checked by `kubelab.core.selectors`, which owns label
syntax; they are re-exported here as `is_qualified_name` / `is_label_value` so
every syntax check has one import.

Addresses use the standard `ipaddress` module, made as strict as Go's
`net.ParseIP` / `net.ParseCIDR` where Python is looser: no IPv6 zone
(`fe80::1%eth0`), no netmask prefix (`10.0.0.0/255.0.0.0`), no bare address
given as a CIDR.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TypeAlias

from kubelab.core.selectors import label_key_problems, label_value_problems

__all__ = [
    "IPAddress",
    "is_cidr",
    "is_dns1035_label",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_env_var_name",
    "is_http_header_name",
    "is_ip",
    "is_ipv4",
    "is_ipv6",
    "is_label_value",
    "is_non_special_ip",
    "is_percent",
    "is_port_name",
    "is_port_num",
    "is_qualified_name",
    "parse_int_or_string",
    "parse_ip",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
DNS1035_LABEL_MAX = 63
PORT_NAME_MAX = 15

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_ENV_VAR_NAME_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_PERCENT_FMT = "[0-9]+%"
_HTTP_HEADER_NAME_FMT = "[-A-Za-z0-9]+"

_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT)
_ENV_VAR_NAME_RE = re.compile(_ENV_VAR_NAME_FMT)
_PERCENT_RE = re.compile(_PERCENT_FMT)
_HTTP_HEADER_NAME_RE = re.compile(_HTTP_HEADER_NAME_FMT)
_PORT_NAME_CHARSET_RE = re.compile("[-a-z0-9]+")
_PORT_NAME_LETTER_RE = re.compile("[a-z]")
# How an int-or-string stores a number: canonical decimal ("0080" is a string).
INT_TEXT_RE = re.compile("0|-?[1-9][0-9]*")
_PREFIX_LEN_RE = re.compile("[0-9]{1,3}")


def _regex_error(message: str, fmt: str, *examples: str) -> str:
    # Kubernetes' RegexError, including its odd "'a',  or 'b'" double space.
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


def _max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


_DNS1123_LABEL_MSG = _regex_error(
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character",
    _DNS1123_LABEL_FMT,
    "my-name",
    "123-abc",
)
_DNS1123_SUBDOMAIN_MSG = _regex_error(
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character",
    _DNS1123_SUBDOMAIN_FMT,
    "example.com",
)
_DNS1035_LABEL_MSG = _regex_error(
    "a lowercase RFC 1035 label must consist of lower case alphanumeric characters or '-', "
    "start with an alphabetic character, and end with an alphanumeric character",
    _DNS1035_LABEL_FMT,
    "my-name",
    "abc-123",
)
_ENV_VAR_NAME_MSG = _regex_error(
    "a valid environment variable name must consist of alphabetic characters, digits, "
    "'_', '-', or '.', and must not start with a digit",
    _ENV_VAR_NAME_FMT,
    "my.env-name",
    "MY_ENV.NAME",
    "MyEnvName1",
)
_PERCENT_MSG = _regex_error(
    "a valid percent string must be a numeric string followed by an ending '%'",
    _PERCENT_FMT,
    "1%",
    "93%",
)
_HTTP_HEADER_NAME_MSG = _regex_error(
    "a valid HTTP header must consist of alphanumeric characters or '-'",
    _HTTP_HEADER_NAME_FMT,
    "X-Header-Name",
)

_IPV4_LINK_LOCAL_MULTICAST = ipaddress.IPv4Network("224.0.0.0/24")

IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
IPV4_MSG = "must be a valid IPv4 address"
IPV6_MSG = "must be a valid IPv6 address"
CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"


def is_dns1123_label(value: str) -> list[str]:
    """Container names, namespaces, hostnames: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, max 63."""
    problems = []
    if len(value) > DNS1123_LABEL_MAX:
        problems.append(_max_len_error(DNS1123_LABEL_MAX))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        if _DNS1123_SUBDOMAIN_RE.fullmatch(value):
            # A valid subdomain that is not a label can only be at fault for its dots.
            problems.append("must not contain dots")
        else:
            problems.append(_DNS1123_LABEL_MSG)
    return problems


def is_dns1123_subdomain(value: str) -> list[str]:
    """Pod, Deployment, EndpointSlice and Node names: dot-separated labels, max 253."""
    problems = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        problems.append(_max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        problems.append(_DNS1123_SUBDOMAIN_MSG)
    return problems


def is_dns1035_label(value: str) -> list[str]:
    """Service names (they become DNS labels): must start with a letter, max 63."""
    problems = []
    if len(value) > DNS1035_LABEL_MAX:
        problems.append(_max_len_error(DNS1035_LABEL_MAX))
    if not _DNS1035_LABEL_RE.fullmatch(value):
        problems.append(_DNS1035_LABEL_MSG)
    return problems


def is_qualified_name(value: str) -> list[str]:
    """Label and annotation keys: `[dns-subdomain/]name`, name part max 63."""
    return label_key_problems(value)


def is_label_value(value: str) -> list[str]:
    """Label values: empty, or the name-part syntax, max 63."""
    return label_value_problems(value)


def is_port_num(port: int) -> list[str]:
    """A port that must be set: 1-65535."""
    return [] if 1 <= port <= 65535 else [PORT_RANGE_MSG]


def is_port_name(value: str) -> list[str]:
    """IANA_SVC_NAME (RFC 6335), as container port names and named targetPorts.

    Lowercase only, although RFC 6335 is case-insensitive: Kubernetes' choice.
    """
    problems = []
    if len(value) > PORT_NAME_MAX:
        problems.append(_max_len_error(PORT_NAME_MAX))
    if not _PORT_NAME_CHARSET_RE.fullmatch(value):
        problems.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_LETTER_RE.search(value):
        problems.append("must contain at least one letter (a-z)")
    if "--" in value:
        problems.append("must not contain consecutive hyphens")
    if value.startswith("-") or value.endswith("-"):
        problems.append("must not begin or end with a hyphen")
    return problems


def is_env_var_name(value: str) -> list[str]:
    problems = []
    if not _ENV_VAR_NAME_RE.fullmatch(value):
        problems.append(_ENV_VAR_NAME_MSG)
    if value == ".":
        problems.append("must not be '.'")
    elif value == "..":
        problems.append("must not be '..'")
    elif value.startswith(".."):
        problems.append("must not start with '..'")
    return problems


def is_percent(value: str) -> list[str]:
    return [] if _PERCENT_RE.fullmatch(value) else [_PERCENT_MSG]


def is_http_header_name(value: str) -> list[str]:
    return [] if _HTTP_HEADER_NAME_RE.fullmatch(value) else [_HTTP_HEADER_NAME_MSG]


def parse_ip(value: str) -> IPAddress | None:
    """The address `value` spells, or None; zones (`%eth0`) are refused as Go does."""
    if "%" in value:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def is_ip(value: str) -> list[str]:
    return [] if parse_ip(value) is not None else [IP_MSG]


def is_ipv4(value: str) -> list[str]:
    return [] if isinstance(parse_ip(value), ipaddress.IPv4Address) else [IPV4_MSG]


def is_ipv6(value: str) -> list[str]:
    return [] if isinstance(parse_ip(value), ipaddress.IPv6Address) else [IPV6_MSG]


def is_non_special_ip(value: str) -> list[str]:
    """An address a Service or endpoint may name: Kubernetes' ValidateEndpointIP /
    ValidateNonSpecialIP, less the loopback rule (embedded mode runs pods and
    external IPs on 127.0.0.0/8). Only the syntax-valid are checked: pair it with
    `is_ip`/`is_ipv4`/`is_ipv6`, which word a malformed address."""
    ip = parse_ip(value)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # Go's net.IP reads ::ffff:a.b.c.d as IPv4.
    if ip is None:
        return []
    problems = []
    if ip.is_unspecified:
        problems.append(f"may not be unspecified ({value})")
    if ip.is_link_local:
        problems.append("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    if _is_link_local_multicast(ip):
        problems.append("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
    return problems


def _is_link_local_multicast(ip: IPAddress) -> bool:
    # Go's IP.IsLinkLocalMulticast: 224.0.0.0/24, or ff02::/16 with any flags (ffX2::).
    if isinstance(ip, ipaddress.IPv4Address):
        return ip in _IPV4_LINK_LOCAL_MULTICAST
    first, second = ip.packed[0], ip.packed[1]
    return first == 0xFF and second & 0x0F == 0x02


def is_cidr(value: str) -> list[str]:
    """`10.0.0.0/8`; host bits may be set (`10.0.0.1/8`), as Go's ParseCIDR allows."""
    address, slash, prefix = value.partition("/")
    if not slash or not _PREFIX_LEN_RE.fullmatch(prefix) or parse_ip(address) is None:
        return [CIDR_MSG]
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return [CIDR_MSG]
    return []


def parse_int_or_string(value: str) -> int | str:
    """An int-or-string field (`targetPort`, probe ports, `maxSurge`): the int it holds,
    else the string. `kubelab.core.manifests` stores YAML `8080` as `"8080"` and
    refuses the YAML string `"8080"`; `"0080"` is not how a number is stored, so it
    is the string it looks like (and no valid port name: it has no letter)."""
    if INT_TEXT_RE.fullmatch(value):
        try:
            return int(value)
        except ValueError:  # longer than Python's int-parsing digit limit
            return value
    return value
