"""How a watch response runs and ends, for stored kinds and for endpoints alike.

The stream runs until `timeoutSeconds`, the client going away, or the watch cache
ending a watcher that fell behind (as Kubernetes ends a slow watcher: the client
watches again). Any other error is sent as the stream's last event, an ERROR with a
Status (410 Expired for a compacted revision), since the headers are already sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from services.apiserver.rest import convert
from services.apiserver.rest.errors import ApiError, status_body
from services.apiserver.watch_cache import FellBehindError

log = logging.getLogger(__name__)


async def run_watch(
    response: web.StreamResponse,
    stream: Awaitable[None],
    *,
    timeout_seconds: int | None,
    map_error: Callable[[Exception], ApiError | None],
    what: str,
) -> web.StreamResponse:
    """Run `stream` (which writes the events) and end the response as above."""
    try:
        async with asyncio.timeout(timeout_seconds or None):
            await stream
    except TimeoutError:
        pass
    except ConnectionError:
        return response  # the client went away
    except FellBehindError:
        pass
    except Exception as err:
        mapped = map_error(err)
        if mapped is None:
            log.exception("watch of %s failed", what)
            mapped = ApiError(500, "InternalError", "the watch failed on the server")
        line = {"type": "ERROR", "object": status_body(mapped)}
        try:
            await response.write(convert.dumps(line) + b"\n")
        except ConnectionError:
            return response
    await response.write_eof()
    return response
