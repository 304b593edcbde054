"""`GET /metrics`: the process's figures in Prometheus' text format (prometheus-client).

Two kinds:
- Counters and histograms of what THIS process did, counted where it happens: HTTP requests at the edge
  (bot/observability.py), decisions by the engine's observer, deliveries and 429s in the delivery loop, tick
  durations in the ticker. Summed over the replicas in Prometheus (`sum(rate(...))`).
- Gauges of the backlog, read from the database at scrape time in one read-only unit of work through a thread
  hop (`workflow.operations.backlog`): requests by type and status, outbox depth and oldest age, nudge lag,
  broadcast progress. Every replica reports the same database, so aggregate them with `max`, not `sum`.

Each application has a registry of its own (not prometheus-client's global default one): a process holds one
application in production, but tests run several in one process, and the global registry refuses a second
metric of the same name. The process collectors (CPU, memory, file descriptors) are added to it too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from models.db import Database
from workflow.operations import Backlog, backlog
from workflow.outcomes import Outcome

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT = 5.0  # seconds the backlog query may take before the scrape answers without it
# latency buckets (seconds): a use case or an HTTP answer is milliseconds; Slack gives up on an answer at 3 s
FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TICK = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Every metric of one application, in its own registry."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.http_requests = Counter("madoguchi_http_requests", "HTTP requests answered, by route and status",
                                     ["route", "status"], registry=r)
        self.http_seconds = Histogram("madoguchi_http_request_seconds", "Time to answer an HTTP request",
                                      ["route"], buckets=FAST, registry=r)
        self.decisions = Counter("madoguchi_decisions", "Decisions (approve, reject, send back, claim, resolve, "
                                 "reassign) by outcome code; refusals such as already_decided included",
                                 ["outcome"], registry=r)
        self.decision_seconds = Histogram("madoguchi_decision_seconds", "Time of a decision's unit of work "
                                          "(read, lock, write, commit), decisions that changed something", buckets=FAST, registry=r)
        self.deliveries = Counter("madoguchi_deliveries", "Outbox rows handled by delivery, by result: sent, "
                                  "retry (a passing failure), dead (never sendable), released (given back at "
                                  "shutdown)", ["result"], registry=r)
        self.rate_limited = Counter("madoguchi_rate_limited", "429 answers received from a chat platform",
                                    ["platform"], registry=r)
        self.tick_seconds = Histogram("madoguchi_tick_seconds", "Duration of one scheduler tick (all due work)",
                                      buckets=TICK, registry=r)
        self.tick_failures = Counter("madoguchi_tick_failures", "Due-work functions that failed in a tick",
                                     ["work"], registry=r)
        self.last_tick = Gauge("madoguchi_tick_last_finished_timestamp_seconds",
                               "When this process's last tick finished (Unix time)", registry=r)
        self.database_up = Gauge("madoguchi_database_up", "1 if the backlog query of this scrape succeeded",
                                 registry=r)
        self.requests = Gauge("madoguchi_requests", "Requests in the database by type and status",
                              ["type", "status"], registry=r)
        self.outbox = Gauge("madoguchi_outbox_messages", "Outbox rows waiting (pending, sending) or dead",
                            ["state"], registry=r)
        self.outbox_oldest = Gauge("madoguchi_outbox_oldest_age_seconds",
                                   "Age of the oldest outbox row not delivered yet (0: none)", registry=r)
        self.nudge_lag = Gauge("madoguchi_nudge_lag_seconds",
                               "Now minus the due time of the oldest due reminder not sent yet (0: none)",
                               registry=r)
        self.broadcast_messages = Gauge("madoguchi_broadcast_messages", "Messages of the broadcast occurrences "
                                        "of the last day, by outbox state", ["broadcast", "occurrence", "state"],
                                        registry=r)
        self.broadcast_progress = Gauge("madoguchi_broadcast_progress_ratio", "Share of a recent broadcast "
                                        "occurrence's messages that are done (sent or dead)",
                                        ["broadcast", "occurrence"], registry=r)

    def observe_decision(self, outcome: Outcome, seconds: float) -> None:
        """The engine's observer (`Engine(observe=...)`); runs on the writer thread (the client is thread-safe)."""
        self.decisions.labels(outcome.code).inc()
        if outcome.ok:  # a refusal changed nothing: its (short) time would flatter the latency
            self.decision_seconds.observe(seconds)

    def show_backlog(self, figures: Backlog | None) -> None:
        """Set the scrape-time gauges (None: the database did not answer; the gauges are left out)."""
        for gauge in (self.requests, self.outbox, self.broadcast_messages, self.broadcast_progress):
            gauge.clear()  # a label that is gone (a finished broadcast) must not linger
        self.database_up.set(0 if figures is None else 1)
        if figures is None:
            return
        for (type_, status), n in figures.requests.items():
            self.requests.labels(type_, status).set(n)
        for state in ("pending", "sending", "dead"):
            self.outbox.labels(state).set(figures.outbox.get(state, 0))
        self.outbox_oldest.set(figures.outbox_oldest_age)
        self.nudge_lag.set(figures.nudge_lag)
        for (b, o), states in figures.broadcasts.items():
            for state, n in states.items():
                self.broadcast_messages.labels(str(b), str(o), state).set(n)
            done = states.get("sent", 0) + states.get("dead", 0)
            self.broadcast_progress.labels(str(b), str(o)).set(done / max(1, sum(states.values())))


def metrics_handler(metrics: Metrics, db: Database, clock: Callable[[], datetime]) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The `/metrics` handler: the backlog through one thread hop (never a blocking query on the event loop),
    then the registry's text. A database that fails or hangs costs only the backlog gauges (database_up 0)."""

    async def scrape(_: web.Request) -> web.Response:
        figures: Backlog | None
        try:
            figures = await asyncio.wait_for(asyncio.to_thread(backlog, db, clock()), SCRAPE_TIMEOUT)
        except Exception as exc:
            log.warning("metrics: the backlog query failed (%s)", type(exc).__name__)
            figures = None
        metrics.show_backlog(figures)
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return scrape
