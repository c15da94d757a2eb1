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

kubelab's node agents write a container's output to a file as it comes, with no
time per line: `timestamps`, `sinceSeconds` and `sinceTime` are accepted (kubectl
sends them) but cannot be honoured, and `ignored_warnings` says so in a `Warning`
header, which kubectl prints, rather than inventing times.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

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
        datetime.fromisoformat(text.replace("Z", "+00:00"))
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


def ignored_warnings(options: LogOptions) -> tuple[str, ...]:
    """What a request asks that kubelab's logs cannot do, as Warning texts."""
    found = []
    if options.timestamps:
        found.append(
            "timestamps: kubelab's node agents keep no time per log line; "
            "the lines are shown without timestamps"
        )
    if options.since_seconds is not None or options.since_time:
        found.append(
            "sinceSeconds/sinceTime: kubelab's node agents keep no time per log line; "
            "every line is shown"
        )
    return tuple(found)


def waiting_message(container: str, pod: str, reason: str) -> str:
    """The kubelet's words for a container that has no output to read yet."""
    return f'container "{container}" in pod "{pod}" is waiting to start: {reason}'


def no_previous_message(container: str, pod: str) -> str:
    return f'previous terminated container "{container}" in pod "{pod}" not found'
