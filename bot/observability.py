"""The HTTP edge's part of observability: every request gets a request id (the caller's `X-Request-Id` when it is a
sane token, else a fresh one), which is set as the trace (`models.messaging.TRACE`) while the request is handled,
so every log line of the request carries it and every outbox row it causes is stamped with it (delivery's lines
then carry it too). The id is sent back as `X-Request-Id`. One log line per request (method, route, status,
milliseconds; never the query string or the body) replaces aiohttp's access log; the request is counted and
timed for /metrics by its route (not its path: unmatched paths are one label, whatever a scanner tries)."""

from __future__ import annotations

import logging
import random
import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bot.metrics import Metrics
from models.messaging import TRACE

log = logging.getLogger("madoguchi.http")

HEADER = "X-Request-Id"
SANE = re.compile(r"[A-Za-z0-9._:-]{8,100}")  # a caller's id is kept only if it is a plain token
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})  # probes: logged at DEBUG, not once a second at INFO


def request_id(request: web.Request) -> str:
    given = request.headers.get(HEADER, "")
    # 128 random bits, as uuid4's hex, from the process's own generator: uuid4 reads os.urandom, a system call on
    # every request (the id only tells log lines apart; nothing secret rests on it)
    return given if SANE.fullmatch(given) else f"{random.getrandbits(128):032x}"


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def middleware(metrics: Metrics) -> Middleware:
    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = request_id(request)
        token = TRACE.set(rid)
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            response.headers[HEADER] = rid
            return response
        except web.HTTPException as exc:
            status = exc.status
            exc.headers[HEADER] = rid
            raise
        finally:
            seconds = time.perf_counter() - started
            route = _route(request)
            metrics.http_requests.labels(route, str(status)).inc()
            metrics.http_seconds.labels(route).observe(seconds)
            log.log(logging.DEBUG if route in QUIET_ROUTES else logging.INFO, "%s %s %s %.1fms",
                    request.method, route, status, seconds * 1000)
            TRACE.reset(token)

    return observe
