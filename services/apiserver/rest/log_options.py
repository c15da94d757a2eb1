"""`pods/<name>/log`: its query parameters and the checks made before any node is asked.

What kubectl sends (`kubectl logs [-f] [-p] [--tail N] [-c C] [--timestamps]
[--limit-bytes N] [--since 5m | --since-time T]`): container, follow, previous,
tailLines, limitBytes, sinceSeconds, sinceTime, timestamps. `parse` checks them as
Kubernetes' `ValidatePodLogOptions` does, answering a 422 Invalid on the kind
`PodLogOptions` whose causes name the parameter (`tailLines: Invalid value: -1: must
be greater than or equal to 0`); a value that is not a number is a 400.

`choose_container` is the apiserver's own check (pkg/registry/core/pod/strategy.go
`LogLocation`): no container and several in the pod is a 400 `a container name must
be specified for pod x, choose one of: [a b]`, an unknown one `container y is not
valid for pod x`.

kubelab's node agents keep the time each line was read (CRI records, as the
kubelet's runtime does), so `timestamps` is passed on and `since_ns` turns
sinceSeconds/sinceTime into the one instant the agent filters on, as the kubelet
does (`now - sinceSeconds`, or sinceTime if later). It is computed once per request,
so the two reads a `tailLines=0` follow makes see the same lines.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from kubelab.core.errors import ErrorType, FieldError
from services.apiserver.rest.errors import ApiError, bad_request, causes

_TRUE = ("true", "1")


@dataclass(frozen=True, slots=True)
class LogOptions:
    container: str = ""
    follow: bool = False
    previous: bool = False
    tail_lines: int | None = None  # None: every line; 0: none (with follow: new ones only)
    limit_bytes: int | None = None
    since_seconds: int | None = None
    since_time: str = ""
    timestamps: bool = False

    @property
    def streams(self) -> bool:
        """Whether the answer keeps streaming (the previous instance's output is finished:
        kubectl ends there too)."""
        return self.follow and not self.previous


def _number(query: Mapping[str, str], name: str) -> int | None:
    text = query.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise bad_request(f'{name}: Invalid value: "{text[:64]}": must be an integer') from None


def parse(query: Mapping[str, str], pod: str) -> LogOptions:
    """The options of a log request for `pod`; ApiError when they are not valid."""
    options = LogOptions(
        container=query.get("container", ""),
        follow=query.get("follow", "").lower() in _TRUE,
        previous=query.get("previous", "").lower() in _TRUE,
        tail_lines=_number(query, "tailLines"),
        limit_bytes=_number(query, "limitBytes"),
        since_seconds=_number(query, "sinceSeconds"),
        since_time=query.get("sinceTime", ""),
        timestamps=query.get("timestamps", "").lower() in _TRUE,
    )
    problems = _validate(options)
    if problems:
        listed = ", ".join(str(p) for p in problems)
        # Kubernetes' NewInvalid: one error as is, several in brackets.
        shown = listed if len(problems) == 1 else f"[{listed}]"
        message = f'PodLogOptions "{pod}" is invalid: {shown}'
        details = {"name": pod, "kind": "PodLogOptions", "causes": causes(problems)}
        raise ApiError(422, "Invalid", message, details)
    return options


def _validate(options: LogOptions) -> list[FieldError]:
    found: list[FieldError] = []
    invalid = ErrorType.INVALID
    if options.tail_lines is not None and options.tail_lines < 0:
        found.append(
            FieldError(
                "tailLines", invalid, "must be greater than or equal to 0", options.tail_lines
            )
        )
    if options.limit_bytes is not None and options.limit_bytes < 1:
        found.append(
            FieldError("limitBytes", invalid, "must be greater than 0", options.limit_bytes)
        )
    if options.since_seconds is not None and options.since_time:
        found.append(
            FieldError(
                "sinceSeconds",
                ErrorType.FORBIDDEN,
                "at most one of `sinceTime` or `sinceSeconds` may be specified",
            )
        )
    if options.since_seconds is not None and options.since_seconds < 1:
        found.append(
            FieldError("sinceSeconds", invalid, "must be greater than 0", options.since_seconds)
        )
    if options.since_time and not _is_rfc3339(options.since_time):
        found.append(FieldError("sinceTime", invalid, "must be RFC 3339", options.since_time))
    return found


def _is_rfc3339(text: str) -> bool:
    try:
        _parse_time(text)
    except ValueError:
        return False
    return True


def choose_container(pod: str, containers: Sequence[str], asked: str) -> str:
    """The container whose log is read, as the apiserver picks it."""
    if asked:
        if asked not in containers:
            raise bad_request(f"container {asked} is not valid for pod {pod}")
        return asked
    if len(containers) == 1:
        return containers[0]
    if not containers:
        raise bad_request(f"pod {pod} has no containers")
    raise bad_request(
        f"a container name must be specified for pod {pod}, choose one of: [{' '.join(containers)}]"
    )


def since_ns(options: LogOptions, now: datetime) -> int | None:
    """The instant (nanoseconds since the epoch) before which lines are left out; None
    for every line. `parse` has checked sinceTime and that at most one is given."""
    since: int | None = None
    if options.since_seconds is not None:
        since = _ns(now) - options.since_seconds * 1_000_000_000
    if options.since_time:
        asked = _ns(_parse_time(options.since_time))
        since = asked if since is None else max(since, asked)
    return since


def _ns(moment: datetime) -> int:
    whole = int(moment.timestamp())
    return whole * 1_000_000_000 + moment.microsecond * 1_000


def _parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def waiting_message(container: str, pod: str, reason: str) -> str:
    """The kubelet's words for a container that has no output to read yet."""
    return f'container "{container}" in pod "{pod}" is waiting to start: {reason}'


def no_previous_message(container: str, pod: str) -> str:
    return f'previous terminated container "{container}" in pod "{pod}" not found'
