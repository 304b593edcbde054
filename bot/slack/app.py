"""The Slack edge: a Bolt AsyncApp that turns slash commands, button clicks and modal submissions into neutral
events, calls the conversation through one thread hop, and carries out its neutral response on Slack.

Facts from slack-bolt 1.30's source that shaped this module:
- `process_before_response=True`: the runner awaits the listener and returns `ack.response`; with False it
  polls for the ack every 10 ms (`asyncio.sleep(0.01)`), a floor of 10 ms on every answer.
- AsyncApp has no `token_verification_enabled`; with a static token its `AsyncSingleTeamAuthorization` calls
  `auth.test` lazily and caches it only once it returns, so simultaneous first requests each call it. We pass
  `authorize=` instead (`BotAuthorization`): one shared, warmable auth.test.
- `AsyncRequestVerification` (on by default) answers 401 to a bad or missing signature, and to a timestamp more
  than 5 minutes away (slack_sdk's SignatureVerifier), before any listener or global middleware runs.
- Bolt has nothing for `X-Slack-Retry-Num`; `SkipRetries` (a global middleware, so after verification) acks
  a retry without running a listener.
- Event listeners need no `ack()`: Bolt answers an Events API delivery itself once the listener returns.
- With `process_before_response=True` the HTTP answer waits for the whole listener, so work the person need not
  wait for (the ephemeral reply through response_url) runs in a background task once the decision is committed.

The thread hop goes to the database's writer (`Database.writer`), not the default executor: on SQLite one
thread that group-commits the calls waiting together (simultaneous clicks no longer sleep in SQLite's busy
handler, and share an fsync), on PostgreSQL a pool as large as the connection pool. The answer still waits for
the commit: a click acknowledged is a decision recorded. A click's commit waits for no fsync (its ack says nothing
to the person); its reply and its card updates are sent only once it is durable (`bot.writer.made_durable`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.people_first import PeopleFirst
from bot.slack.blockkit import (
    VALUE_ACTION,
    action_name,
    errors_response,
    read_submission,
    render_form,
    render_home,
    render_message,
)
from bot.slack.oauth import NOT_INSTALLED, TOKEN_GONE, InstalledBot, InstallFlow
from bot.writer import made_durable, on_writer
from handlers.conversation import FAILED, Conversation
from handlers.events import (
    ClickEvent,
    CloseForm,
    CommandEvent,
    FormErrors,
    OpenForm,
    Reply,
    Response,
    SubmitEvent,
    Who,
)
from handlers.home import home_for
from models.db import Database

if TYPE_CHECKING:  # only in OAuth mode: slack_sdk's SQLAlchemy stores are loaded when used
    from bot.slack.installations import Installations


log = logging.getLogger(__name__)

PLATFORM = "slack"
NEW_REQUEST = "new_request"  # the global shortcut's callback_id (see bot/slack/manifest.py)
ANY = re.compile(".*")  # every action_id / callback_id: the conversation tells them apart
JSON = dict[str, Any]
T = TypeVar("T")


def _nothing() -> None:
    pass


async def _hop(conversation: Conversation, fn: Callable[..., T], *args: Any, durable: bool = True,
               alone: bool = False) -> T:
    """Run a (synchronous) conversation call on the database's writer; returns once it is committed (and, unless
    `durable=False`, durable: see `bot.writer.on_writer` and `made_durable`)."""
    return await on_writer(conversation.engine.db, fn, *args, durable=durable, alone=alone)


class Background:
    """Tasks that run after the HTTP answer (replies nobody waits on). Kept referenced until done, so they are
    not garbage-collected mid-flight; their errors are logged and swallowed. With `people_first`, each waits for
    its turn behind the people's requests under way (bot/people_first.py)."""

    def __init__(self, people_first: PeopleFirst | None = None) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._people_first = people_first
        # work started while people wait: started together once they are answered (or `max_wait` is over), by ONE
        # task that waits for that, rather than a task each (a task's start was most of a reply's cost to the
        # click it follows: the event loop runs it right after the answer, when the next click may be arriving)
        self._parked: list[tuple[Awaitable[None], str]] = []
        self._launcher: asyncio.Task[None] | None = None

    def start(self, work: Awaitable[None], what: str) -> None:
        people = self._people_first
        if self._parked or (people is not None and not people.open):  # behind what is parked already: in order
            self._parked.append((work, what))
            if self._launcher is None:
                self._launcher = self._track(self._launch())
            return
        self._track(self._guarded(work, what))

    def _track(self, work: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _launch(self) -> None:
        assert self._people_first is not None
        try:
            await self._people_first.turn()
        finally:  # at shutdown too: nothing parked is dropped (`drain` waits for what this starts)
            self._launcher = None
            parked, self._parked = self._parked, []
            for work, what in parked:
                self._track(self._guarded(work, what))

    async def _guarded(self, work: Awaitable[None], what: str) -> None:
        try:
            if self._people_first is not None:
                await self._people_first.turn()  # at once, unless the gate closed again meanwhile
            await work
        except Exception:
            log.exception("%s failed", what)

    def alone(self) -> bool:
        """No other person's request is under way (known only with people first)."""
        return self._people_first is not None and self._people_first.alone()

    async def drain(self) -> None:
        """Wait for the tasks under way (at shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class BotAuthorization(AsyncAuthorize):
    """The bot's identity (auth.test), looked up once and shared by every request: Bolt's `authorize`.

    An `AsyncAuthorize` rather than a plain function: Bolt calls it as it is, where it would build a function's
    arguments by name on every request, and the one `AuthorizeResult` is made once (Bolt only reads it). Measured
    in the Slack latency bench: Bolt's authorization step took 23 us a click with the function, 8 for the bare app's
    static token."""

    def __init__(self, token: str, api_url: str) -> None:
        super().__init__()
        self._token = token
        self.client = AsyncWebClient(token=token, base_url=api_url)
        self._lookup: asyncio.Task[AsyncSlackResponse] | None = None
        self._result: AuthorizeResult | None = None

    async def __call__(self, **_: Any) -> AuthorizeResult:
        if self._result is not None:
            return self._result
        # One task for everybody: simultaneous first requests wait for the same auth.test. A failed lookup
        # is forgotten so the next request tries again.
        if self._lookup is None or (self._lookup.done() and self._lookup.exception() is not None):
            self._lookup = asyncio.ensure_future(self.client.auth_test())
        response = await self._lookup
        self._result = AuthorizeResult.from_auth_test_response(bot_token=self._token, auth_test_response=response)
        return self._result

    async def warm(self) -> None:
        """Look the bot up before the first request (at server start); a failure is retried on demand."""
        try:
            await self()
        except (SlackApiError, OSError) as exc:
            log.warning("auth.test failed at start (%s); retrying on the first request", exc)


class SlackProfiles:
    """Email and locale of Slack users (users.info), remembered in memory: the conversation needs them only to
    recognise a person on first contact, and a lookup costs a round trip inside Slack's 3 s."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, str], tuple[str | None, str | None]] = {}

    async def who(self, client: AsyncWebClient, team_id: str, user_id: str) -> Who:
        key = (team_id, user_id)
        if key not in self._known:
            self._known[key] = await _profile(client, user_id)
        email, locale = self._known[key]
        return Who(PLATFORM, team_id, user_id, email=email, locale=locale)


async def _profile(client: AsyncWebClient, user_id: str) -> tuple[str | None, str | None]:
    try:
        response = await client.users_info(user=user_id, include_locale=True)
    except SlackApiError as exc:
        # Without a profile the person can still be recognised if they were matched before.
        log.warning("users.info failed for %s: %s", user_id, exc.response.get("error"))
        return None, None
    user = response.get("user") or {}
    return (user.get("profile") or {}).get("email"), user.get("locale")


def build_slack_app(conversation: Conversation, *, token: str, signing_secret: str, api_url: str,
                    command: str = "/madoguchi", authorization: BotAuthorization | None = None,
                    changed: Callable[[], None] = _nothing, background: Background | None = None) -> AsyncApp:
    """The Bolt app for one workspace's bot token. Pass `authorization` to warm it at start (see server).
    `changed` is called after every conversation call that may have written (e.g. to wake the delivery loop);
    `background` runs the replies sent after the answer (pass one to drain it at shutdown)."""
    app = AsyncApp(
        # no token on the client: Bolt sets the authorized bot token on each request's copy of it
        client=AsyncWebClient(base_url=api_url),
        authorize=authorization or BotAuthorization(token, api_url),
        signing_secret=signing_secret,
        process_before_response=True,
        request_verification_enabled=True,
    )
    register(app, conversation, command, SlackProfiles(), changed, background or Background())
    return app


def build_oauth_slack_app(conversation: Conversation, *, signing_secret: str, api_url: str,
                          oauth: AsyncOAuthSettings, installations: Installations, command: str = "/madoguchi",
                          changed: Callable[[], None] = _nothing, background: Background | None = None) -> AsyncApp:
    """The Bolt app for every workspace that installed it through OAuth (bot/slack/oauth.py): each request runs
    with the bot token of its own workspace; uninstalling or revoking the token deletes the installation."""
    app = AsyncApp(
        client=AsyncWebClient(base_url=api_url),
        authorize=InstalledBot(installations),  # type: ignore[arg-type]  # an AsyncAuthorize is accepted too
        installation_store=installations,
        oauth_flow=InstallFlow(settings=oauth),  # its client for oauth.v2.access: the app's (on api_url)
        signing_secret=signing_secret,
        process_before_response=True,
        request_verification_enabled=True,
        user_facing_authorize_error_message=f"{NOT_INSTALLED('ja')}\n{NOT_INSTALLED('en')}",
    )
    app.enable_token_revocation_listeners()  # app_uninstalled, tokens_revoked: the installation is deleted

    def forget_a_gone_token(error: Exception, context: AsyncBoltContext) -> None:
        if isinstance(error, SlackApiError) and error.response.get("error") in TOKEN_GONE:
            # removed or installed again through another replica: the next request reads the installation afresh
            installations.forget(enterprise_id=context.enterprise_id, team_id=context.team_id)

    register(app, conversation, command, SlackProfiles(), changed, background or Background(),
             on_error=forget_a_gone_token)
    return app


def register(app: AsyncApp, conversation: Conversation, command: str, profiles: SlackProfiles,
             changed: Callable[[], None] = _nothing, background: Background | None = None,
             on_error: Callable[[Exception, AsyncBoltContext], None] | None = None) -> None:
    """Every listener of the edge, in one place. `on_error`: also told of a listener's error (after the log)."""
    app.middleware(SkipRetries())
    later = background or Background()

    @app.error
    async def failed(error: Exception, body: JSON, context: AsyncBoltContext) -> None:
        # A click or a command was acked already (their listeners' first step): Slack shows at most a warning
        # sign, and without a word the person would not know that nothing came of it. Said after the answer,
        # like any reply (an event, or a form without a response_url, has nowhere to say it: the log only).
        log.error("handling a Slack request failed", exc_info=error)
        if on_error is not None:
            on_error(error, context)
        later.start(_sorry(body, context), "error reply")
    db = conversation.engine.db

    async def answer(response: Response, who: Who, body: JSON, client: AsyncWebClient,
                     respond: AsyncRespond) -> None:
        # A plain ephemeral reply through response_url (valid for 30 minutes) goes after the HTTP answer;
        # views.open stays inline: its trigger_id expires 3 s after the click.
        # Both tell the person what the call did: a click's decision must be durable first (see on_click).
        if isinstance(response, Reply) and body.get("response_url"):
            later.start(_durable_ephemeral(db, response, who, body, client, respond), "ephemeral reply")
        else:
            await made_durable(db)
            await _answer(response, who, body, client, respond)

    @app.command(command)
    async def on_command(ack: AsyncAck, body: JSON, client: AsyncWebClient, respond: AsyncRespond) -> None:
        await ack()
        who = await profiles.who(client, body["team_id"], body["user_id"])
        response = await _hop(conversation, conversation.on_command, CommandEvent(who, body.get("text", "")))
        changed()
        await answer(response, who, body, client, respond)

    @app.block_action(ANY)
    async def on_click(ack: AsyncAck, body: JSON, client: AsyncWebClient, respond: AsyncRespond) -> None:
        await ack()
        action = body["actions"][0]
        if action.get("action_id") == VALUE_ACTION and (body.get("view") or {}).get("type") == "modal":
            return  # a form's input changed (dispatch_action): the form shows every field already
        who = await profiles.who(client, _team_id(body), body["user"]["id"])
        event = ClickEvent(who, action_name(action.get("action_id", "")), action.get("value", ""))
        # The decision is committed here, before the ack; not yet fsynced: the ack tells the person nothing (the
        # button stops spinning), and what tells them (the reply, the card update) waits until it is durable.
        # One turn of the loop first: clicks that arrived together reach this point too, and none of them is alone
        # (they go to the writer together, one commit); a click on its own is decided right here (bot/writer.py).
        await asyncio.sleep(0)
        response = await _hop(conversation, conversation.on_click, event, durable=False, alone=later.alone())
        changed()
        await answer(response, who, body, client, respond)
        if (body.get("view") or {}).get("type") == "home":
            # a decision taken from the home: show the home as it now stands (the card has moved on)
            await _publish_home(conversation, who, client)

    @app.shortcut(NEW_REQUEST)
    async def on_shortcut(ack: AsyncAck, body: JSON, client: AsyncWebClient, respond: AsyncRespond) -> None:
        await ack()
        who = await profiles.who(client, _team_id(body), body["user"]["id"])
        response = await _hop(conversation, conversation.on_shortcut, who)
        changed()
        await _answer(response, who, body, client, respond)

    @app.event("app_home_opened")
    async def on_home_opened(event: JSON, body: JSON, client: AsyncWebClient) -> None:
        if event.get("tab") != "home":  # the Messages tab needs nothing from us
            return
        who = await profiles.who(client, str(body.get("team_id", "")), event["user"])
        await _publish_home(conversation, who, client)

    @app.view_submission(ANY)
    async def on_submit(ack: AsyncAck, body: JSON, client: AsyncWebClient) -> None:
        who = await profiles.who(client, _team_id(body), body["user"]["id"])
        view = body["view"]
        values = view.get("state", {}).get("values", {})
        event = SubmitEvent(who, view.get("callback_id", ""), view.get("private_metadata", ""),
                            read_submission(values))
        # The conversation runs before the ack: only the ack can keep the modal open with its errors.
        response = await _hop(conversation, conversation.on_submit, event)
        changed()
        await _close_or_keep(response, who, values, ack, client)


async def _publish_home(conversation: Conversation, who: Who, client: AsyncWebClient) -> None:
    """Build the person's home (one thread hop) and publish it to their App Home tab."""
    home = await _hop(conversation, home_for, conversation, who)
    await client.views_publish(user_id=who.user_id, view=render_home(home, _locale(who)))


class SkipRetries(AsyncMiddleware):
    """Slack retries an Events API delivery it thinks failed; the first one was (or is being) handled, so a
    retry is acknowledged and nothing else happens. (Bolt carries on with whatever a middleware returns.)

    An `AsyncMiddleware` rather than a function: Bolt runs it as it is, where for a function it would build every
    argument it could pass (the request's payload views, say, respond...) on each request, about 20 us a click."""

    async def async_process(self, *, req: AsyncBoltRequest, resp: BoltResponse,
                            next: Callable[[], Awaitable[BoltResponse]]) -> BoltResponse:
        if _retry_number(req) > 0:
            return BoltResponse(status=200, body="")
        await next()
        return resp


def _retry_number(req: AsyncBoltRequest) -> int:
    """Slack's X-Slack-Retry-Num (0 or absent: the first delivery; Bolt turns Socket Mode's retry_attempt 0 into
    a header "0")."""
    values = req.headers.get("x-slack-retry-num") or ["0"]
    try:
        return int(values[0])
    except ValueError:
        return 1  # a retry header we cannot read is still a retry: never apply twice


def _team_id(body: JSON) -> str:
    user_team = (body.get("user") or {}).get("team_id")
    return str(user_team or (body.get("team") or {}).get("id", ""))


def _locale(who: Who) -> str:
    return who.locale or "ja"


async def _answer(response: Response, who: Who, body: JSON, client: AsyncWebClient,
                  respond: AsyncRespond) -> None:
    """Carry out the response to a command or a click (already acknowledged)."""
    match response:
        case OpenForm(form=form):
            await client.views_open(trigger_id=body["trigger_id"], view=render_form(form, _locale(who)))
        case Reply() as reply:
            await _ephemeral(reply, who, body, client, respond)
        case CloseForm(reply=Reply() as reply):
            await _ephemeral(reply, who, body, client, respond)
        case _:
            log.warning("nothing to show for %s outside a form", type(response).__name__)


async def _sorry(body: JSON, context: AsyncBoltContext) -> None:
    """Tell the person who acted that it failed: where they acted (response_url), else in a DM (a button in App
    Home or a modal). Repeating the action is safe: a decision applies once."""
    text = f"{FAILED('ja')}\n{FAILED('en')}"  # their language may be what could not be found: both, ja first
    url = body.get("response_url") or next((u.get("response_url") for u in body.get("response_urls") or []), None)
    user = context.user_id
    try:
        if url:
            await _to_response_url(url, context.client, {"text": text})
        elif user and body.get("type") == "block_actions":
            await context.client.chat_postMessage(channel=user, text=text)
    except Exception:  # nothing more to do: the failure itself is in the log
        log.warning("could not tell the person that their request failed", exc_info=True)


async def _to_response_url(url: str, client: AsyncWebClient, message: JSON) -> None:
    """An ephemeral answer through a response_url: what Bolt's `respond` does, but on the Web API client's session
    (shared while the server runs) instead of a new session and connection per reply."""
    await AsyncWebhookClient(url=url, session=client.session).send(**message, response_type="ephemeral",
                                                                   replace_original=False)


async def _durable_ephemeral(db: Database, reply: Reply, who: Who, body: JSON, client: AsyncWebClient,
                             respond: AsyncRespond) -> None:
    await made_durable(db)
    await _ephemeral(reply, who, body, client, respond)


async def _ephemeral(reply: Reply, who: Who, body: JSON, client: AsyncWebClient, respond: AsyncRespond) -> None:
    """Only the person sees it, where they acted: through response_url when Slack gave one (it works in any
    conversation, even a DM the bot is not in), else chat.postEphemeral to the channel."""
    message = render_message(reply.message, _locale(who))
    if body.get("response_url"):
        await _to_response_url(body["response_url"], client, message)
        return
    channel = body.get("channel_id") or (body.get("channel") or {}).get("id")
    if channel:
        await client.chat_postEphemeral(channel=channel, user=who.user_id, **message)
    else:  # a button in a modal or App Home: no conversation to answer in, so a DM
        await client.chat_postMessage(channel=who.user_id, **message)


async def _close_or_keep(response: Response, who: Who, values: JSON, ack: AsyncAck,
                         client: AsyncWebClient) -> None:
    """Answer a view_submission: errors keep the modal open; anything else closes it, then a DM says why."""
    match response:
        case FormErrors(errors=errors):
            await ack(response_action="errors", errors=errors_response(errors, values)["errors"])
            return
        case OpenForm(form=form):
            await ack(response_action="update", view=render_form(form, _locale(who)))
            return
    await ack()
    reply = response.reply if isinstance(response, CloseForm) else response
    if isinstance(reply, Reply):
        await client.chat_postMessage(channel=who.user_id, **render_message(reply.message, _locale(who)))
