"""What a node agent accepts from a caller: pure checks of `KillPod` and `Logs` requests.

The agent answers INVALID_ARGUMENT with these field errors before it looks
anything up, so a client mistake never reaches the runtime (a signal the
kernel refuses used to come back as UNKNOWN `OSError`). The words are
Kubernetes': `PodLogOptions` validation for `tailLines`, kubectl's
`container x is not valid for pod y` for a container the pod does not have.

Signals are those `kill -l` lists on this platform (Linux: 1-31 and 34-64;
32 and 33 belong to the C library), from `signal.valid_signals()`; 0 in a
request means "not set" (proto3), which the agent reads as SIGKILL.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Sequence

from kubelab.core import errors
from kubelab.core.errors import FieldError
from kubelab.core.validation.meta import NEGATIVE, names
from kubelab.core.validation.syntax import is_dns1123_label, is_dns1123_subdomain
from kubelab.v1 import node_pb2

__all__ = [
    "SIGNALS",
    "container_problem",
    "signal_ranges",
    "validate_kill",
    "validate_logs",
]

SIGNALS: frozenset[int] = frozenset(int(s) for s in signal.valid_signals())


def signal_ranges(signals: Iterable[int]) -> str:
    """`1-31, 34-64`: the numbers as runs, for an error message."""
    runs: list[list[int]] = []
    for number in sorted(signals):
        if runs and runs[-1][1] + 1 == number:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in runs)


def _pod_key(namespace: str, name: str) -> list[FieldError]:
    found = names("namespace", namespace, is_dns1123_label) if namespace else []
    if not name:
        found.append(errors.required("name"))
    else:
        found += names("name", name, is_dns1123_subdomain)
    return found


def validate_kill(request: node_pb2.KillPodRequest) -> list[FieldError]:
    found = _pod_key(request.namespace, request.name)
    if request.signal and request.signal not in SIGNALS:
        detail = f"must be a signal number that `kill -l` lists: {signal_ranges(SIGNALS)}"
        found.append(errors.invalid("signal", request.signal, detail))
    return found


def validate_logs(request: node_pb2.LogsRequest) -> list[FieldError]:
    found = _pod_key(request.namespace, request.name)
    if request.tail_lines < 0:
        found.append(errors.invalid("tailLines", request.tail_lines, NEGATIVE))
    if request.container:
        # A container name is a DNS label; anything else (a path) is not one of any pod's.
        found += names("container", request.container, is_dns1123_label)
    return found


def container_problem(pod: str, containers: Sequence[str], container: str) -> FieldError | None:
    """None when `container` is one of the pod's; kubectl's words otherwise."""
    if container in containers:
        return None
    detail = f"container {container} is not valid for pod {pod}"
    if containers:
        detail += f" (its containers: {', '.join(containers)})"
    return errors.invalid("container", container, detail)
