"""What Slack's client does when a person acts in the playground: builds the payload Slack would send (slash
command, block_actions, view_submission, view_closed, shortcut, app_home_opened), signs it with the app's
signing secret, POSTs it to the bot's /slack/events, and carries out the answer the way Slack does (a modal's
`response_action`, an ephemeral reply in the ack body). So the playground drives the production Slack code path.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

from bot.playground.webapi import Hook, SlackWebApi
from bot.playground.workspace import APP_ID, JSON, OpenView, Workspace, view_payload


class ActionRefused(Exception):
    """The person's action cannot be carried out (unknown view or message, the bot answered with an error)."""


@dataclass
class Interactions:
    """`events_url`: the bot's /slack/events; `base_url`: where this emulator's response_url hooks live."""

    api: SlackWebApi
    signing_secret: str
    events_url: str
    base_url: str
    session: aiohttp.ClientSession | None = None

    @property
    def workspace(self) -> Workspace:
        return self.api.workspace

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    # ------------------------------------------------------------------------------------- people act

    async def message(self, user: str, channel: str, text: str) -> None:
        """A line typed in the message box: a slash command if it starts with '/', else a plain message."""
        conversation = self.workspace.find_channel(channel) or self.workspace.dm(user)
        if text.startswith("/"):
            command, _, rest = text.partition(" ")
            await self.command(user, conversation.id, command, rest.strip())
            return
        self.workspace.post(conversation, user, text)

    async def command(self, user: str, channel: str, command: str, text: str) -> None:
        person = self._person(user)
        conversation = self.workspace.find_channel(channel) or self.workspace.dm(user)
        fields = {"token": "playground", "team_id": self.workspace.team_id, "team_domain": "playground",
                  "channel_id": conversation.id, "channel_name": conversation.name.lstrip("#"),
                  "user_id": user, "user_name": person.email.split("@")[0], "command": command, "text": text,
                  "api_app_id": APP_ID, "is_enterprise_install": "false",
                  "response_url": self.api.issue_hook(self.base_url, Hook(user, conversation.id)),
                  "trigger_id": self.api.issue_trigger(user)}
        try:
            _, answer = await self._send(urlencode(fields))
        except ActionRefused as exc:
            if "HTTP 404" in str(exc):  # Bolt's answer when no listener takes the command
                raise ActionRefused(f"{command} is not a command of this app") from None
            raise
        self._reply_in_ack(user, conversation.id, answer)

    async def click(self, user: str, source: JSON, block_id: str, action: JSON, state: JSON | None = None) -> None:
        """A button or select in a message (`source` {kind: message, channel, ts}) or in a view (kind: view)."""
        acted = {**action, "block_id": block_id, "action_ts": f"{time.time():.6f}"}
        payload = {"type": "block_actions", "user": self._user(user), "api_app_id": APP_ID, "token": "playground",
                   "trigger_id": self.api.issue_trigger(user), "team": self._team(), "enterprise": None,
                   "is_enterprise_install": False, "actions": [acted]}
        if source.get("kind") == "view":
            opened = self._view(user, str(source.get("view_id", "")))
            payload["container"] = {"type": "view", "view_id": opened.id}
            payload["view"] = self._view_payload(opened, state or {})
        else:
            channel, ts = str(source.get("channel", "")), str(source.get("ts", ""))
            conversation = self.workspace.find_channel(channel)
            message = self.workspace.message(conversation, ts) if conversation else None
            if conversation is None or message is None or not conversation.visible_to(user):
                raise ActionRefused("that message is not there any more")
            payload["container"] = {"type": "message", "message_ts": ts, "channel_id": conversation.id,
                                    "is_ephemeral": message.only_for is not None}
            payload["channel"] = {"id": conversation.id, "name": conversation.name.lstrip("#")}
            payload["message"] = {"type": "message", "ts": ts, "text": message.text, "blocks": message.blocks or [],
                                  "user": message.user, "bot_id": self.workspace.bot_id}
            payload["state"] = {"values": {}}
            payload["response_url"] = self.api.issue_hook(self.base_url, Hook(user, conversation.id, ts))
        await self._send_payload(payload)

    async def submit(self, user: str, view_id: str, values: JSON) -> None:
        """The modal's submit button: Slack sends view_submission and does what the ack says."""
        opened = self._view(user, view_id)
        payload = {"type": "view_submission", "team": self._team(), "user": self._user(user), "api_app_id": APP_ID,
                   "token": "playground", "trigger_id": self.api.issue_trigger(user),
                   "view": self._view_payload(opened, values), "response_urls": [], "is_enterprise_install": False,
                   "enterprise": None}
        answer = await self._send_payload(payload) or {}
        action = answer.get("response_action")
        ws = self.workspace
        match action:
            case "errors":
                opened.errors = {str(k): str(v) for k, v in dict(answer.get("errors") or {}).items()}
                ws.touch()
            case "update":
                ws.replace_view(opened, dict(answer.get("view") or {}))
            case "push":
                ws.open_modal(user, dict(answer.get("view") or {}), push=True)
            case "clear":
                ws.close_modal(user, all_views=True)
            case _:
                ws.close_modal(user, opened.id)

    async def close_view(self, user: str, view_id: str) -> None:
        opened = self._view(user, view_id)
        if opened.view.get("notify_on_close"):
            await self._send_payload({"type": "view_closed", "team": self._team(), "user": self._user(user),
                                      "api_app_id": APP_ID, "token": "playground",
                                      "view": self._view_payload(opened, {}), "is_cleared": False})
        self.workspace.close_modal(user, opened.id)

    async def shortcut(self, user: str, callback_id: str) -> None:
        await self._send_payload({"type": "shortcut", "token": "playground", "action_ts": f"{time.time():.6f}",
                                  "team": self._team(), "user": self._user(user), "callback_id": callback_id,
                                  "trigger_id": self.api.issue_trigger(user), "is_enterprise_install": False,
                                  "enterprise": None})

    async def home_opened(self, user: str) -> None:
        self._person(user)
        now = time.time()
        event: JSON = {"type": "app_home_opened", "user": user, "channel": self.workspace.dm(user).id, "tab": "home",
                 "event_ts": f"{now:.6f}"}
        home = self.workspace.homes.get(user)
        if home is not None:
            event["view"] = {**home.view, "id": home.id, "hash": home.hash}
        body = {"token": "playground", "team_id": self.workspace.team_id, "api_app_id": APP_ID, "event": event,
                "type": "event_callback", "event_id": self.workspace.next_id("Ev"), "event_time": int(now),
                "authorizations": [{"enterprise_id": None, "team_id": self.workspace.team_id,
                                    "user_id": self.workspace.bot_user, "is_bot": True,
                                    "is_enterprise_install": False}],
                "is_ext_shared_channel": False}
        await self._send(json.dumps(body, ensure_ascii=False), content_type="application/json")

    # ------------------------------------------------------------------------------------- the wire

    async def _send_payload(self, payload: JSON) -> JSON | None:
        _, answer = await self._send(urlencode({"payload": json.dumps(payload, ensure_ascii=False)}))
        return answer

    async def _send(self, body: str, content_type: str = "application/x-www-form-urlencoded"
                    ) -> tuple[int, JSON | None]:
        """POST, signed as Slack signs (v0, HMAC-SHA256 over `v0:timestamp:body`). Returns the status and the
        JSON answer (None for an empty one); anything but 200 is refused as Slack would show it."""
        timestamp = str(int(time.time()))
        signature = SignatureVerifier(self.signing_secret).generate_signature(timestamp=timestamp, body=body)
        headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": timestamp,
                   "X-Slack-Signature": signature or ""}
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            async with self.session.post(self.events_url, data=body.encode(), headers=headers) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ActionRefused(f"the app did not answer ({type(exc).__name__})") from exc
        if status != 200:
            raise ActionRefused(f"the app answered HTTP {status}")
        return status, _json_or_none(text)

    def _reply_in_ack(self, user: str, channel: str, answer: JSON | None) -> None:
        """A slash command's ack may carry a message: Slack shows it to the person only (or in the channel)."""
        if not answer or not (answer.get("text") or answer.get("blocks")):
            return
        conversation = self.workspace.find_channel(channel) or self.workspace.dm(user)
        only_for = None if answer.get("response_type") == "in_channel" else user
        self.workspace.post(conversation, self.workspace.bot_user, str(answer.get("text") or ""),
                            answer.get("blocks"), only_for=only_for)

    # ------------------------------------------------------------------------------------- pieces

    def _person(self, user: str) -> Any:
        person = self.workspace.people.get(user)
        if person is None:
            raise ActionRefused(f"nobody called {user} in this workspace")
        return person

    def _user(self, user: str) -> JSON:
        person = self._person(user)
        return {"id": user, "username": person.email.split("@")[0], "name": person.email.split("@")[0],
                "team_id": self.workspace.team_id}

    def _team(self) -> JSON:
        return {"id": self.workspace.team_id, "domain": "playground"}

    def _view(self, user: str, view_id: str) -> OpenView:
        opened = self.workspace.find_view(view_id)
        if opened is None or (opened.user and opened.user != user):
            raise ActionRefused("that window is not open any more")
        return opened

    def _view_payload(self, opened: OpenView, values: JSON) -> JSON:
        return view_payload(opened, self.workspace, values)


def _json_or_none(text: str) -> JSON | None:
    if not text.strip():
        return None
    try:
        answer = json.loads(text)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None
