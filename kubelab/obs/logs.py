"""Structured logs that name the object.

`setup_logging(actor)` configures the root logger once per process: JSON lines
when stderr is not a terminal (containers, log files) or KUBELAB_LOG_FORMAT=json,
readable text otherwise. Every record carries the actor, and callers pass the
object as `extra=kobj("default/shop", kind="svc")`, rendered `svc=default/shop`
(klog's KObj).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def kobj(name: str, *, kind: str = "obj", **fields: Any) -> dict[str, Any]:
    """Extra fields naming an object for a log call: `log.info("...", extra=kobj(...))`."""
    return {kind: name, **fields}


class _Formatter(logging.Formatter):
    def __init__(self, actor: str, as_json: bool) -> None:
        super().__init__()
        self.actor = actor
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if self.as_json:
            doc: dict[str, Any] = {
                "ts": round(record.created, 6),
                "level": record.levelname.lower(),
                "actor": self.actor,
                "logger": record.name,
                "msg": record.getMessage(),
                **fields,
            }
            if record.exc_info:
                doc["exc"] = self.formatException(record.exc_info)
            return json.dumps(doc, default=str)
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        line = f"{stamp} {record.levelname[0]} {self.actor} {record.getMessage()}"
        if extra:
            line += f" {extra}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(actor: str, level: str | None = None) -> None:
    fmt = os.environ.get("KUBELAB_LOG_FORMAT", "")
    as_json = fmt == "json" or (fmt != "text" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(actor, as_json))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("KUBELAB_LOG_LEVEL", "INFO")).upper())
