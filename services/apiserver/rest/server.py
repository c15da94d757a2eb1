"""The apiserver's Kubernetes HTTP API: the real kubectl and client libraries, unchanged.

A second front beside gRPC (DESIGN §9, "two fronts, one registry"), served by aiohttp
on its own port (`--http-listen`, 8080 by default: the port kube-apiserver's plain-HTTP
front had, and where kubectl looks when it has no kubeconfig). Plain HTTP on
loopback, no authentication yet: the identity issue puts one step in front of both
fronts.

One catch-all route: `routing.parse` names the document or resource a path means,
`discovery` answers the former, `resources.Resources` the latter. Every error is a
Kubernetes `Status` (`errors`): the expected ones with their code and reason, a body
over Kubernetes' 3 MiB request limit a 413 (aiohttp refuses it before reading it
all), and anything unexpected a 500 naming only an error id, its traceback in the
log. Nothing answers a traceback.

A client that hangs up cancels its handler (a watch ends at once instead of at its
timeout); writes are shielded from that (`resources`). `stop` closes the listener,
ends watches and gives other requests a grace period.
"""

from __future__ import annotations

import logging
import platform
import ssl
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from importlib import metadata

from aiohttp import web
from prometheus_client import Counter, Histogram

from kubelab.credentials import Credentials
from services.apiserver.access import Access
from services.apiserver.live_views import LiveViews
from services.apiserver.logic import reviews
from services.apiserver.registry import Registry
from services.apiserver.rest import (
    authorization,
    discovery,
    endpoints_wire,
    openapi_routes,
    routing,
)
from services.apiserver.rest.convert import dumps
from services.apiserver.rest.endpoints import EndpointsResource
from services.apiserver.rest.errors import (
    ApiError,
    api_error_of,
    method_not_allowed,
    status_body,
    too_large,
)
from services.apiserver.rest.logs import PodLogs
from services.apiserver.rest.resources import Resources
from services.apiserver.rest.routing import Discovery, Target
from services.apiserver.rest.scale import DeploymentScale
from services.apiserver.rest.token_request import ServiceAccountTokens
from services.apiserver.watch_cache import WatchCache

log = logging.getLogger(__name__)

# Kubernetes' apiserver refuses request bodies past 3 MiB (its `MaxRequestBodyBytes`).
MAX_BODY_BYTES = 3 * 1024 * 1024
DEFAULT_PORT = 8080
MAX_REQUEST_LINE = 64 * 1024

REQUESTS = Counter(
    "kubelab_apiserver_http_requests_total", "Kubernetes API requests", ["method", "code"]
)
LATENCY = Histogram(
    "kubelab_apiserver_http_request_seconds",
    "Kubernetes API request latency (to the headers, for watches)",
    ["method"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _status_response(err: ApiError) -> web.Response:
    return web.Response(
        body=dumps(status_body(err)), status=err.code, content_type="application/json"
    )


def _kubelab_version() -> str:
    try:
        return metadata.version("kubelab")
    except metadata.PackageNotFoundError:
        return "0.0.0"


class RestServer:
    def __init__(
        self,
        registry: Registry,
        cache: WatchCache | None = None,
        access: Access | None = None,
        kubelet: Credentials | None = None,
        tokens: ServiceAccountTokens | None = None,
    ) -> None:
        # None: no authentication nor authorization (an apiserver started without TLS).
        self.access = access
        views = LiveViews(registry.store)
        # The process's one watch cache, shared with the gRPC front (`__main__`).
        self.resources = Resources(registry, views, cache or WatchCache(views))
        # Read-only, derived from EndpointSlices: not a kind of the registry.
        self.endpoints = EndpointsResource(registry.store, self.resources.cache)
        # Subresources with their own handlers, by (resource, subresource).
        self.subresources: dict[
            tuple[str, str], Callable[[web.Request, Target], Awaitable[web.StreamResponse]]
        ] = {
            ("pods", "log"): PodLogs(registry.store, views, kubelet).handle,
            ("deployments", "scale"): DeploymentScale(registry).handle,
        }
        if tokens is not None:  # an apiserver with the cluster's sa.key
            self.subresources[("serviceaccounts", "token")] = tokens.handle
        self.app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._errors])
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self.runner: web.AppRunner | None = None
        self.address = ""
        self._version = discovery.version_info(
            _kubelab_version(),
            f"python{sys.version_info.major}.{sys.version_info.minor}",
            f"{sys.platform}/{platform.machine().lower()}",
        )

    async def start(self, listen: str, tls: ssl.SSLContext | None = None) -> str:
        """Listen on host:port (port 0: any free one), with TLS when given; returns the
        bound host:port."""
        host, _, port = listen.rpartition(":")
        self.runner = web.AppRunner(
            self.app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=5.0,
            # Long label and field selectors fit (aiohttp's default request line is 8 KiB).
            max_line_size=MAX_REQUEST_LINE,
        )
        await self.runner.setup()
        site = web.TCPSite(
            self.runner, host or "127.0.0.1", int(port), reuse_address=True, ssl_context=tls
        )
        await site.start()
        bound = self.runner.addresses[0]
        self.address = f"{bound[0]}:{bound[1]}"
        return self.address

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except ApiError as err:
            response = _status_response(err)
        except web.HTTPRequestEntityTooLarge:
            response = _status_response(too_large(MAX_BODY_BYTES))
        except web.HTTPException as err:
            response = _status_response(ApiError(err.status, err.reason, err.text or err.reason))
        except Exception:
            error_id = uuid.uuid4().hex[:12]
            log.exception(
                "unexpected error answering %s %s (error id %s)",
                request.method,
                request.path,
                error_id,
            )
            response = _status_response(
                ApiError(
                    500,
                    "InternalError",
                    f"an error on the server (error id {error_id}) has prevented the request "
                    "from succeeding",
                )
            )
        REQUESTS.labels(request.method, str(response.status)).inc()
        LATENCY.labels(request.method).observe(time.perf_counter() - started)
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        access = self.access
        if access is not None:
            authorization.user_of(request, access)  # a refused certificate is a 401 first
        asked = reviews.review_of(request.path)
        if asked is not None:
            answer = await authorization.review(request, access, asked)
            return web.Response(body=dumps(answer), status=201, content_type="application/json")
        if openapi_routes.is_openapi(request.path):
            if access is not None:
                authorization.path(request, access)
            return openapi_routes.serve(request)
        mirrored = endpoints_wire.parse(request.rel_url.raw_path)
        if mirrored is not None:
            if access is not None:
                authorization.endpoints(request, access, mirrored)
            return await self.endpoints.handle(request, mirrored)
        try:
            found = routing.parse(request.rel_url.raw_path)
        except ApiError as err:
            if err.code == 404 and access is not None:
                authorization.unrouted(request, access)  # 403 for those without rights
            raise
        if isinstance(found, Discovery):
            if access is not None:
                authorization.path(request, access)
            if request.method != "GET":
                raise method_not_allowed(request.method)
            return self._discovery(request, found)
        if access is not None:
            authorization.resource(request, access, found)
        try:
            handler = self.subresources.get((found.info.resource, found.subresource))
            if handler is not None and found.name:
                return await handler(request, found)
            return await self.resources.handle(request, found)
        except ApiError:
            raise
        except Exception as err:
            mapped = api_error_of(err, found.info, found.name)
            if mapped is None:
                raise
            raise mapped from None

    def _discovery(self, request: web.Request, found: Discovery) -> web.Response:
        accept = discovery.parse_accept(request.headers.get("Accept", ""))
        aggregated = discovery.wants(
            accept, group="apidiscovery.k8s.io", version="v2", kind="APIGroupDiscoveryList"
        )
        if found.document == "version":
            body = self._version
        elif found.document in ("api", "apis") and aggregated:
            body = discovery.aggregated(core=found.document == "api")
            return web.Response(
                body=dumps(body),
                headers={"Content-Type": discovery.AGGREGATED_CONTENT_TYPE},
            )
        elif found.document == "api":
            body = discovery.api_versions(request.host)
        elif found.document == "apis":
            body = discovery.api_group_list()
        elif found.document == "group":
            group = discovery.api_group(found.group)
            if group is None:
                raise routing.NOT_FOUND
            body = group
        else:
            resources = discovery.resource_list(found.group_version)
            if resources is None:
                raise routing.NOT_FOUND
            body = resources
        return web.Response(body=dumps(body), content_type="application/json")


__all__ = ["DEFAULT_PORT", "MAX_BODY_BYTES", "RestServer", "Target"]
