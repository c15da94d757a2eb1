"""`kubelab get` tables: the columns of each kind and their layout, as kubectl prints them.

Pure functions, no I/O: each kind has a `Table` (its columns after NAME, the
extra `-o wide` columns, and a function from object and "now" to cells, from
`kubelab.core.printing`), and `render` aligns rows the way kubectl's tabwriter
does (each column padded to its widest cell + 3 spaces, at least 6 wide; the
last column unpadded), so output greps and awks like kubectl's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf.message import Message

from kubelab.core.kinds import KindInfo
from kubelab.core.printing import (
    EVENT_WIDE_ORDER,
    deployment_cells,
    endpoint_slice_cells,
    event_cells,
    metadata,
    namespace_cells,
    node_cells,
    pod_cells,
    service_cells,
)
from kubelab.core.printing_access import binding_cells, role_cells, service_account_cells

_MIN_WIDTH = 6
_PADDING = 3


# ---------------------------------------------------------------- tables


@dataclass(frozen=True, slots=True)
class Table:
    columns: tuple[str, ...]  # after NAME
    wide: tuple[str, ...]  # appended with -o wide
    cells: Callable[[Any, datetime], list[str]]  # len(columns) + len(wide) cells
    # Events have no NAME column (kubectl shows OBJECT; NAME is a wide column).
    named: bool = True
    # With -o wide, the cells in this order (indexes into columns + wide), when the
    # wide columns go in between (an event's MESSAGE stays after SOURCE).
    wide_order: tuple[int, ...] = ()

    def pick(self, cells: Sequence[str], wide: bool) -> list[str]:
        if not wide:
            return list(cells[: len(self.columns)])
        return [cells[i] for i in self.wide_order] if self.wide_order else list(cells)


TABLES: dict[str, Table] = {
    "Service": Table(
        ("TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"), ("SELECTOR",), service_cells
    ),
    "Pod": Table(("READY", "STATUS", "RESTARTS", "AGE"), ("IP", "NODE"), pod_cells),
    "Deployment": Table(
        ("READY", "UP-TO-DATE", "AVAILABLE", "AGE"),
        ("CONTAINERS", "IMAGES", "SELECTOR"),
        deployment_cells,
    ),
    "EndpointSlice": Table(("ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"), (), endpoint_slice_cells),
    "Node": Table(("STATUS", "AGE", "INTERNAL-IP", "POD-CIDR"), (), node_cells),
    "Namespace": Table(("STATUS", "AGE"), (), namespace_cells),
    "Event": Table(
        ("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"),
        ("SUBOBJECT", "SOURCE", "FIRST SEEN", "COUNT", "NAME"),
        event_cells,
        named=False,
        wide_order=EVENT_WIDE_ORDER,
    ),
    "ServiceAccount": Table(("SECRETS", "AGE"), (), service_account_cells),
    "Role": Table(("CREATED AT",), (), role_cells),
    "ClusterRole": Table(("CREATED AT",), (), role_cells),
    "RoleBinding": Table(("ROLE", "AGE"), ("USERS", "GROUPS", "SERVICEACCOUNTS"), binding_cells),
    "ClusterRoleBinding": Table(
        ("ROLE", "AGE"), ("USERS", "GROUPS", "SERVICEACCOUNTS"), binding_cells
    ),
}


@dataclass(frozen=True, slots=True)
class RowFormat:
    """How `get` lays out a table: which optional columns, how names read."""

    wide: bool = False
    namespaces: bool = False  # -A: a NAMESPACE column first
    kind_prefix: str = ""  # `service/` when several kinds share the output


def header(info: KindInfo, fmt: RowFormat) -> list[str]:
    table = TABLES[info.kind]
    head = ["NAMESPACE"] if fmt.namespaces else []
    head += ["NAME"] if table.named else []
    return head + table.pick([*table.columns, *table.wide], fmt.wide)


def row(info: KindInfo, obj: Message, now: datetime, fmt: RowFormat) -> list[str]:
    table = TABLES[info.kind]
    meta = metadata(obj)
    cells = table.pick(table.cells(obj, now), fmt.wide)
    lead = [meta.namespace] if fmt.namespaces else []
    if table.named:
        lead.append(fmt.kind_prefix + meta.name)
    return [*lead, *cells]


def column_widths(rows: Sequence[Sequence[str]]) -> list[int]:
    widths: list[int] = []
    for cells in rows:
        for i, cell in enumerate(cells):
            if i == len(widths):
                widths.append(0)
            widths[i] = max(widths[i], len(cell))
    return widths


def render_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    """One line; columns padded to `widths` (the last cell is never padded). A cell
    wider than its column (a watched row) still gets the full gap after it."""
    out = []
    for i, cell in enumerate(cells):
        if i == len(cells) - 1:
            out.append(cell)
        else:
            width = max(widths[i] if i < len(widths) else 0, len(cell))
            out.append(cell.ljust(max(_MIN_WIDTH, width + _PADDING)))
    return "".join(out)


def render(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = column_widths(rows)
    return [render_row(cells, widths) for cells in rows]
