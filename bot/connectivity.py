"""`madoguchi check --connect`: can this process reach what it depends on? The database (and is its schema at
this version's head), Slack (`auth.test` with SLACK_BOT_TOKEN against SLACK_API_URL) and Teams (a token for the
bot from Microsoft's login endpoint, as the Bot Framework connector would get one). A part that is not
configured is skipped, not failed. No secret ever appears in what is reported."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Literal

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from config.settings import Settings
from models.db import Database
from models.schema import current_revision, head_revision

TIMEOUT = 10.0  # seconds: a check that hangs is a failed check
BOT_FRAMEWORK_SCOPE = "https://api.botframework.com/.default"  # what botframework-connector asks a token for
MULTI_TENANT_AUTHORITY = "botframework.com"  # the tenant a multi-tenant bot gets its token from


@dataclass(frozen=True)
class Check:
    name: str
    state: Literal["ok", "failed", "skipped"]
    detail: str


def check_all(settings: Settings) -> list[Check]:
    return [check_database(settings), check_slack(settings), check_teams(settings)]


def check_database(settings: Settings) -> Check:
    db = Database(settings.database_url, synchronous=settings.sqlite_synchronous)
    try:
        current, head = current_revision(db.engine), head_revision()
    except Exception as exc:  # connectivity problems come in many driver-specific shapes
        cause = getattr(exc, "orig", None) or exc
        return Check("database", "failed", f"unreachable: {type(cause).__name__}: {cause}")
    finally:
        db.dispose()
    if current != head:
        return Check("database", "failed", f"reachable, but the schema is at {current or 'nothing'}, expected "
                                           f"{head}: run `madoguchi db upgrade`")
    return Check("database", "ok", f"reachable, schema at {head}")


def check_slack(settings: Settings) -> Check:
    if not settings.slack_bot_token:
        return Check("Slack", "skipped", "skipped (not configured: SLACK_BOT_TOKEN)")
    client = WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url, timeout=int(TIMEOUT))
    try:
        answer = client.auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown error") if exc.response is not None else "unknown error"
        hint = " (SLACK_BOT_TOKEN is wrong or revoked)" if error in ("invalid_auth", "not_authed",
                                                                     "token_revoked", "account_inactive") else ""
        return Check("Slack", "failed", f"auth.test at {settings.slack_api_url} failed: {error}{hint}")
    except Exception as exc:  # unreachable host, TLS, timeout: urllib's many shapes
        return Check("Slack", "failed", f"cannot reach {settings.slack_api_url}: {type(exc).__name__}: {exc}")
    return Check("Slack", "ok", f"auth.test ok: workspace {answer.get('team')} ({answer.get('team_id')}), bot "
                                f"{answer.get('user')} ({answer.get('user_id')})")


def check_teams(settings: Settings) -> Check:
    app_id, app_type = settings.microsoft_app_id, (settings.microsoft_app_type or "MultiTenant")
    if not app_id:
        return Check("Teams", "skipped", "skipped (not configured: MICROSOFT_APP_ID)")
    if app_type.lower() == "userassignedmsi":
        return Check("Teams", "skipped", "skipped (a managed identity: its token comes from Azure at run time)")
    if not settings.microsoft_app_password:
        return Check("Teams", "failed", "MICROSOFT_APP_ID is set but MICROSOFT_APP_PASSWORD is not")
    tenant = settings.microsoft_app_tenant_id
    if app_type.lower() == "singletenant" and not tenant:
        return Check("Teams", "failed", "MICROSOFT_APP_TYPE is SingleTenant but MICROSOFT_APP_TENANT_ID is not set")
    url = f"{settings.microsoft_login_url.rstrip('/')}/{tenant or MULTI_TENANT_AUTHORITY}/oauth2/v2.0/token"
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": app_id,
                                   "client_secret": settings.microsoft_app_password,
                                   "scope": BOT_FRAMEWORK_SCOPE}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=form, method="POST"), timeout=TIMEOUT) as r:
            answer = json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return Check("Teams", "failed", f"no token for app {app_id} from {url}: {_login_error(exc)}")
    except Exception as exc:  # unreachable, TLS, timeout, not JSON
        return Check("Teams", "failed", f"cannot reach {url}: {type(exc).__name__}: {exc}")
    if not answer.get("access_token"):
        return Check("Teams", "failed", f"{url} answered without an access token")
    return Check("Teams", "ok", f"token for app {app_id} from {url} (expires in {answer.get('expires_in', '?')} s)")


def _login_error(exc: urllib.error.HTTPError) -> str:
    """Microsoft's error code and the first line of its description (which names the cause: AADSTS7000215
    invalid client secret, AADSTS700016 unknown application...)."""
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        body = {}
    description = str(body.get("error_description", "")).splitlines()[0:1]
    return f"HTTP {exc.code} {body.get('error', '')}".rstrip() + (f": {description[0]}" if description else "")
