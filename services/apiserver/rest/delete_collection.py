"""`DELETE` on a collection (Kubernetes' deletecollection verb).

    DELETE /api/v1/namespaces/dev/services?labelSelector=app%3Dshop
    DELETE /apis/apps/v1/namespaces/dev/deployments          (all of them)
    DELETE /api/v1/nodes?fieldSelector=metadata.name%3Dnode-3

What Kubernetes' generic registry does (`Store.DeleteCollection`): list what the
label and field selectors match, page by page at one revision, then delete each
object as a DELETE of that object would, with the request's DeleteOptions
(`delete_options`: gracePeriodSeconds, propagationPolicy, dryRun). An object gone
between the list and its delete is skipped. The answer is the list of what was
deleted (`<Kind>List` at the list's resourceVersion; a pod on a node is in it marked
with its deletionTimestamp, as its graceful delete left it): the Python client's
`delete_collection_namespaced_*` reads it as a Status, which parses.

Everything the request says is checked before anything is deleted: a bad selector
or option is a 400 naming it and nothing changes. Namespaces have no
deletecollection in Kubernetes, and a namespaced kind has it only under a
namespace (the cross-namespace path serves list and watch): both answer 405, as
`discovery` lists the verb only where it is served. Preconditions on a whole
collection would hold for one object at most; they are refused (400) rather than
half-applied.

The deletes run a few at a time (the store batches concurrent transactions) and
shielded from the client's disconnect, like every write; the first error other
than NotFound is the answer, after the others ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiohttp import web

from kubelab.core.errors import InvalidObjectError
from kubelab.core.kinds import ApiObject, KindInfo
from kubelab.core.validation import objects as validation
from kubelab.limits import LIST_CHUNK
from kubelab.store import NotFoundError
from services.apiserver.registry import Registry
from services.apiserver.rest import convert, delete_options
from services.apiserver.rest.delete_options import DeleteOptions
from services.apiserver.rest.discovery import deletes_collections
from services.apiserver.rest.errors import bad_request, method_not_allowed
from services.apiserver.rest.options import ListOptions, list_options
from services.apiserver.rest.routing import Target

# Deletes in flight at once: enough for the store to batch them, few enough that one
# large collection does not crowd out other requests.
CONCURRENT_DELETES = 16


class CollectionDeleter:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store

    async def handle(self, request: web.Request, target: Target) -> web.Response:
        info = target.info
        if not deletes_collections(info) or (info.namespaced and not target.namespace):
            raise method_not_allowed(request.method)
        # Every check before the first delete: a bad request changes nothing.
        selection = list_options(request.query, info)
        options = delete_options.parse(await request.read(), request.query)
        if options.grace_period_seconds is not None:
            found = validation.validate_grace_period(options.grace_period_seconds)
            if found:
                raise InvalidObjectError(info.kind, "", found)
        if options.has_preconditions:
            raise bad_request(
                "preconditions: Forbidden: a delete of a collection takes no preconditions"
            )
        chosen, revision = await self._select(info, target.namespace, selection)
        if options.dry_run:
            deleted = chosen
        else:
            deleted = await asyncio.shield(self._delete_all(info, chosen, options))
        items = [convert.to_json(obj) for obj in deleted]
        body = convert.list_json(info, items, str(revision))
        return web.Response(body=convert.dumps(body), content_type="application/json")

    async def _select(
        self, info: KindInfo, namespace: str, selection: ListOptions
    ) -> tuple[list[ApiObject], int]:
        """What the selectors match, every page, at the first page's revision."""
        chosen: list[ApiObject] = []
        token, revision = selection.continue_token, 0
        while True:
            page = await self.store.list_page(
                info, namespace, limit=selection.limit or LIST_CHUNK, continue_token=token
            )
            revision = revision or page.revision
            chosen += [obj for obj in page.items if selection.matches(info, obj)]
            token = page.continue_token
            if not token:
                return chosen, revision

    async def _delete_all(
        self, info: KindInfo, chosen: Sequence[ApiObject], options: DeleteOptions
    ) -> list[ApiObject]:
        gate = asyncio.Semaphore(CONCURRENT_DELETES)

        async def delete_one(obj: ApiObject) -> ApiObject | None:
            async with gate:
                try:
                    return await self.registry.delete(
                        info,
                        obj.metadata.namespace,
                        obj.metadata.name,
                        grace_period_seconds=options.grace_period_seconds,
                    )
                except NotFoundError:
                    return None  # gone since the list: nothing left to do

        results = await asyncio.gather(*(delete_one(o) for o in chosen), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [r for r in results if r is not None and not isinstance(r, BaseException)]
