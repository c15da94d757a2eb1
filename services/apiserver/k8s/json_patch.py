"""RFC 6902 JSON patch (`application/json-patch+json`).

What the Python client sends for a list body (`[{"op": "add", "path":
"/metadata/labels/c", "value": "d"}]`). The operations themselves come from
`jsonpatch` (python-json-patch, the RFC 6902 implementation most Python
projects use); this module owns what it does not: the shape check of the body
(a list of objects with a known `op` and a string `path`, else `BadPatchError`,
400) and the wording of failures. Each operation is applied on its own so a
failure names the operation's index, op and path in words, never a
library exception or a dump of the document:
`json patch operation 1 (replace /spec/portz): the path does not exist`.

Nothing is changed on failure: the document is copied before the first operation.
"""

from __future__ import annotations

import jsonpatch
import jsonpointer

from services.apiserver.k8s.jsonvalue import BadPatchError, Json, PatchError, deep_copy

_OPS = {"add": ("value",), "remove": (), "replace": ("value",), "move": ("from",)}
_OPS |= {"copy": ("from",), "test": ("value",)}
# A JSON patch body is bounded by the 3 MiB request limit; a limit on operations
# keeps one request from costing a deep copy per operation ten thousand times.
MAX_OPERATIONS = 10_000


def parse_json_patch(body: Json) -> list[dict[str, Json]]:
    """The operations of a json-patch body, or `BadPatchError` saying what is wrong."""
    if not isinstance(body, list):
        raise BadPatchError("a json patch must be a JSON array of operations")
    if len(body) > MAX_OPERATIONS:
        raise BadPatchError(f"a json patch may hold at most {MAX_OPERATIONS} operations")
    ops: list[dict[str, Json]] = []
    for index, op in enumerate(body):
        where = f"json patch operation {index}"
        if not isinstance(op, dict):
            raise BadPatchError(f"{where}: must be an object")
        name = op.get("op")
        if not isinstance(name, str) or name not in _OPS:
            raise BadPatchError(f"{where}: unknown op {name!r}; known: {', '.join(_OPS)}")
        for member in ("path", *_OPS[name]):
            if member not in op:
                raise BadPatchError(f'{where} ({name}): missing "{member}"')
        for member in ("path", "from"):
            pointer = op.get(member, "")
            if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
                raise BadPatchError(
                    f'{where} ({name}): "{member}" must be a JSON pointer starting with /'
                )
        ops.append(op)
    return ops


def apply_json_patch(document: Json, body: Json) -> Json:
    """`document` with the operations in `body` applied, in order; `document` is unchanged."""
    ops = parse_json_patch(body)
    result = deep_copy(document)
    for index, op in enumerate(ops):
        try:
            result = jsonpatch.JsonPatch([op]).apply(result, in_place=True)
        except jsonpatch.JsonPatchTestFailed:
            raise _failed(index, op, "the value there is not the value tested") from None
        except jsonpatch.JsonPatchConflict as exc:
            raise _failed(index, op, _conflict_reason(op, str(exc))) from None
        except jsonpatch.InvalidJsonPatch as exc:
            raise BadPatchError(f"json patch operation {index}: {exc}") from None
        except (jsonpointer.JsonPointerException, jsonpatch.JsonPatchException) as exc:
            raise _failed(index, op, _pointer_reason(op, str(exc))) from None
        except (TypeError, KeyError, IndexError, ValueError) as exc:
            # The library's own guard rails (e.g. a path through a string); say so plainly.
            raise _failed(index, op, f"cannot be applied ({type(exc).__name__})") from None
    return result


def _failed(index: int, op: dict[str, Json], reason: str) -> PatchError:
    path = str(op.get("path", ""))
    return PatchError(f"json patch operation {index} ({op.get('op')} {path}): {reason}", path=path)


def _conflict_reason(op: dict[str, Json], text: str) -> str:
    if "own children" in text:
        return "a value cannot be moved into itself"
    if "outside of list" in text:
        return "the index is past the end of the list"
    if op.get("op") in ("move", "copy") and "non-existent" not in text:
        return f'the "from" path {op.get("from")} does not exist'
    return "the path does not exist"


def _pointer_reason(op: dict[str, Json], text: str) -> str:
    if "not a valid sequence index" in text:
        return "a list index in the path is not a number"
    if "not found" in text or "out of range" in text:
        return "a part of the path does not exist"
    return "the path does not fit the document"
