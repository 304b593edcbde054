"""The one aiohttp application of the process: `POST /slack/events` (the Bolt app, when Slack is configured),
`POST /api/messages` (the Teams bot), `GET /healthz`, `GET /readyz` and `GET /metrics`; the delivery loop (one for
both platforms) and the scheduler's tick (bot/scheduler.py) run beside them. The Bolt app is mounted with its
aiohttp adapter's request/response converters on this application, not run as a second server.

Shutdown (SIGTERM; `madoguchi serve` runs `web.run_app` with SHUTDOWN_HTTP): the listening socket closes first (no
new events); `on_shutdown` stops the delivery loop's claims and the scheduler; requests under way get SHUTDOWN_HTTP
seconds; then the cleanup contexts unwind: the tick under way finishes its transactions, the delivery calls under
way are answered and recorded (DELIVERY_GRACE at most), the rows claimed and not sent are released for the other
replicas, the database is closed. Well within 10 s.

Slack comes in one of two modes: one workspace with one bot token (`SLACK_BOT_TOKEN`, the simple default), or
installs into several workspaces through OAuth (`SLACK_CLIENT_ID` + `SLACK_CLIENT_SECRET`, no bot token), which
adds `GET /slack/install` and `GET /slack/oauth_redirect` (bot/slack/oauth.py). Both need `SLACK_SIGNING_SECRET`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import observability
from bot.delivery import SlackDelivery
from bot.metrics import Metrics, metrics_handler
from bot.people_first import PeopleFirst
from bot.readiness import Readiness, readyz_handler
from bot.scheduler import Ticker
from bot.slack.app import Background, BotAuthorization, build_oauth_slack_app, build_slack_app
from bot.slack.manifest import BOT_SCOPES
from bot.slack.oauth import INSTALL_PATH, REDIRECT_PATH, WorkspaceClients, oauth_settings
from bot.slack.socket_mode import SocketModeConnection
from bot.teams.lazy import LazyTeams
from bot.teams.refs import MESSAGES
from config.policy import Policy, load_policy, with_timezone
from config.settings import Settings
from handlers.conversation import Conversation
from models.db import Database
from workflow.engine import Engine

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # OAuth mode only (see _installations)
    from bot.slack.installations import Installations

SLACK_APP = web.AppKey("slack_app", AsyncApp)
DELIVERY = web.AppKey("delivery", SlackDelivery)
TICKER = web.AppKey("ticker", Ticker)
DATABASE = web.AppKey("database", Database)
METRICS = web.AppKey("metrics", Metrics)
PEOPLE_FIRST = web.AppKey("people_first", PeopleFirst)
REPLIES = web.AppKey("replies", Background)  # replies sent after an answer (e.g. a click's ephemeral)
SLACK_EVENTS = "/slack/events"
SHUTDOWN_HTTP = 2.0  # seconds requests under way may take after SIGTERM (web.run_app's shutdown_timeout)
DELIVERY_GRACE = 3.0  # seconds the delivery calls under way may take to be answered and recorded at shutdown


def make_app(settings: Settings, *, database: Database | None = None, policy: Policy | None = None,
             clock: Callable[[], datetime] | None = None, deliver: bool | None = None,
             warm: bool = True, tick: bool | None = None) -> web.Application:
    """The application for these settings. A database passed in stays the caller's; one made here is closed
    with the application. `deliver`: run the Slack delivery loop in the background (default: only when the
    application owns its database; a caller handing one in, like a test, drives delivery itself). `warm`: look
    the bot up (auth.test) at start; off when the Web API is served by this same application (the playground),
    which does not listen yet at start."""
    metrics = Metrics()
    people = PeopleFirst()  # the people's requests go before delivery and after-answer replies
    app = web.Application(middlewares=[observability.middleware(metrics),
                                       people.middleware(frozenset({SLACK_EVENTS, MESSAGES}))])
    app[METRICS] = metrics
    app[PEOPLE_FIRST] = people
    db = database or _own_database(app, settings)
    app[DATABASE] = db
    rules = policy or with_timezone(load_policy(settings.workflows), settings.timezone)
    observe = metrics.observe_decision
    engine = Engine(db, rules, clock=clock, observe=observe) if clock else Engine(db, rules, observe=observe)
    conversation = Conversation(engine)
    app.router.add_get("/healthz", healthz)
    slack = bool(settings.slack_bot_token and settings.slack_signing_secret)
    client = AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url) if slack else None
    installations = _installations(db, settings) if not slack else None
    workspaces = (WorkspaceClients(installations, AsyncWebClient(base_url=settings.slack_api_url))
                  if installations is not None else None)
    lease = timedelta(seconds=settings.outbox_lease_seconds)
    # one delivery loop for both platforms: each recipient is reached where they last were (Slack or Teams)
    # Teams: botbuilder is loaded when Teams is used (at start with bot credentials, else at the first request)
    teams = LazyTeams(conversation, settings, lambda: app[DELIVERY].wake())
    app[DELIVERY] = (SlackDelivery(db, rules, client, clock=clock, lease=lease, teams=teams, workspaces=workspaces,
                                   metrics=metrics, rate=settings.slack_rate, people_first=people) if clock
                     else SlackDelivery(db, rules, client, lease=lease, teams=teams, workspaces=workspaces,
                                        metrics=metrics, rate=settings.slack_rate, people_first=people))
    _mount_teams(app, teams)
    background = deliver if deliver is not None else database is None
    if slack and settings.slack_bot_token and settings.slack_signing_secret:
        _mount_slack(app, conversation, settings.slack_bot_token, settings.slack_signing_secret,
                     settings.slack_api_url, app[DELIVERY], warm)
    elif installations is not None and workspaces is not None:
        _mount_slack_oauth(app, conversation, settings, installations, workspaces, app[DELIVERY])
    if SLACK_APP in app and settings.slack_app_token:
        # Socket Mode beside HTTP; after the Slack mount, so it closes before the shared Web API session
        socket_mode = SocketModeConnection(app[SLACK_APP], settings.slack_app_token, settings.slack_api_url,
                                           people_first=people)
        app.cleanup_ctx.append(socket_mode.context)
    if background:
        app.cleanup_ctx.append(_delivery_loop)
    if tick if tick is not None else database is None:  # the scheduler's tick: like delivery, off for a test's db
        wake = app[DELIVERY].wake
        app[TICKER] = (Ticker(db, rules, clock=clock, after=wake, metrics=metrics) if clock
                       else Ticker(db, rules, after=wake, metrics=metrics))
        app.cleanup_ctx.append(app[TICKER].context)
    _mount_operations(app, db, clock or _utcnow)
    return app


def _mount_operations(app: web.Application, db: Database, clock: Callable[[], datetime]) -> None:
    """What an orchestrator and a monitoring system ask: `/readyz`, `/metrics`; and the start of a graceful
    shutdown (see the module's docstring)."""
    ticker = app.get(TICKER)
    app.router.add_get("/readyz", readyz_handler(Readiness(db, ticker)))
    app.router.add_get("/metrics", metrics_handler(app[METRICS], db, clock))

    async def stop_background(_: web.Application) -> None:
        # before the requests under way are waited for: nothing new is claimed or ticked meanwhile
        log.info("shutdown: no new events, claims or ticks; finishing what is under way")
        app[DELIVERY].stop()
        if ticker is not None:
            ticker.stop()

    app.on_shutdown.append(stop_background)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _share_session(app: web.Application, clients: list[AsyncWebClient], replies: Background) -> None:
    """One aiohttp session (one connection pool) for every Web API client of the process while it serves,
    instead of a session per call; Bolt's per-request clients take the app client's session."""

    async def session(_: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as shared:
            for client in clients:
                client.session = shared
            yield
            await replies.drain()  # replies still under way go out before the session closes
            for client in clients:
                client.session = None

    app.cleanup_ctx.append(session)


async def _delivery_loop(app: web.Application) -> AsyncIterator[None]:
    """The outbox leaves while the server runs, as a task on the application's own event loop. (A thread of its
    own with its own loop was measured: the acks got slower, 17 -> 25 ms p50 at concurrency 1 and 223 -> 350 ms
    p99 at 50, for faster cards at 1 only.) At shutdown the loop is stopped (no claim, no new call), the calls under
    way get DELIVERY_GRACE seconds to be answered and recorded (then the loop is cancelled), and the rows it claimed
    and did not record are released for the other replicas."""
    delivery = app[DELIVERY]
    task = asyncio.create_task(delivery.run_forever())
    yield
    delivery.stop()
    try:
        await asyncio.wait_for(asyncio.shield(task), DELIVERY_GRACE)
    except TimeoutError:
        log.warning("shutdown: delivery calls still under way after %gs: cancelled", DELIVERY_GRACE)
    except Exception:
        log.exception("delivery loop failed")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    try:
        await delivery.release_claims()
    except Exception:  # the database is gone: the leases run out and the rows are sent anyway
        log.exception("shutdown: could not release the claimed outbox rows")


def _own_database(app: web.Application, settings: Settings) -> Database:
    db = Database(settings.database_url, synchronous=settings.sqlite_synchronous)

    async def dispose(_: web.Application) -> None:
        db.dispose()

    app.on_cleanup.append(dispose)
    return db


def _mount_slack(app: web.Application, conversation: Conversation, token: str, signing_secret: str,
                 api_url: str, delivery: SlackDelivery, warm: bool = True) -> None:
    authorization = BotAuthorization(token, api_url)
    replies = app[REPLIES] = Background(app[PEOPLE_FIRST])
    # a conversation call may have enqueued news: the delivery loop looks at once instead of after its rest
    app[SLACK_APP] = build_slack_app(conversation, token=token, signing_secret=signing_secret, api_url=api_url,
                                     authorization=authorization, changed=delivery.wake, background=replies)
    # before the delivery loop's context: the loop stops first, then the session closes
    _share_session(app, [app[SLACK_APP].client, authorization.client, delivery.slack], replies)

    async def warm_up(_: web.Application) -> None:
        # Bolt would call auth.test on the first request; doing it now keeps it out of a person's wait.
        await authorization.warm()

    if warm:
        app.on_startup.append(warm_up)
    app.router.add_post(SLACK_EVENTS, slack_events)


def _installations(db: Database, settings: Settings) -> Installations | None:
    """The installation store of the OAuth mode, when it is configured (no bot token, the app's client id and
    secret, the signing secret). Loaded only then: slack_sdk's SQLAlchemy stores cost 6 MB a one-workspace
    process does not need."""
    if settings.slack_client_id and settings.slack_client_secret and settings.slack_signing_secret:
        from bot.slack.installations import Installations

        return Installations(db, settings.slack_client_id)
    return None


def _mount_slack_oauth(app: web.Application, conversation: Conversation, settings: Settings,
                       installations: Installations, workspaces: WorkspaceClients, delivery: SlackDelivery) -> None:
    """Slack for every workspace that installs the app: /slack/events, /slack/install and /slack/oauth_redirect."""
    from bot.slack.installations import OAuthStates

    assert settings.slack_client_id and settings.slack_client_secret and settings.slack_signing_secret
    scopes = [s.strip() for s in (settings.slack_scopes or ",".join(BOT_SCOPES)).split(",") if s.strip()]
    oauth = oauth_settings(client_id=settings.slack_client_id, client_secret=settings.slack_client_secret,
                           scopes=scopes, installations=installations,
                           states=OAuthStates(app[DATABASE], settings.slack_oauth_state_seconds),
                           redirect_uri=settings.slack_redirect_uri,
                           state_expiration_seconds=settings.slack_oauth_state_seconds)
    replies = app[REPLIES] = Background(app[PEOPLE_FIRST])
    app[SLACK_APP] = build_oauth_slack_app(conversation, signing_secret=settings.slack_signing_secret,
                                           api_url=settings.slack_api_url, oauth=oauth, installations=installations,
                                           changed=delivery.wake, background=replies)
    _share_session(app, [app[SLACK_APP].client, workspaces.template], replies)
    app.router.add_post(SLACK_EVENTS, slack_events)
    app.router.add_get(INSTALL_PATH, slack_install)
    app.router.add_get(REDIRECT_PATH, slack_oauth_redirect)


def _mount_teams(app: web.Application, teams: LazyTeams) -> None:
    """`POST /api/messages` for Teams: authenticated with the bot's credentials, or anonymous for loopback clients
    only (local use) when there are none."""

    async def warm(_: web.Application) -> None:
        teams.warm()

    app.on_startup.append(warm)
    app.router.add_post(MESSAGES, teams.handle)


async def slack_events(request: web.Request) -> web.Response:
    """Everything Slack sends (commands, interactivity, events); Bolt verifies the signature first."""
    bolt = request.app[SLACK_APP]
    response = await bolt.async_dispatch(await to_bolt_request(request))
    return await to_aiohttp_response(response)


async def slack_install(request: web.Request) -> web.Response:
    """The "Add to Slack" page (Bolt's OAuth flow): a one-time state, also set as a cookie."""
    flow = request.app[SLACK_APP].oauth_flow
    assert flow is not None  # mounted only with OAuth
    return await to_aiohttp_response(await flow.handle_installation(await to_bolt_request(request)))


async def slack_oauth_redirect(request: web.Request) -> web.Response:
    """Where Slack sends the browser back: the state is checked (cookie and store), the code exchanged
    (oauth.v2.access) and the installation stored; a page says how it went."""
    flow = request.app[SLACK_APP].oauth_flow
    assert flow is not None
    return await to_aiohttp_response(await flow.handle_callback(await to_bolt_request(request)))


def settle_heap_at_start(app: web.Application) -> None:
    """For a process that serves until it is stopped (`madoguchi serve`, `madoguchi demo`): once the application
    has started, what was made so far (modules, settings, the policy, the application) is collected once and
    frozen out of the garbage collector's passes (`gc.freeze`). Measured in the Slack latency bench: a full
    collection walked some 120,000 objects and stopped the process for about 60 ms, so every click under way
    waited (ack p99 at concurrency 50 went from about 60 to 115 ms in the runs it hit); frozen, a full pass took
    3-5 ms. Not done by `make_app`: a test process starts many applications, and what a frozen one leaves
    behind would never be collected."""

    async def freeze(_: web.Application) -> None:
        gc.collect()
        gc.freeze()

    app.on_startup.append(freeze)


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
