"""A route with one fixed target, for TCP and UDP: the bench's bare relay, and lab mode's
forward of the cluster DNS address to the DNS actor."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kubelab.core.endpoint_choice import Target
from kubelab.relay.tcp import Connection
from kubelab.relay.udp import Flow

log = logging.getLogger(__name__)


class StaticRoute:
    """Every connection and flow goes to `target`; a failed connect is not retried
    (there is nowhere else to go), so the client sees a reset."""

    def __init__(self, target: Target, *, connect_timeout: float = 2.0) -> None:
        self.target = target
        self.connect_timeout = connect_timeout

    def pick(self, client_ip: str, tried: Sequence[Target]) -> Target | None:
        return None if tried else self.target

    def source_ip(self, client_ip: str) -> str | None:
        return None

    def connect_failed(self, target: Target, error: BaseException) -> None:
        log.warning("relay to %s: connect failed: %r", target, error)

    def opened(self, conn: Connection) -> None:
        pass

    def closed(self, conn: Connection) -> None:
        pass

    def flow_opened(self, flow: Flow) -> None:
        pass

    def flow_closed(self, flow: Flow) -> None:
        pass
