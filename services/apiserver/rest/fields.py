"""Field selectors (`fieldSelector=metadata.name=shop,spec.nodeName!=node-1`) for the HTTP
front: the grammar and the selectable fields are the apiserver's one parser
(`services.apiserver.logic.field_selectors`, shared with the gRPC front); this module
only turns its refusals into Kubernetes' 400 Status.

Pure: no I/O.
"""

from __future__ import annotations

from kubelab.core.kinds import KindInfo
from services.apiserver.logic import field_selectors
from services.apiserver.logic.field_selectors import FieldSelector, FieldSelectorError, Term
from services.apiserver.rest.errors import bad_request

__all__ = ["FieldSelector", "Term", "parse"]


def parse(text: str, info: KindInfo) -> FieldSelector:
    """The selector `text` names, checked against what `info` can select on; a 400
    BadRequest in Kubernetes' words when it cannot be."""
    try:
        return field_selectors.parse(text, info)
    except FieldSelectorError as err:
        raise bad_request(str(err)) from None
