"""`/openapi/v3` and `/openapi/v3/<group-version>`, served as kube-openapi serves them.

kubectl reads the index, then each document at the `serverRelativeURL` the index
gives (`/openapi/v3/api/v1?hash=<hash>`): `apply` to learn that the server validates
fields (`fieldValidation` on the PATCH operation: it then sends
`fieldValidation=Strict` instead of validating against OpenAPI v2), `explain` for the
schema. The documents are pure functions of kubelab's schema
(`services.apiserver.k8s.openapi`), built once per process.

Caching as kube-openapi's handler3: every answer carries an `Etag` (the document's
hash, quoted) and honours `If-None-Match` with a 304; a document asked for by its
current hash is `Cache-Control: public, immutable` with an `Expires` a year out (the
URL changes when the document does), one asked for by a stale hash is a 301 to the
current URL, and one without a hash is served uncached. Only JSON is offered: an
Accept that wants nothing but the protobuf form is a 406.

Pure but for the aiohttp request/response objects.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from aiohttp import web

from services.apiserver.k8s import openapi
from services.apiserver.rest.convert import dumps
from services.apiserver.rest.errors import ApiError, method_not_allowed
from services.apiserver.rest.routing import NOT_FOUND

PREFIX = "/openapi/v3"
JSON = "application/json"
# Documents never change while the process runs; clients may cache them by time too.
_STARTED = datetime.now(UTC).replace(microsecond=0)


def is_openapi(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def _accepts_json(accept: str) -> bool:
    if not accept.strip():
        return True
    for clause in accept.split(","):
        media = clause.split(";", 1)[0].strip().lower()
        if media in (JSON, "application/*", "*/*"):
            return True
    return False


def _not_modified(request: web.Request, etag: str) -> bool:
    wanted = request.headers.get("If-None-Match", "")
    return any(tag.strip() in (etag, "*") for tag in wanted.split(",") if tag.strip())


def _index_bytes() -> bytes:
    return dumps(openapi.openapi_index())


def serve(request: web.Request) -> web.Response:
    """The answer for a GET under /openapi/v3 (the caller checked `is_openapi`)."""
    if request.method not in ("GET", "HEAD"):
        raise method_not_allowed(request.method)
    if not _accepts_json(request.headers.get("Accept", "")):
        raise ApiError(406, "NotAcceptable", "only application/json is served for OpenAPI v3")
    gv = request.path[len(PREFIX) :].strip("/")
    headers = {"Content-Type": JSON, "Last-Modified": format_datetime(_STARTED, usegmt=True)}
    if not gv:
        body = _index_bytes()
        etag = '"' + hashlib.sha512(body).hexdigest()[:32].upper() + '"'
    else:
        document = openapi.document_bytes(gv)
        if document is None:
            raise NOT_FOUND
        body = document
        current = openapi.document_hash(gv)
        etag = f'"{current}"'
        asked = request.query.get("hash", "")
        if asked and asked != current:
            # Returned, not raised: the error middleware would turn it into a Status.
            return web.Response(status=301, headers={"Location": f"{PREFIX}/{gv}?hash={current}"})
        if asked:
            headers["Vary"] = "Accept"
            headers["Cache-Control"] = "public, immutable"
            expires = datetime.now(UTC) + timedelta(days=365)
            headers["Expires"] = format_datetime(expires, usegmt=True)
    headers["Etag"] = etag
    if _not_modified(request, etag):
        del headers["Content-Type"]
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers=headers)
