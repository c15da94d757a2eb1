"""Services this node's proxy does not (fully) program, and why (issue 13).

A Service the apiserver accepted may still be one a node cannot serve: more
ports than its file budget, a port something else holds, a descriptor limit hit
while binding. That is the Service's problem, never the agent's: the proxy skips
it, keeps serving every other Service, and reports it here, where

* the log gets one line naming it (`svc=ns/name`) when its problem starts or
  changes, and one when it is programmed again: never a line per retry (a
  Service retried every 10 s once grew a node log by 258 MB in 48 minutes);
* metrics read `problems` (a gauge per Service and reason) and `failures`
  (syncs that failed, per reason) at scrape time.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass

from kubelab.core.keys import ObjectKey

log = logging.getLogger("node_agent.proxy")

FILE_BUDGET = "file_budget"  # more listeners than the node's file budget has left
OUT_OF_FILES = "out_of_files"  # EMFILE / ENFILE while binding
BIND = "bind"  # an address or port taken by something else
ERROR = "error"  # anything else: a bug, reported with its traceback once


@dataclass(frozen=True, slots=True)
class Problem:
    reason: str
    message: str


class ServiceProblems:
    def __init__(self, node_name: str) -> None:
        self.node_name = node_name
        self.problems: dict[ObjectKey, Problem] = {}
        self.failures: dict[str, int] = {}
        self._logged: dict[ObjectKey, Hashable] = {}

    def report(
        self,
        key: ObjectKey,
        reason: str,
        message: str,
        *,
        same_as: Hashable = None,
        exc_info: BaseException | None = None,
    ) -> bool:
        """Record that `key` is not (fully) programmed; logs only when this differs
        from what was last logged for it (`same_as`, by default reason and message).
        True when it logged."""
        self.problems[key] = Problem(reason, message)
        self.failures[reason] = self.failures.get(reason, 0) + 1
        signature = (reason, message if same_as is None else same_as)
        if self._logged.get(key) == signature:
            return False
        self._logged[key] = signature
        extra = {"node": self.node_name, "reason": reason}
        log.error("svc=%s/%s: not programmed: %s", *key, message, extra=extra, exc_info=exc_info)
        return True

    def resolved(self, key: ObjectKey, *, present: bool) -> None:
        """`key` is programmed (`present`) or gone: forget its problem."""
        self.problems.pop(key, None)
        if self._logged.pop(key, None) is not None and present:
            log.info("svc=%s/%s: programmed", *key, extra={"node": self.node_name})
