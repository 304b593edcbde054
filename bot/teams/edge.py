"""The Teams edge: a botbuilder-core 4.17 ActivityHandler on CloudAdapter at `POST /api/messages`, turning typed
words, Adaptive Card actions (Universal Actions, `Action.Execute`) and installs into neutral events, calling the
conversation through one thread hop (bot/writer.py), and carrying out its neutral response as Adaptive Cards
(bot/teams/adaptive.py).

How a response becomes Teams:
- Typed words (a message in the personal chat): a form or a reply is sent as a new card in the chat.
- A button (`adaptiveCard/action` invoke whose data is a click): the decision is committed before the invoke is
  answered; a reply comes back as the invoke's message (`application/vnd.microsoft.activity.message`); a form the
  click opens (a reason, a fix-and-resubmit) is sent as a new card, so the card clicked stays as it is until
  delivery updates it (every copy is updated from the stored activity ids).
- A form's submit: the invoke answers with the card that replaces the form: the outcome ("LV-2026-0001 を申請
  しました"), or the same form with each error under its input and what was typed kept (nothing stored), or the
  next form (the type picker's choice). Close folds the form into one line.
- Installs and first messages store the person's conversation reference (`chat_identities.address`), so delivery
  can reach them unprompted (`continue_conversation`).

SDK facts that shaped this module (botbuilder 4.17.1, read in its source and measured):
- Overriding `on_adaptive_card_invoke` makes CloudAdapter answer HTTP 500 (its dict body is serialized twice);
  `on_invoke_activity` returns `InvokeResponse(body=AdaptiveCardInvokeResponse(...))`, the model object.
- `CloudAdapter.process` reads `headers["Content-Type"]` (KeyError: 500 without one) and deserializes whatever
  JSON comes: `messages` checks the body first, so bad input gets a 4xx, never a 500.
- Without MICROSOFT_APP_ID the adapter authenticates nobody. That is for trying the bot locally (Microsoft's
  Agents Playground): it is logged loudly, and then only loopback clients are served (anyone else gets 401), since
  an unauthenticated activity can claim to come from anyone. With an app id, a request without a valid Bot
  Framework token gets 401 from the adapter and changes nothing.
- msrest costs ~7 ms of CPU per request unpatched: `msrest_fix.apply()` runs before the adapter is built.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import jwt
from aiohttp import web
from botbuilder.core import ActivityHandler, InvokeResponse, MessageFactory, TurnContext
from botbuilder.core.teams import TeamsInfo
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import Activity, ActivityTypes, Attachment, ChannelAccount
from botbuilder.schema import AdaptiveCardInvokeResponse as CardInvokeResponse
from msrest.serialization import Model

from bot.teams import adaptive, msrest_fix
from bot.teams.connectors import ReusedClients
from bot.teams.refs import CARD, JSON, PLATFORM, anonymous
from bot.writer import on_writer
from config.i18n import LocalText, normalize_locale
from config.settings import Settings
from handlers.conversation import FAILED, Conversation
from handlers.events import (
    CardNow,
    ClickEvent,
    CloseForm,
    CommandEvent,
    FormErrors,
    OpenForm,
    Place,
    Reply,
    Response,
    SubmitEvent,
    Who,
)
from handlers.views import Message, Text, line
from workflow.identity import remember_address

log = logging.getLogger(__name__)

CARD_ACTION = "adaptiveCard/action"
MESSAGE = "application/vnd.microsoft.activity.message"
ERROR = "application/vnd.microsoft.error"
MENTION = re.compile(r"<at>.*?</at>", re.DOTALL)

CLOSED = LocalText.of("フォームを閉じました。", "Form closed.")
FORM_SENT = LocalText.of("フォームを下に送りました。", "The form is below.")
DONE = LocalText.of("完了しました。", "Done.")
NOT_OURS = LocalText.of("このカードの操作はわかりませんでした。最新のメッセージからもう一度お試しください。",
                        "I could not tell what this card action is. Please try again from the latest message.")


class _Answer(CardInvokeResponse):
    """botbuilder's AdaptiveCardInvokeResponse with `value` of any JSON type: the model types it as a dict, so a
    message answer (a string) would fail to serialize (and a dict body instead of a model is serialized twice)."""

    _attribute_map = {**CardInvokeResponse._attribute_map, "value": {"key": "value", "type": "object"}}


class _Refusal(Model):
    """An invoke this bot does not handle: an HTTP 4xx with a plain error (a model: see `_Answer`)."""

    _attribute_map = {"error": {"key": "error", "type": "str"}}

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


@dataclass(frozen=True)
class _BotConfig:
    """What ConfigurationBotFrameworkAuthentication reads (attribute names are botbuilder's)."""

    APP_ID: str | None
    APP_PASSWORD: str | None
    APP_TENANTID: str | None
    APP_TYPE: str


def make_adapter(settings: Settings) -> CloudAdapter:
    """CloudAdapter for the configured credentials (SingleTenant, MultiTenant, UserAssignedMSI), or anonymous."""
    msrest_fix.apply()
    # botbuilder's TeamsChannelData model warns (msrest) about every channelData field it does not model, and Teams
    # sends several (source, legacy...): noise in the logs, not news
    logging.getLogger("msrest.serialization").setLevel(logging.ERROR)
    if anonymous(settings):
        log.warning("Teams: MICROSOFT_APP_ID is not set, so /api/messages authenticates NOBODY. This is for local "
                    "use (the Agents Playground): only loopback clients are served. Set MICROSOFT_APP_ID, "
                    "MICROSOFT_APP_PASSWORD and MICROSOFT_APP_TENANT_ID for a real tenant.")
    config = _BotConfig(settings.microsoft_app_id or None, settings.microsoft_app_password or None,
                        settings.microsoft_app_tenant_id or None, settings.microsoft_app_type or "MultiTenant")
    # the clients CloudAdapter would build for every activity are built once (bot/teams/connectors.py)
    adapter = CloudAdapter(ReusedClients(ConfigurationBotFrameworkAuthentication(config, logger=log)))
    adapter.on_turn_error = _on_turn_error
    return adapter


async def _on_turn_error(context: TurnContext, error: Exception) -> None:
    """A bug must not become a silent 500: log it, tell the person (when they wrote to us), answer an invoke."""
    log.error("Teams turn failed (%s %s)", context.activity.type, context.activity.name, exc_info=error)
    locale = normalize_locale(context.activity.locale)
    if context.activity.type == ActivityTypes.invoke:
        await context.send_activity(Activity(type=ActivityTypes.invoke_response, value=InvokeResponse(
            status=int(HTTPStatus.OK), body=_error(HTTPStatus.INTERNAL_SERVER_ERROR, FAILED(locale)))))
    elif context.activity.type == ActivityTypes.message:
        await context.send_activity(MessageFactory.text(FAILED(locale)))


class TeamsProfiles:
    """Email of Teams users (the connector's member lookup), remembered in memory: the conversation needs it only
    to recognise a person on first contact."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, str], str | None] = {}

    async def email(self, context: TurnContext) -> str | None:
        sender = context.activity.from_property
        key = (_tenant(context.activity), _user_id(sender))
        if key not in self._known:
            self._known[key] = await _member_email(context, sender)
        return self._known[key]


async def _member_email(context: TurnContext, sender: ChannelAccount) -> str | None:
    try:
        member = await TeamsInfo.get_member(context, sender.id)
    except Exception as exc:  # the connector said no (or is unreachable): known people are still recognised
        log.warning("Teams member lookup failed for %s: %s", sender.id, exc)
        return None
    return member.email or member.user_principal_name or None


class TeamsBot(ActivityHandler):
    """The listeners: messages, card actions, installs. `changed` is called after every conversation call that
    may have written (to wake the delivery loop)."""

    def __init__(self, conversation: Conversation, changed: Callable[[], None] = lambda: None) -> None:
        self.conversation, self.changed = conversation, changed
        self.profiles = TeamsProfiles()
        # identity -> what the reference last stored was made of (see _reference_key)
        self._addresses: dict[tuple[str, str], tuple[str | None, ...]] = {}

    # ------------------------------------------------------------------------------------------ activities

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        who = await self._who(turn_context)
        text = MENTION.sub("", turn_context.activity.text or "").strip()
        response = await self._call(self.conversation.on_command, CommandEvent(who, text, _place(turn_context)))
        await self._remember(turn_context, who)
        await self._send(turn_context, response, who)

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        await self._welcome(turn_context)

    async def on_members_added_activity(self, members_added: list[ChannelAccount],
                                        turn_context: TurnContext) -> None:
        # Teams sends this and an installationUpdate for one install: the welcome goes with the installationUpdate
        # only, or it would arrive twice; this one just remembers how to reach the person
        bot = turn_context.activity.recipient
        if any(m.id == (bot.id if bot else None) for m in members_added or []):
            who = await self._who(turn_context)
            await on_writer(self.conversation.engine.db, self.conversation.identify, who)  # a new identity: matched
            await self._remember(turn_context, who)

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        activity = turn_context.activity
        locale = normalize_locale(activity.locale)
        if activity.name != CARD_ACTION:
            return InvokeResponse(status=int(HTTPStatus.BAD_REQUEST),
                                  body=_Refusal(f"unknown invoke {activity.name!r}: this bot handles {CARD_ACTION}"))
        value: JSON = activity.value if isinstance(activity.value, dict) else {}
        action: JSON = value["action"] if isinstance(value.get("action"), dict) else {}
        data: JSON = action["data"] if isinstance(action.get("data"), dict) else {}
        verb = action.get("verb")
        asked = adaptive.read_action(data, verb if isinstance(verb, str) else None)
        if asked is None:
            return _invoke(_error(HTTPStatus.BAD_REQUEST, NOT_OURS(locale)))
        who = await self._who(turn_context)
        if asked.kind == "close":
            return _invoke(_card_answer(adaptive.render_message(line(CLOSED(locale)), locale)))
        if asked.kind == "click":
            response = await self._call(self.conversation.on_click, ClickEvent(who, asked.name, asked.value))
            await self._remember(turn_context, who)
            return _invoke(await self._clicked(turn_context, response, who))
        values = adaptive.read_submission(data)
        response = await self._call(self.conversation.on_submit, SubmitEvent(who, asked.name, asked.value, values))
        await self._remember(turn_context, who)
        return _invoke(_submitted(response, values, normalize_locale(who.locale)))

    # ------------------------------------------------------------------------------------------ responses

    async def _send(self, context: TurnContext, response: Response, who: Who) -> None:
        """Carry out the response to typed words: a new card in the chat."""
        locale = normalize_locale(who.locale)
        match response:
            case OpenForm(form=form):
                await context.send_activity(_card_activity(adaptive.render_form(form, locale)))
            case Reply(message=message) | CloseForm(reply=Reply(message=message)):
                await context.send_activity(_card_activity(adaptive.render_message(message, locale)))
            case _:
                log.warning("nothing to show for %s after typed words", type(response).__name__)

    async def _clicked(self, context: TurnContext, response: Response, who: Who) -> CardInvokeResponse:
        """The invoke's answer to a button: its reply as a message; a form it opens goes below as a new card."""
        locale = normalize_locale(who.locale)
        match response:
            case OpenForm(form=form):
                await context.send_activity(_card_activity(adaptive.render_form(form, locale)))
                return _message_answer(FORM_SENT(locale))
            case CardNow(message=message):  # a refresh: the card shown in place of the one Teams has
                return _card_answer(adaptive.render_message(message, locale))
            case Reply(message=message) | CloseForm(reply=Reply(message=message)):
                return _message_answer(_plain(message))
        return _message_answer(DONE(locale))

    async def _welcome(self, context: TurnContext) -> None:
        """The app was installed (or the bot added): remember how to reach the person, and say what it does."""
        who = await self._who(context)
        response = await self._call(self.conversation.on_command, CommandEvent(who, "help", _place(context)))
        await self._remember(context, who)
        await self._send(context, response, who)

    # ------------------------------------------------------------------------------------------ plumbing

    async def _who(self, context: TurnContext) -> Who:
        activity = context.activity
        email = await self.profiles.email(context)
        return Who(PLATFORM, _tenant(activity), _user_id(activity.from_property), email=email,
                   locale=activity.locale or None)

    async def _call(self, fn: Callable[..., Response], event: Any) -> Response:
        response = await on_writer(self.conversation.engine.db, fn, event)
        self.changed()
        return response

    async def _remember(self, context: TurnContext, who: Who) -> None:
        """Store the person's conversation reference when it is new or changed (personal chat only: a team
        channel's reference reaches the channel, not the person). Known unchanged ones cost nothing: compared by
        what makes the reference (msrest's serialize costs more than the rest of a click's edge work)."""
        activity = context.activity
        if (activity.conversation and activity.conversation.conversation_type not in (None, "personal")):
            return
        key, seen = (who.workspace, who.user_id), _reference_key(activity)
        if self._addresses.get(key) == seen:
            return
        if await on_writer(self.conversation.engine.db, _store_address, self.conversation, who, _reference(activity)):
            self._addresses[key] = seen  # someone HR has not registered yet is looked at again next time


def _reference_key(activity: Activity) -> tuple[str | None, ...]:
    """What the conversation reference of `_reference` is made of (botbuilder's
    TurnContext.get_conversation_reference, less the activity id): equal keys, equal references for our use."""
    conversation, bot, user = activity.conversation, activity.recipient, activity.from_property
    return (activity.service_url, activity.channel_id, activity.locale,
            conversation.id if conversation else None, conversation.tenant_id if conversation else None,
            conversation.conversation_type if conversation else None, conversation.name if conversation else None,
            bot.id if bot else None, bot.name if bot else None,
            user.id if user else None, user.name if user else None, user.aad_object_id if user else None)


def _reference(activity: Activity) -> JSON:
    """How to reach the activity's conversation unprompted: its conversation reference without the activity's own
    id, which changes with every activity (a proactive message is a new post, not a reply to this one; and an id
    kept in it would make every click look like a new address, a write of its own)."""
    reference: JSON = TurnContext.get_conversation_reference(activity).serialize()
    reference.pop("activityId", None)
    return reference


def _place(context: TurnContext) -> Place | None:
    """A team channel or group chat the words were written in (None: the person's own chat with the bot), with
    the reference that reaches it unprompted: for a channel the channel itself, not the thread of this message
    (Teams gives a message's conversation id as `<channel>;messageid=<thread>`)."""
    activity = context.activity
    kind = activity.conversation.conversation_type if activity.conversation else None
    if kind not in ("channel", "groupChat"):
        return None
    reference = _reference(activity)
    conversation = dict(reference.get("conversation") or {})
    data: JSON = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    channel: JSON = data["channel"] if isinstance(data.get("channel"), dict) else {}
    conversation["id"] = str(channel.get("id") or conversation.get("id", "")).split(";messageid=")[0]
    reference["conversation"] = conversation
    name = channel.get("name") or (activity.conversation.name if activity.conversation else None)
    return Place("channel" if kind == "channel" else "group", reference, str(name) if name else None)


def _store_address(conversation: Conversation, who: Who, reference: JSON) -> bool:
    """Whether the identity is known (its address is now the one given)."""
    with conversation.engine.db.unit_of_work() as conn:
        return remember_address(conn, who.platform, who.workspace, who.user_id, reference)


def _submitted(response: Response, values: dict[str, Any], locale: str) -> CardInvokeResponse:
    """The card that replaces a submitted form."""
    match response:
        case FormErrors(errors=errors, form=form) if form is not None:
            return _card_answer(adaptive.errors_card(form, errors, values, locale))
        case FormErrors(errors=errors):
            return _card_answer(adaptive.render_message(line("\n".join(errors.values())), locale))
        case OpenForm(form=form):
            return _card_answer(adaptive.render_form(form, locale))
        case Reply(message=message) | CloseForm(reply=Reply(message=message)):
            return _card_answer(adaptive.render_message(message, locale))
    return _card_answer(adaptive.render_message(line(DONE(locale)), locale))


def _invoke(body: CardInvokeResponse) -> InvokeResponse:
    # the model object, not a dict: CloudAdapter serializes the body itself (a dict is serialized twice: 500)
    return InvokeResponse(status=int(HTTPStatus.OK), body=body)


def _card_answer(card: JSON) -> CardInvokeResponse:
    return _Answer(status_code=int(HTTPStatus.OK), type=CARD, value=card)


def _message_answer(text: str) -> CardInvokeResponse:
    return _Answer(status_code=int(HTTPStatus.OK), type=MESSAGE, value=text)


def _error(status: HTTPStatus, text: str) -> CardInvokeResponse:
    return _Answer(status_code=int(status), type=ERROR, value={"code": status.phrase.replace(" ", ""), "message": text})


def _card_activity(card: JSON) -> Activity:
    return MessageFactory.attachment(Attachment(content_type=CARD, content=card))


def _plain(message: Message) -> str:
    """A reply as one plain line (an invoke's message answer shows no card)."""
    texts = [b.text for b in message.blocks if isinstance(b, Text)]
    return adaptive.truncate("\n".join(texts) if texts else message.fallback, 2000)


def _tenant(activity: Activity) -> str:
    tenant = activity.conversation.tenant_id if activity.conversation else None
    if not tenant and isinstance(activity.channel_data, dict):
        tenant = (activity.channel_data.get("tenant") or {}).get("id")
    return str(tenant or "")


def _user_id(sender: ChannelAccount | None) -> str:
    """The AAD object id where Teams gives one (the same person across bots), else the channel's user id."""
    if sender is None:
        return ""
    return str(sender.aad_object_id or sender.id or "")


# ------------------------------------------------------------------------------------------------ the route


async def messages(request: web.Request, adapter: CloudAdapter, bot: TeamsBot, loopback_only: bool) -> web.Response:
    """`POST /api/messages`: the body checked first (bad input gets a 4xx and changes nothing), then the adapter
    (which authenticates the request unless the bot is anonymous)."""
    if loopback_only and not _loopback(request.remote):
        return web.json_response({"error": "anonymous Teams bot: only loopback clients are served"},
                                 status=HTTPStatus.UNAUTHORIZED)
    if "application/json" not in request.headers.get("Content-Type", ""):
        return web.json_response({"error": "expected Content-Type: application/json"},
                                 status=HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "the body is not JSON"}, status=HTTPStatus.BAD_REQUEST)
    problem = _activity_problem(body)
    if problem:
        return web.json_response({"error": problem}, status=HTTPStatus.BAD_REQUEST)
    try:
        answer = await adapter.process(request, bot)
    except web.HTTPException as exc:  # 401 from the adapter's authentication, 415, 405
        return web.json_response({"error": exc.reason}, status=exc.status)
    except jwt.PyJWTError as exc:  # a token that is not even a JWT: botframework lets PyJWT's error through
        return web.json_response({"error": f"invalid Bot Framework token: {exc}"}, status=HTTPStatus.UNAUTHORIZED)
    return answer or web.Response(status=HTTPStatus.CREATED)


def _activity_problem(body: object) -> str | None:
    """Why a body is not an activity we can take, or None."""
    if not isinstance(body, dict):
        return "the body is not a JSON object (an activity)"
    if not isinstance(body.get("type"), str) or not body["type"]:
        return "the activity has no type"
    for part in ("from", "conversation", "recipient"):
        if not isinstance(body.get(part), dict) or not isinstance(body[part].get("id"), str):
            return f"the activity has no {part}.id"
    if not isinstance(body.get("serviceUrl"), str) or not body["serviceUrl"].startswith(("http://", "https://")):
        return "the activity has no serviceUrl"
    return None


def _loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False
