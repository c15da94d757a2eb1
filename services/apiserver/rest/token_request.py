"""POST /api/v1/namespaces/NS/serviceaccounts/NAME/token: `kubectl create token NAME`.

The TokenRequest subresource (`logic/token_requests.py` reads it and words its errors):
the ServiceAccount must exist (404 as Kubernetes words it), the token is signed with the
apiserver's `--service-account-signing-key-file` (the cluster's sa.key) for the
account's uid, so deleting the account revokes every token it had
(`access.Access.user_of_token`). Authorization happened before (verb `create` on
`serviceaccounts/token`).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from aiohttp import web

from kubelab.core import kinds, sa_tokens
from kubelab.store import NotFoundError, StoreProtocol
from services.apiserver.logic import request_keys, token_requests
from services.apiserver.rest import convert, protobuf_body
from services.apiserver.rest.errors import ApiError, causes, method_not_allowed
from services.apiserver.rest.routing import Target


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class ServiceAccountTokens:
    def __init__(
        self,
        store: StoreProtocol,
        signing_key: Any,
        issuer: str = sa_tokens.ISSUER,
        clock: Callable[[], datetime.datetime] = _now,
    ) -> None:
        self.store = store
        self.signing_key = signing_key
        self.issuer = issuer
        self.clock = clock

    async def handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        if request.method != "POST":
            raise method_not_allowed(request.method)
        namespace, name = target.namespace, target.name
        request_keys.check_key(kinds.SERVICEACCOUNTS.resource, namespace, name)
        content_type = request.headers.get("Content-Type", "")
        body = convert.parse_json(protobuf_body.json_bytes(await request.read(), content_type))
        try:
            wanted = token_requests.asked(body, name)
        except token_requests.TokenRequestInvalid as err:
            details = {"name": name, "group": "authentication.k8s.io", "kind": "TokenRequest"}
            found = {**details, "causes": causes(err.problems)}
            raise ApiError(422, "Invalid", str(err), found) from None
        try:
            account = await self.store.get(kinds.SERVICEACCOUNTS, namespace, name)
        except NotFoundError:
            raise ApiError(
                404,
                "NotFound",
                f'serviceaccounts "{name}" not found',
                {"name": name, "kind": "serviceaccounts"},
            ) from None
        now = self.clock()
        issued = sa_tokens.issue(
            self.signing_key,
            namespace=namespace,
            name=name,
            uid=account.metadata.uid,
            audiences=wanted.audiences,
            expiration_seconds=wanted.expiration_seconds,
            now=now,
            issuer=self.issuer,
        )
        answer = token_requests.answer(body, namespace, name, issued, now)
        return web.Response(body=convert.dumps(answer), status=201, content_type="application/json")
