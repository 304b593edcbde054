"""The delivery loop for Slack: outbox rows out to Slack's Web API, with Slack's rules on pace and errors.

- Approver cards and FYIs are DMs (conversations.open, then chat.postMessage); where they landed (channel + ts)
  is recorded on the row, so later changes update the same card (chat.update) instead of posting new ones.
- The requester has one status message (their first `submitted` message); later news about the request
  updates it in place. Each such change also refreshes every approver card of the request that was posted,
  so every copy of the card shows the outcome (the engine enqueues `card_update` only for cards it closed,
  not for the card of the person who decided).
- Errors: 429 waits for Retry-After; 5xx, connection errors and unknown errors are retried with capped
  exponential backoff and jitter, up to `max_attempts`; permanent errors (the person or channel is gone, the
  token is bad) mark the row dead with the error, for an admin to see.
- Pace: at most one message per channel per `pace` seconds (Slack allows about one a second), and a
  workspace-wide pace shared by every send of this loop (`rate` messages a second, `WorkspacePace`): Slack's
  limits on posting are per workspace too, and a batch larger than the limit would otherwise overshoot it, get
  429s, and wait a whole Retry-After per refused row. A 429 on a message pauses the whole workspace pace for its
  Retry-After (the limit is the workspace's, not the row's), and the refused row waits as before.
- Concurrency: the rows of a claimed batch are grouped by request; groups are delivered side by side, the rows of
  one request one after the other in id order (a request's earlier news goes out before its later news). The
  pace is kept per channel across groups (each message reserves its channel's next slot).
- Only what changed is sent again: the process remembers a digest of what it last showed in each message
  (channel + ts); a copy of a card whose content is the same is not updated again. (After a restart nothing is
  remembered, so every copy is updated once: more calls, never a stale card.) The DM channel of each person
  (conversations.open) is remembered too.

- Several workspaces (OAuth installs, `workspaces`): each row goes with the bot token of the recipient's workspace
  (the team of their Slack identity), each workspace has its own pace, and each message ref records its team, so
  later updates use that workspace's token. A workspace without an installation: the row is dead, saying so.

The database is reached through thread hops (it is synchronous); writes (claims, results) go to the database's
writer (`Database.writer`: group-committed with the clicks on SQLite); Slack calls stay on the loop.

Shutdown (`stop`, then `release_claims`): no batch is claimed any more and no call starts; the calls under way are
answered and recorded; the rows claimed but not begun are given back (`workflow.delivery.release`: pending, due now,
the attempt not counted), so another replica sends them at once instead of after the lease.

Each row is delivered under the trace of the request that wrote it (`models.messaging.TRACE`, from its payload), so
its log lines carry that request's id; results are counted for /metrics (`bot.metrics.Metrics`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.engine import Connection

from bot.delivery_records import Records
from bot.metrics import Metrics
from bot.people_first import PeopleFirst
from bot.slack.blockkit import render_message
from bot.slack.oauth import TOKEN_GONE, WorkspaceClients
from bot.teams.adaptive import render_message as render_card
from bot.teams.refs import PLATFORM as TEAMS
from bot.teams.refs import CardSender, TeamsError, is_teams_ref
from bot.writer import on_writer
from config.policy import Policy
from handlers import notifications
from handlers.views import Message
from models.db import Database
from models.messaging import TRACE, TRACE_KEY, OutboxMessage
from workflow import broadcasts, delivery
from workflow.queries import RequestDetails, current_details
from workflow.queue_channels import registered_address

log = logging.getLogger(__name__)

PLATFORM = "slack"
JSON = dict[str, Any]
NO_IDENTITY = "not reachable on Slack (no identity)"
NOT_INSTALLED = "not reachable on Teams (app not installed)"
NO_SLACK = "not reachable: Slack is not configured (SLACK_BOT_TOKEN, or SLACK_CLIENT_ID for OAuth installs)"
NOT_INSTALLED_IN = "not reachable: madoguchi is not installed in Slack workspace {team} (install it: /slack/install)"
NO_TEAMS = "not reachable: Teams is not configured"
GONE = "nothing to send: the request or the recipient is gone"
# Slack errors that no retry can fix: the person, the channel or our token is gone.
PERMANENT = frozenset({"user_not_found", "account_inactive", "channel_not_found", "not_in_channel",
                       "invalid_auth", "not_authed", "token_revoked", "is_archived", "user_disabled",
                       "cannot_dm_bot", "missing_scope", "message_not_found", "cant_update_message"})


# Slack's limits (docs.slack.dev/apis/web-api/rate-limits, looked up 2026-11): chat.postMessage is a "special
# tier" method: about one message per second per channel, short bursts allowed, "while also maintaining a
# workspace-wide limit" whose figure Slack does not publish; other methods have tiers per method per workspace
# per app (Tier 3: 50+ a minute, e.g. chat.update and conversations.open; Tier 4: 100+). Vendors who send
# company-wide announcements through Slack report about 525 posts a minute per workspace (Moveworks). So the
# default is 8 messages a second (480 a minute) for posts and updates together; an operator who knows the
# workspace's limit sets `rate` to it. Not paced here: conversations.open (one per new DM; its 429s are handled
# as before, by retrying that row) and chat.update's own Tier 3 bucket (updates are few next to posts).
DEFAULT_RATE = 8.0
# The token bucket aims a little under `rate` on average (arrivals at Slack jitter by milliseconds); the window
# below is what guarantees the limit.
HEADROOM = 0.98
# A quiet spell (e.g. while the next batch is claimed and rendered) may be made up with a burst of up to 1/20
# second's worth; the sliding-second window below still bounds every second, bursts included.
BURST = 0.05
# Under a workspace pace, the next batch is claimed once fewer than this many seconds' worth of the current one are
# left to send (see `SlackDelivery.run_once`).
LOOKAHEAD = 0.5
# Without a workspace pace, batches under way at once (see `SlackDelivery.run_once`). Rows wait for the writer
# (their plans and results share its rounds and fsyncs) and for Slack; the more wait side by side, the fewer
# rounds: in the Slack latency bench 200 decisions' cards went out in 1.0 s one batch at a time, 0.7-1.0 s with 3
# under way, 0.65-0.85 s with 6. Each claimed row keeps its lease (workflow.delivery.LEASE, 2 minutes) meanwhile.
IN_FLIGHT = 6
# The sliding second Slack counts over.
WINDOW = 1.0
# Seconds a row waits at most for the news claimed with it or before it (`SlackDelivery._behind_urgent`): that wait
# only orders the sends, and a wait without end, if a bug ever made the news wait in turn for the row, would stop
# the delivery for good (as it once did: see `SlackDelivery._started`). Slack answers in well under a second.
URGENT_WAIT = 10.0


def _burst(rate: float) -> int:
    return max(1, int(rate * BURST))


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Plan:
    """Everything one row needs from the database, read in one thread hop before any chat call. Messages are
    neutral (with their reader's language) until sent: each copy is rendered for the platform it is on."""

    user: str | None = None  # the Slack user to DM, or the channel of a queue's shared card
    message: tuple[Message, str] | None = None
    channel: bool = False  # `user` is a channel: post there, no DM to open
    target: JSON | None = None  # the message to update instead of posting
    # other copies (approver cards, digests) to bring up to date, each on its own platform
    refresh: list[tuple[JSON, Message, str]] = field(default_factory=list)
    platform: str = PLATFORM  # where the recipient is reached: slack, or teams
    team: str | None = None  # Slack: the recipient's workspace (whose bot token sends, with OAuth installs)
    address: JSON | None = None  # Teams: the conversation reference of the person's chat with the bot
    covered: bool = False  # nothing to send: the queue's shared channel card reaches this person (or Slack is off)


class _Dead(Exception):
    """The row cannot be delivered, ever."""


class _Again(Exception):
    """The row failed for a reason that is already put right: try it again soon."""


class _Left:
    """The rows of a claimed batch not done yet; `down_to(n)` waits until at most n are (or `enough()` says so)."""

    __slots__ = ("count", "_changed")

    def __init__(self, count: int) -> None:
        self.count = count
        self._changed = asyncio.Event()

    def one_done(self) -> None:
        self.count -= 1
        self._changed.set()

    async def down_to(self, n: float, enough: Callable[[], bool]) -> None:
        while self.count > n and not enough():
            self._changed.clear()
            await self._changed.wait()


class _Stopped(Exception):
    """The process is shutting down: the call was not made (the row is given back, see `release_claims`)."""


class WorkspacePace:
    """The workspace-wide pace, on the event loop, shared by all the concurrent sends of one delivery loop.

    Window (the guarantee): Slack counts the messages that ARRIVE in any sliding second. A message arrives at some
    moment between the start of our call and its answer, and a late or early arrival is what made a pace counted
    by send times overshoot (a busy event loop sends late, the network delivers several at once). So a send
    (`take`) counts every earlier message whose call is still under way or was answered less than `WINDOW` ago,
    and goes only while those are fewer than `rate`; `done` records the answer. Then no sliding second at Slack
    can hold more than `rate` of ours, whatever the latency: for the last-sent message of any such second, every
    other message in it was answered after that second began, so it was counted when the last one went.

    Slots: a token bucket (GCRA: one "theoretical arrival time", no timer task) spreads sends at `rate * HEADROOM`
    a second on average, with a burst of `rate * BURST` (at least 1) after a quiet spell, so the window is not
    filled in one rush and then starved. Each sender takes the next slot with no await in between (concurrent
    senders get slots of their own), then sleeps until it.

    `hold` (after a 429) pauses everyone: senders asleep on a slot from before the pause take a fresh one after
    it, and the bucket starts empty again."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._tat = -float("inf")  # when the bucket is next empty: a slot is free once now >= _tat - tolerance
        self._held_until = -float("inf")
        self._holds = 0  # bumped by every hold: a sender asleep across one takes a new slot
        self._flying = 0  # calls under way
        self._answered: deque[float] = deque()  # when each call of the last WINDOW was answered, in order
        self._changed = asyncio.Event()  # a call was answered: a sender waiting for room looks again

    def slot(self, rate: float) -> float:
        """Reserve the next slot for `rate` (messages a second): the moment to send at."""
        now = self.clock()
        interval = 1.0 / (rate * HEADROOM)
        tolerance = (_burst(rate) - 1) * interval  # the burst a full bucket allows
        at = max(now, self._held_until, self._tat - tolerance)
        self._tat = max(self._tat, at) + interval
        return at

    async def take(self, rate: float) -> None:
        """Wait for a slot of the token bucket (and out any hold); `rate` 0 or less: no workspace pace (tests)."""
        if rate <= 0:
            return
        holds, at = self._holds, self.slot(rate)
        while True:
            if holds != self._holds:  # a 429 while we slept: a fresh slot, after the pause
                holds, at = self._holds, self.slot(rate)
            wait = max(at, self._held_until) - self.clock()
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    async def enter(self, rate: float) -> bool:
        """Wait for room in the window, right before the call (no await may come between this and the call);
        True: the caller must call `done` once its call has been answered or has failed. `rate` 0 or less: no
        workspace pace, False."""
        if rate <= 0:
            return False
        limit = max(1, int(rate))
        while True:
            now = self.clock()
            while self._answered and now - self._answered[0] >= WINDOW:
                self._answered.popleft()
            if self._held_until > now:  # a 429 meanwhile
                await asyncio.sleep(self._held_until - now)
            elif self._flying + len(self._answered) < limit:
                self._flying += 1
                return True
            elif self._answered:  # room comes when the oldest answer leaves the window, or a call is answered
                await self._wait_changed(self._answered[0] + WINDOW - now)
            else:  # the window is all calls under way: room comes with an answer
                await self._wait_changed(WINDOW)

    def done(self) -> None:
        """A call that `take` let through has been answered (or has failed): it counts for one more WINDOW."""
        self._flying = max(0, self._flying - 1)
        self._answered.append(self.clock())
        self._changed.set()

    async def _wait_changed(self, timeout: float) -> None:
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), max(timeout, 0.0005))
        except TimeoutError:
            pass

    def hold(self, seconds: float, rate: float) -> None:
        """Slack refused a message (429): nobody sends for `seconds`, then the pace starts again, unhurried."""
        until = self.clock() + seconds
        if rate <= 0 or until <= self._held_until:
            return
        self._held_until = until
        self._tat = until + (_burst(rate) - 1) / (rate * HEADROOM)  # no burst right after it
        self._holds += 1


RECENT = 256  # requests whose details delivery keeps (the decisions of a burst), the least recently used dropped
SHOWN = 20_000  # posted messages whose content delivery remembers (to skip an update that changes nothing)

K = TypeVar("K")
V = TypeVar("V")


class _Lately(OrderedDict[K, V]):
    """A memory of what was used lately, at most `size` entries, the least recently used dropped first: delivery
    runs for months, and a memory that only grows is a leak. Used from the writer's threads too (a pool on
    PostgreSQL): one lock.

    - The details of the requests delivery read lately (`_recent`): a decision's rows (the requester's news, the
      next approvers' cards) use one read, as long as the request's version is unchanged (`notifications.Reads`
      checks it, one statement). Kept by the delivery, not by a claim or a group of rows: under load the next batch
      is claimed while a request's first row waits for Slack, and the news a person looks at is claimed before the
      new cards of the same decision (`workflow.delivery.AT_ONCE_KINDS`), so a request's rows come in several groups.
    - What each posted message shows (`_shown`): a copy that already shows it is not updated again. A message
      forgotten is updated once more than needed, which changes nothing for its reader."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size
        self._lock = threading.RLock()

    def get(self, key: K, default: Any = None) -> Any:
        with self._lock:
            if key not in self:
                return default
            self.move_to_end(key)
            return super().__getitem__(key)

    def __setitem__(self, key: K, value: V) -> None:
        with self._lock:
            super().__setitem__(key, value)
            self.move_to_end(key)
            while len(self) > self._size:
                self.popitem(last=False)


class SlackDelivery:
    """Sends due outbox rows to Slack. `pace`: seconds between two messages to one channel (tests pass 0).
    `rate`: messages a second to the whole workspace (see DEFAULT_RATE); None: DEFAULT_RATE while `pace` is
    above 0, no workspace pace when `pace` is 0 (tests, which set `pace = 0`); 0: no workspace pace."""

    def __init__(self, db: Database, policy: Policy, client: AsyncWebClient | None, *, pace: float = 1.0,
                 rate: float | None = None, batch: int = 20, max_attempts: int = 5, backoff: float = 2.0,
                 max_backoff: float = 300.0, clock: Callable[[], datetime] = _utcnow,
                 lease: timedelta = delivery.LEASE, teams: CardSender | None = None,
                 workspaces: WorkspaceClients | None = None, metrics: Metrics | None = None,
                 people_first: PeopleFirst | None = None) -> None:
        self.db, self.policy, self.client = db, policy, client
        # claims and sends wait for their turn behind the people's requests under way (bot/people_first.py)
        self.people_first = people_first
        # OAuth installs (several workspaces): each message goes with the bot token of its workspace, and each
        # workspace has its own pace; None: the one `client` (SLACK_BOT_TOKEN) sends everything
        self.workspaces = workspaces
        self._paces: dict[str | None, WorkspacePace] = {}
        self.metrics = metrics or Metrics()
        self._claims: dict[int, datetime] = {}  # rows claimed and not recorded yet -> the end of their lease
        self._stopping = False
        self.teams = teams  # None: Teams is not configured (its recipients' rows are dead, with the reason)
        self.teams_pace = WorkspacePace()  # the Teams bot's own pace: its limits are not Slack's
        self.lease = lease  # how long a claimed row is ours (workflow.delivery.claim_due)
        self.pace, self.rate, self.batch, self.max_attempts = pace, rate, batch, max_attempts
        self.workspace_pace = WorkspacePace()
        self.backoff, self.max_backoff, self.clock = backoff, max_backoff, clock
        self._last_sent: dict[str, float] = {}  # channel -> monotonic time of our last message there
        # (channel, ts) -> digest of what we last showed there
        self._shown: _Lately[tuple[str, str], str] = _Lately(SHOWN)
        self._recent: _Lately[int, RequestDetails] = _Lately(RECENT)
        self.records = Records(db, self._write)  # each row's result, several to a transaction
        # (workspace, Slack user) -> conversations.open of their DM channel
        self._dm: dict[tuple[str | None, str], asyncio.Future[Any]] = {}
        self._due = asyncio.Event()  # set by `wake`: new rows may be due now
        # the news a person is looking at (the outbox's AT_ONCE rows) under way, by the number of the batch that
        # claimed it: the other rows of that batch and the earlier ones go after it (`_behind_urgent`)
        self._batches = 0
        self._urgent: list[tuple[int, asyncio.Future[None]]] = []
        self.urgent_wait = URGENT_WAIT

    def wake(self) -> None:
        """New outbox rows may be due (e.g. a conversation call just committed): the idle loop looks at once.
        Called on the loop (the edges, and the tick once its worker thread is done)."""
        self._due.set()

    def stop(self) -> None:
        """Shutting down: claim nothing more, start no call; the calls under way finish (see the docstring)."""
        self._stopping = True
        self._due.set()

    async def release_claims(self) -> int:
        """Give back every row this loop claimed and did not record (after `stop`, once the loop is over)."""
        claims, self._claims = self._claims, {}
        if not claims:
            return 0
        released = int(await self._write(self._release, claims, self.clock()))
        self.metrics.deliveries.labels("released").inc(released)
        log.info("shutdown: released %d claimed outbox rows for other replicas", released)
        return released

    async def run_once(self, now: datetime | None = None) -> int:
        """Deliver what is due at `now` (one batch, or more while they come back full); returns how many rows
        were attempted.

        A full batch is followed by the next one without a pause, until a batch comes back short: the next batch
        is claimed and rendered while rows of the last ones are still under way. Under a workspace pace, once
        fewer than `LOOKAHEAD` seconds' worth of rows are left (they wait for their slots; else each batch's
        claim, renders and DM lookups would leave the pace idle); without one, while fewer than `IN_FLIGHT`
        batches' worth are under way (a row spends most of its time waiting: for the writer, for Slack; rows
        side by side share those waits, and one Slack call taking seconds no longer holds every next row back).
        A request's rows in a later batch wait for its rows in the earlier ones."""
        moment = now or self.clock()
        rows = await self._take(moment)
        if len(rows) < self.batch:
            await self._started(rows, moment, {})
            return len(rows)
        rate = self.workspace_rate
        total, running = 0, []
        last: dict[Any, asyncio.Future[None]] = {}  # request -> its latest delivery under way
        # rows under way at once under a pace: no flood of renders waiting for their slots
        gate = asyncio.Semaphore(max(1, int(rate * LOOKAHEAD))) if rate > 0 else None
        ahead = max(1.0, rate * LOOKAHEAD) if rate > 0 else self.batch * (IN_FLIGHT - 1)
        left = _Left(0)  # rows claimed by this round and not done yet, every batch together
        try:
            while rows:
                total += len(rows)
                left.count += len(rows)
                running.append(self._started(rows, moment, last, left, gate))
                if len(rows) < self.batch:
                    break
                # (a batch that ended, even with an error, frees its place: nothing waits on a count gone wrong)
                await left.down_to(ahead, lambda: self._stopping or running[-1].done())
                moment = now or self.clock()
                rows = await self._take(moment)
            await asyncio.gather(*running)
        except BaseException:
            for task in running:
                task.cancel()
            raise
        return total

    def _started(self, rows: list[OutboxMessage], now: datetime, last: dict[Any, asyncio.Future[None]],
                 left: _Left | None = None, gate: asyncio.Semaphore | None = None) -> asyncio.Future[Any]:
        """The rows of a claimed batch under way, grouped by request; `left` (if any) counts the rows not done yet.

        Everything later batches look at is set here, before anything is awaited, so that it follows the order of
        the claims: the batch's number and news (`_behind_urgent`) and each request's latest group (`last`). Set
        after the batch's read-ahead, a later batch with less to read ahead (one request: nothing) came first: a
        request's rows went out of order, and this batch's news waited for the later batch's rows, which waited
        for that news: delivery stopped for good (seen in the Slack latency bench on PostgreSQL)."""
        self._batches += 1
        number = self._batches
        loop = asyncio.get_running_loop()
        urgent = {row.id: loop.create_future() for row in rows if row.priority == delivery.AT_ONCE}
        self._urgent += [(number, done) for done in urgent.values()]
        read = asyncio.ensure_future(self._read_ahead(rows))
        groups: dict[Any, list[OutboxMessage]] = {}
        for row in rows:  # in claim order (priority, then id): each group too, and the urgent groups start first
            groups.setdefault(row.request_id if row.request_id is not None else ("row", row.id), []).append(row)
        tasks = []
        for key, group in groups.items():
            task = asyncio.ensure_future(self._deliver_in_order(group, now, last.get(key), left, gate, number,
                                                                urgent, read))
            last[key] = task
            tasks.append(task)
        batch = asyncio.gather(read, *tasks)

        def ended(_: asyncio.Future[Any]) -> None:  # whatever became of it (an error, a shutdown): nobody waits
            for done in urgent.values():
                if not done.done():
                    done.set_result(None)
            self._urgent = [(n, done) for n, done in self._urgent if not done.done()]

        batch.add_done_callback(ended)
        return batch

    async def _behind_urgent(self, number: int) -> None:
        """A row that is not news a person is looking at waits for such news claimed with it or before it: claims
        take that news first (`workflow.delivery.AT_ONCE_KINDS`), and this keeps its sends first too, where rows of
        later batches, quicker to plan, would otherwise overtake it. (Only earlier batches' news: a request's row in
        a later batch waits for its rows in the earlier ones, so waiting for later news could wait on itself.)"""
        ahead = [done for n, done in self._urgent if n <= number and not done.done()]
        if ahead:
            _, late = await asyncio.wait(ahead, timeout=self.urgent_wait)
            if late:  # the order is a nicety; never a reason to stop (see URGENT_WAIT)
                log.warning("%d news rows still under way after %gs: the rows behind them go on", len(late),
                            self.urgent_wait)

    async def _read_ahead(self, rows: list[OutboxMessage]) -> None:
        """The requests of a claimed batch, read together into the memory the rows' plans look in (`_recent`, where
        each plan still checks the version, one statement): five statements for the batch, where each row whose
        request had changed read it with four of its own (a burst of decisions: every row of the batch)."""
        ids = {row.request_id for row in rows if row.request_id is not None}
        if len(ids) > 1:
            try:
                await self._write(self._remember, ids)
            except Exception:  # only a saving: each row reads what it needs itself
                log.warning("reading a batch's requests ahead failed", exc_info=True)

    def _remember(self, ids: set[int]) -> None:
        with self.db.unit_of_work(write=False, transaction=False) as conn:
            read = current_details(conn, self.policy, ids, self._recent)
        for request_id, details in read.items():
            self._recent[request_id] = details

    async def _deliver_in_order(self, rows: list[OutboxMessage], now: datetime,
                                after: asyncio.Future[None] | None = None, left: _Left | None = None,
                                gate: asyncio.Semaphore | None = None, number: int = 0,
                                urgent: dict[int, asyncio.Future[None]] | None = None,
                                read: asyncio.Future[None] | None = None) -> None:
        if after is not None:
            await asyncio.wait([after])  # the request's earlier news, from the batch before, goes out first
        if read is not None and not read.done():
            await asyncio.wait([read])  # the batch's requests, read ahead
        for row in rows:  # one request's news, one after the other
            done = (urgent or {}).get(row.id)
            try:
                if done is None:
                    await self._behind_urgent(number)  # before taking a place at the gate the news needs
                if gate is None:
                    await self._deliver(row, now)
                else:
                    async with gate:
                        await self._deliver(row, now)
            finally:
                if done is not None and not done.done():
                    done.set_result(None)
                if left is not None:
                    left.one_done()

    async def run_forever(self, interval: float = 0.5) -> None:
        """Deliver until cancelled; when nothing was due, rests until `wake` or `interval` seconds have passed
        (the timeout catches rows that come due later, or that another process wrote). Ends after `stop`."""
        while not self._stopping:
            self._due.clear()  # a wake from here on means another round
            try:
                handled = await self.run_once()
            except Exception:
                # a broken database must not end the loop: the rows stay due (or leased) and are retried
                log.exception("delivery round failed")
                handled = 0
            if handled < self.batch:
                try:
                    await asyncio.wait_for(self._due.wait(), interval)
                except TimeoutError:
                    pass

    # ------------------------------------------------------------------------------------- one row

    async def _deliver(self, row: OutboxMessage, now: datetime) -> None:
        if self._stopping:
            return  # claimed, not begun: given back at shutdown
        token = TRACE.set(str(row.payload.get(TRACE_KEY) or f"outbox-{row.id}"))
        try:
            await self._deliver_traced(row, now)
        finally:
            TRACE.reset(token)

    async def _deliver_traced(self, row: OutboxMessage, now: datetime) -> None:
        try:
            ref = await self._send(row)
        except _Stopped:
            return  # the call was not made: given back at shutdown
        except _Dead as exc:
            await self._record(delivery.mark_dead, row.id, str(exc))
        except _Again as exc:
            await self._transient(row, str(exc), now)
        except SlackApiError as exc:
            await self._failed_on_slack(row, exc, now)
        except TeamsError as exc:
            await self._failed_on_teams(row, exc, now)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            await self._transient(row, f"{type(exc).__name__}: {exc}", now)
        except Exception as exc:  # a bug in one row must not stall the others or the loop
            log.exception("delivering outbox row %s failed", row.id)
            await self._transient(row, f"{type(exc).__name__}: {exc}", now)
        else:
            platform = TEAMS if is_teams_ref(ref) else PLATFORM
            await self._record(delivery.mark_sent, row.id, ref, platform, self.clock())

    async def _send(self, row: OutboxMessage) -> JSON | None:
        """Carry the row out on the recipient's platform; returns where the message is (Slack: channel + ts;
        Teams: activity id + conversation), None if nothing was sent."""
        if self.people_first is not None:
            await self.people_first.turn()
            if self._stopping:
                raise _Stopped  # claimed, not begun: given back at shutdown
        plan = await self._write(self._plan, row)  # the writer: no second thread fighting for the GIL
        try:
            return await self._carry_out(row, plan)
        except SlackApiError as exc:
            # uninstalled or reinstalled through another replica: the remembered token is stale; the workspace's
            # installation is read afresh (for its requests too), and with a new token the row goes again
            if (self.workspaces is not None and exc.response.get("error") in TOKEN_GONE
                    and await self.workspaces.renewed(plan.team)):
                raise _Again("the Slack workspace was installed again: sent again with its new token") from exc
            raise

    async def _carry_out(self, row: OutboxMessage, plan: _Plan) -> JSON | None:
        if plan.covered:
            return None  # recorded as sent, with no message of its own (nothing to update later)
        for ref, message, locale in plan.refresh:  # first: the copies change even if this recipient is unreachable
            await self._refresh(ref, message, locale, plan.team)
        self._reachable(plan)
        if plan.message is None:
            raise _Dead(GONE)
        if plan.target is not None:
            return await self._update(plan.target, *plan.message, team=plan.team)
        if row.kind == "card_update" or row.payload.get("updates") is not None:
            return None  # the card was never posted: nothing shows a stale copy
        if plan.platform == TEAMS:
            assert plan.address is not None and self.teams is not None  # _reachable checked both
            return await self._post_teams(plan.address, *plan.message)
        assert plan.user is not None
        if plan.channel:
            return await self._post_to_channel(plan.user, render_message(*plan.message), plan.team)
        return await self._post(plan.user, render_message(*plan.message), plan.team)

    def _reachable(self, plan: _Plan) -> None:
        """Dead, with the reason an admin can act on, when the recipient cannot be reached at all."""
        if plan.platform == TEAMS:
            if plan.address is None:
                raise _Dead(NOT_INSTALLED)
            if self.teams is None:
                raise _Dead(NO_TEAMS)
        elif plan.user is None:
            raise _Dead(NO_IDENTITY)
        elif not self.slack_configured:
            raise _Dead(NO_SLACK)

    def _plan(self, row: OutboxMessage) -> _Plan:
        # reads only, a dozen short statements: no transaction of its own (on PostgreSQL, two round trips fewer)
        with self.db.unit_of_work(write=False, transaction=False) as conn:
            shared = row.payload.get("channel") if row.kind in notifications.CARD_KINDS else None
            channel_at, channel_address = self._queue_channel(conn, shared or row.payload.get("covered_by_channel"))
            reach = None if shared else delivery.reach(conn, row.recipient_id)
            user: str | None
            if shared:  # the queue's one card, in its channel
                user, platform, address = str(shared), channel_at or PLATFORM, channel_address
            else:
                user = reach.user_id if reach is not None else None
                platform = reach.platform if reach is not None else PLATFORM
                address = reach.address if reach is not None else None
            team = self._team(conn, row, reach, bool(shared))
            if self._covered(row, shared, channel_at, platform if reach is not None else None):
                return _Plan(user, platform=platform, covered=True)
            # read once for this row and all its cards; what delivery read lately (`_Lately`) reused while the
            # request's version is unchanged
            reads = notifications.Reads(earlier=self._recent)
            if user is None:
                # nobody to tell, but the request's other copies (approver cards, digests) must still show it
                return _Plan(refresh=self._copies(conn, row, reads), team=team)
            found = notifications.message_for(conn, self.policy, self.policy.company.timezone, row, reads, platform)
            if found is None:
                return _Plan(user, platform=platform, address=address, team=team)
            plan = _Plan(user, found, channel=bool(shared), platform=platform, address=address, team=team)
            request_id = row.request_id or 0
            if row.kind == "card_update" and row.payload.get("assignment_id") is not None:
                plan.target = delivery.card_ref(conn, int(row.payload["assignment_id"]))
            elif row.payload.get("updates") is not None:  # a broadcast's DM, acknowledged since it was posted
                plan.target = broadcasts.posted_ref(conn, int(row.payload["updates"]))
            if plan.target is not None and plan.target.get("shared"):
                # a closed assignment's copy is a queue's shared card: it shows the step, not that person
                card = notifications.shared_card(conn, self.policy, request_id,
                                                 int(row.payload["assignment_id"]), reads)
                plan.message = card if card is not None else plan.message
            elif row.kind in notifications.REQUESTER_KINDS:
                plan.target = delivery.requester_ref(conn, request_id)
            plan.refresh = self._copies(conn, row, reads)
            return plan

    def _copies(self, conn: Connection, row: OutboxMessage,
                reads: notifications.Reads) -> list[tuple[JSON, Message, str]]:
        """The other posted copies a row brings up to date: news to the requester refreshes every approver card
        of the request; that or a closed card also every reminder digest showing it."""
        request_id, tz = row.request_id or 0, self.policy.company.timezone
        copies = []
        if row.kind in notifications.REQUESTER_KINDS:
            copies += notifications.sent_cards(conn, self.policy, tz, request_id, reads)
        if request_id and (row.kind in notifications.REQUESTER_KINDS or row.kind == "card_update"):
            copies += notifications.sent_digests(conn, self.policy, tz, request_id)
        return copies

    def _team(self, conn: Any, row: OutboxMessage, reach: delivery.Reach | None, shared: bool) -> str | None:
        """The Slack workspace the row goes to (only asked with OAuth installs): the recipient's; a queue's shared
        channel card goes to the channel in the workspace of the person it was enqueued for (else the requester's)."""
        if self.workspaces is None:
            return None
        if shared:
            return delivery.slack_workspace(conn, row.recipient_id, row.request_id)
        return reach.workspace if reach is not None and reach.platform == PLATFORM else None

    def _queue_channel(self, conn: Any, channel: Any) -> tuple[str | None, JSON | None]:
        """Where a queue's channel is, for its shared card: Slack's (named in workflows.yaml) when Slack is
        configured, else the Teams channel someone registered for it (`channel it` typed there), else nowhere."""
        if not channel:
            return None, None
        if self.slack_configured:
            return PLATFORM, None
        address = registered_address(conn, TEAMS, str(channel)) if self.teams is not None else None
        return (TEAMS, address) if address is not None else (None, None)

    def _covered(self, row: OutboxMessage, shared: Any, channel_at: str | None, platform: str | None) -> bool:
        """A queue's cards when the queue has a channel: the shared channel card goes out only where its channel
        is (`channel_at`: Slack's, or a registered Teams channel), and a holder's own card only to those the
        channel cannot reach (people on the other platform; with `platform` None, people never seen on chat,
        whom the channel's card is for as much as anyone)."""
        if shared:
            return channel_at is None
        return (bool(row.payload.get("covered_by_channel")) and channel_at is not None
                and platform in (None, channel_at))

    # ------------------------------------------------------------------------------------- Slack calls

    @property
    def slack(self) -> AsyncWebClient:
        if self.client is None:
            raise _Dead(NO_SLACK)
        return self.client

    @property
    def slack_configured(self) -> bool:
        return self.client is not None or self.workspaces is not None

    async def _slack(self, team: str | None) -> AsyncWebClient:
        """The client that sends to the workspace: the one bot token's, or (OAuth installs) the workspace's own."""
        if self.workspaces is None:
            return self.slack
        client = await self.workspaces.client(team)
        if client is None:
            raise _Dead(NOT_INSTALLED_IN.format(team=team or "?"))
        return client

    def _ref(self, channel: str, ts: str, team: str | None) -> JSON:
        """Where a Slack message is; with OAuth installs also its workspace, whose token can update it."""
        return {"channel": channel, "ts": ts} if self.workspaces is None else {"channel": channel, "ts": ts,
                                                                               "team": team}

    async def _post(self, user: str, message: JSON, team: str | None = None) -> JSON:
        channel = await self._dm_channel(user, team)
        try:
            return await self._post_to_channel(channel, message, team)
        except SlackApiError:
            self._dm.pop((team, user), None)  # the channel may be what failed: asked afresh next time
            raise

    async def _post_to_channel(self, channel: str, message: JSON, team: str | None = None) -> JSON:
        """A message in a channel: a DM, or a queue's shared card (the bot must be a member there: a permanent
        error otherwise)."""
        client = await self._slack(team)
        posted = await self._message(client.chat_postMessage, team, channel=channel, **message)
        ref = self._ref(str(posted.get("channel") or channel), str(posted["ts"]), team)
        self._shown[(str(ref["channel"]), str(ref["ts"]))] = _digest(message)
        return ref

    async def _dm_channel(self, user: str, team: str | None = None) -> str:
        """The person's DM channel: conversations.open once per person (rows delivered side by side share the
        call under way); a failed call is forgotten, so the next row asks again."""
        key = (team, user)
        opening = self._dm.get(key)
        if opening is None:
            client = await self._slack(team)
            opening = self._dm.get(key)  # another row may have started it meanwhile
            if opening is None:
                opening = self._dm[key] = asyncio.ensure_future(client.conversations_open(users=user))
        try:
            opened = await asyncio.shield(opening)
        except BaseException:
            if self._dm.get(key) is opening and opening.done():
                del self._dm[key]
            raise
        return str((opened.get("channel") or {}).get("id") or user)

    async def _update(self, ref: JSON, message: Message, locale: str, *, if_changed: bool = False,
                      team: str | None = None) -> JSON:
        """Update the message at `ref` on its platform (Slack chat.update, Teams updateActivity); with
        `if_changed`, not when it already shows exactly this. `team`: the workspace of a Slack ref that does not
        say (posted before OAuth installs)."""
        if is_teams_ref(ref):
            return await self._update_teams(ref, render_card(message, locale), if_changed=if_changed)
        team = ref.get("team") or team
        client = await self._slack(team)
        rendered = render_message(message, locale)
        key, digest = (str(ref["channel"]), str(ref["ts"])), _digest(rendered)
        if not (if_changed and self._shown.get(key) == digest):
            self._shown.pop(key, None)  # unknown while the call is under way (it may fail half way)
            await self._message(client.chat_update, team, channel=ref["channel"], ts=ref["ts"], **rendered)
            self._shown[key] = digest
        return self._ref(str(ref["channel"]), str(ref["ts"]), team)

    async def _refresh(self, ref: JSON, message: Message, locale: str, team: str | None = None) -> None:
        """Bring another copy of the card up to date. A copy that is gone for good (the approver left, the DM
        was deleted, the app was removed) must not hold back this row; a passing failure retries the whole row
        (updates repeat harmlessly)."""
        try:
            await self._update(ref, message, locale, if_changed=True, team=team)
        except SlackApiError as exc:
            if exc.response.status_code == 429 or exc.response.get("error") not in PERMANENT:
                raise
            log.warning("could not update card %s: %s", ref, exc.response.get("error"))
        except TeamsError as exc:
            if not exc.permanent:
                raise
            log.warning("could not update Teams card %s: %s", ref.get("activity_id"), exc.error)
        except _Dead as exc:  # that copy's platform is no longer configured
            log.warning("could not update card %s: %s", ref, exc)

    # ------------------------------------------------------------------------------------- Teams calls

    async def _post_teams(self, address: JSON, message: Message, locale: str) -> JSON:
        """The card into the person's Teams chat, at the conversation's and the bot's pace."""
        assert self.teams is not None
        card = render_card(message, locale)
        teams = self.teams
        conversation = str((address.get("conversation") or {}).get("id", ""))
        ref = await self._paced(self.teams_pace, f"teams:{conversation}", lambda: teams.post(address, card))
        self._shown[_teams_key(ref)] = _digest(card)
        return ref

    async def _update_teams(self, ref: JSON, card: JSON, *, if_changed: bool) -> JSON:
        if self.teams is None:
            raise _Dead(NO_TEAMS)
        key, digest = _teams_key(ref), _digest(card)
        if not (if_changed and self._shown.get(key) == digest):
            self._shown.pop(key, None)
            teams = self.teams
            await self._paced(self.teams_pace, f"teams:{key[0]}", lambda: teams.update(ref, card))
            self._shown[key] = digest
        return ref

    async def _message(self, call: Callable[..., Any], team: str | None, *, channel: str, **kwargs: Any) -> Any:
        """A Slack post or update of a message in `channel`, at the channel's and the workspace's pace."""
        return await self._paced(self._pace_of(team), channel, lambda: call(channel=channel, **kwargs))

    def _pace_of(self, team: str | None) -> WorkspacePace:
        """Slack's limits are per workspace: with OAuth installs each workspace has a pace of its own."""
        if self.workspaces is None:
            return self.workspace_pace
        pace = self._paces.get(team)
        if pace is None:
            pace = self._paces[team] = WorkspacePace(self.workspace_pace.clock)
        return pace

    async def _paced(self, pace: WorkspacePace, channel: str, call: Callable[[], Any]) -> Any:
        """One chat call at its channel's pace (a Slack channel, a Teams conversation) and its platform's (`pace`:
        Slack's workspace, the Teams bot); a 429 pauses the platform's pace for Retry-After (then the error goes
        on, and the row waits as before)."""
        # the bucket's slot first, then the channel's, then room in the window right before the call (which is
        # what the window counts); a window that is full only ever makes a send later than its channel slot
        await pace.take(self.workspace_rate)
        await self._wait_for(channel)
        if self._stopping:  # shutting down while this call waited for its slot: it is not made
            raise _Stopped
        paced = await pace.enter(self.workspace_rate)
        try:
            return await call()  # made here: a call never made (cancelled while it waited) leaves nothing behind
        except (SlackApiError, TeamsError) as exc:
            after = _throttled(exc)
            if after is not None:
                pace.hold(after, self.workspace_rate)
                log.warning("rate limit on %s: the platform waits %gs", channel, after)
            raise
        finally:
            if paced:
                pace.done()

    @property
    def workspace_rate(self) -> float:
        """Messages a second to the whole workspace; 0: no workspace pace."""
        if self.rate is not None:
            return self.rate
        return DEFAULT_RATE if self.pace > 0 else 0.0

    async def _wait_for(self, channel: str) -> None:
        """Keep to about one message per channel per `pace` seconds: take the channel's next free slot (no await
        in between, so concurrent groups each get a slot of their own), then wait for it."""
        now = time.monotonic()
        slot = max(now, self._last_sent.get(channel, -float("inf")) + self.pace)
        self._last_sent[channel] = slot
        if slot > now:
            await asyncio.sleep(slot - now)

    # ------------------------------------------------------------------------------------- failures

    async def _failed_on_slack(self, row: OutboxMessage, exc: SlackApiError, now: datetime) -> None:
        status = exc.response.status_code
        error = str(exc.response.get("error") or f"HTTP {status}")
        if status == 429:
            self.metrics.rate_limited.labels(PLATFORM).inc()
            # rate limits say nothing about the message: they never make it dead
            after = _seconds(exc.response.headers.get("Retry-After"), default=1.0)
            await self._record(delivery.mark_retry, row.id, f"ratelimited (retry after {after:g}s)",
                               now + timedelta(seconds=after))
        elif error in PERMANENT:
            await self._record(delivery.mark_dead, row.id, error)
        else:
            await self._transient(row, error, now)

    async def _failed_on_teams(self, row: OutboxMessage, exc: TeamsError, now: datetime) -> None:
        after = _throttled(exc)
        if after is not None:
            self.metrics.rate_limited.labels(TEAMS).inc()
            await self._record(delivery.mark_retry, row.id, f"throttled by Teams (retry after {after:g}s)",
                               now + timedelta(seconds=after))
        elif exc.permanent:
            await self._record(delivery.mark_dead, row.id, f"Teams: {exc.error}")
        else:
            await self._transient(row, f"Teams: {exc.error}", now)

    async def _transient(self, row: OutboxMessage, error: str, now: datetime) -> None:
        """Retry later, waiting twice as long each time (capped, with jitter); give up after max_attempts."""
        if row.attempts >= self.max_attempts:
            await self._record(delivery.mark_dead, row.id, f"gave up after {row.attempts} attempts: {error}")
            return
        delay = min(self.max_backoff, self.backoff * 2 ** (row.attempts - 1))
        # jitter: replicas and rows that failed together must not all come back in the same instant
        delay *= 0.5 + random.random() / 2
        await self._record(delivery.mark_retry, row.id, error, now + timedelta(seconds=delay))

    # ------------------------------------------------------------------------------------- database

    async def _take(self, now: datetime) -> list[OutboxMessage]:
        """Claim the next batch (none once stopping), remembering each row's lease until its result is recorded."""
        if self.people_first is not None:
            await self.people_first.turn()
        if self._stopping:
            return []
        rows: list[OutboxMessage] = await self._write(self._claim, now)
        for row in rows:
            self._claims[row.id] = row.next_attempt_at
        return rows

    def _claim(self, now: datetime) -> list[OutboxMessage]:
        with self.db.unit_of_work() as conn:
            return delivery.claim_due(conn, now, self.batch, self.lease)

    def _release(self, claims: dict[int, datetime], now: datetime) -> int:
        with self.db.unit_of_work() as conn:
            return delivery.release(conn, claims, now)

    async def _write(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A write, on the database's writer (SQLite: the one writer thread, group-committed with the clicks, which
        go ahead of it)."""
        return await on_writer(self.db, fn, *args, first=False)

    async def _record(self, mark: Callable[..., None], row_id: int, *args: Any) -> None:
        await self.records.record(mark, row_id, *args)  # with the other results coming in meanwhile
        self._claims.pop(row_id, None)
        result = RESULTS.get(mark, "other")
        self.metrics.deliveries.labels(result).inc()
        # the row and its fate, never what it says; the record carries the trace of the request that wrote it
        log.log(logging.INFO if result == "sent" else logging.WARNING, "outbox row %s: %s%s", row_id, result,
                f" ({args[0]})" if result != "sent" and args else "")


RESULTS: dict[Callable[..., None], str] = {delivery.mark_sent: "sent", delivery.mark_retry: "retry",
                                           delivery.mark_dead: "dead"}


def _throttled(exc: SlackApiError | TeamsError) -> float | None:
    """Seconds to wait when the platform refused a call for its rate limit (429), else None."""
    if isinstance(exc, TeamsError):
        return (exc.retry_after if exc.retry_after is not None else 1.0) if exc.status == 429 else None
    if exc.response.status_code != 429:
        return None
    return _seconds(exc.response.headers.get("Retry-After"), default=1.0)


def _teams_key(ref: JSON) -> tuple[str, str]:
    return str((ref.get("conversation") or {}).get("conversation", {}).get("id", "")), str(ref.get("activity_id"))


def _digest(message: JSON) -> str:
    """What a message shows, in a few bytes (to tell whether a copy needs updating)."""
    return hashlib.blake2b(json.dumps(message, sort_keys=True, ensure_ascii=False, default=str).encode(),
                           digest_size=16).hexdigest()


def _seconds(value: str | None, *, default: float) -> float:
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default
