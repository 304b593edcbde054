"""Who is this chat user? A platform identity (Slack user in a workspace, Teams user in a tenant) mapped to an
employee, matched by email the first time and remembered after that. And which language they read.

Plain arguments rather than the handlers' `Who`: workflow/ knows no chat edge. Only active employees are
recognised, so someone HR has marked as having left can no longer file or decide anything from chat.

A person's language is, first, their own choice (`choose_language`), else what their chat platform last
reported (`identify` records it), else the org file's setting (see `models.people.Employee.locale`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from config.i18n import SUPPORTED_LOCALES, normalize_locale
from models import people
from models.people import Employee
from workflow import audit

LANGUAGE_CHOSEN = "employee.language_chosen"  # the audit event of a person's own choice
NOTIFY_CHOSEN = "employee.notify_platform_chosen"
PLATFORMS = ("slack", "teams")
# How often "last seen" is written: more often would make every click a second write transaction for an
# answer nobody needs to the minute (who is still using which chat account).
SEEN_EVERY = timedelta(hours=1)


def identify(conn: Connection, platform: str, workspace: str, user_id: str, email: str | None,
             now: datetime, locale: str | None = None) -> Employee | None:
    """The active employee behind a chat identity, or None when HR has not registered them (or they left).

    A known identity wins over the email: a person's chat account stays theirs even if their profile email
    changes. A new identity is matched by email (case-insensitive) and remembered, so later events that carry
    no email (most of Slack's) are recognised too. `locale` is the language the platform reports for the
    person (e.g. Slack's "en-US"); a supported one that differs from the last one seen is recorded.
    """
    known = people.employee_of_identity(conn, platform, workspace, user_id)
    if known is None and email and email.strip():
        known = _match_by_email(conn, platform, workspace, user_id, email, now)
    if known is None or not known.active:
        return None
    people.touch_identity(conn, platform, workspace, user_id, now)
    return _seen_locale(conn, known, locale, now)


def recognised(conn: Connection, platform: str, workspace: str, user_id: str, now: datetime,
               locale: str | None = None) -> Employee | None:
    """The employee behind a known identity when nothing about them needs writing: active, the same platform
    language as last time, and seen within `SEEN_EVERY`. Reads only, so an ordinary click or command costs no
    write transaction of its own (on SQLite a commit is an fsync). None means: call `identify` in a write."""
    found = people.identity_last_seen(conn, platform, workspace, user_id)
    if found is None:
        return None
    person, last_seen = found
    seen = normalize_locale(locale, default="")
    if not person.active or (seen and seen != person.platform_locale):
        return None
    if last_seen is None or now - last_seen >= SEEN_EVERY:
        return None
    return person


def remember_address(conn: Connection, platform: str, workspace: str, user_id: str, address: dict) -> bool:
    """Store how the platform reaches this identity unprompted (a Teams conversation reference), written only when
    it is new or changed; an identity nobody has matched to an employee gets none. Whether the identity is known
    (its address is now this one)."""
    known, stored = people.identity_address(conn, platform, workspace, user_id)
    if known and stored != address:
        people.set_identity_address(conn, platform, workspace, user_id, address)
    return known


def _match_by_email(conn: Connection, platform: str, workspace: str, user_id: str, email: str,
                    now: datetime) -> Employee | None:
    found = people.find_employee_by_email(conn, email)
    if found is None or not found.active:
        return None
    people.remember_identity(conn, found.id, platform, workspace, user_id, now)
    # Read back: if another process remembered this identity first, its row is the one that counts.
    return people.employee_of_identity(conn, platform, workspace, user_id)


def _seen_locale(conn: Connection, person: Employee, reported: str | None, now: datetime) -> Employee:
    """Record the platform's language for the person when it changed; a missing or unknown one (e.g. "fr-FR")
    changes nothing. Compared in memory first, so the usual event, with nothing new, writes nothing."""
    seen = normalize_locale(reported, default="")
    if not seen or seen == person.platform_locale:
        return person
    people.set_locale_column(conn, person.id, "platform_locale", seen, now)
    return replace(person, platform_locale=seen)


def choose_language(conn: Connection, employee_id: int, choice: str | None, now: datetime) -> Employee | None:
    """A person chooses their language ("ja" or "en"), or None to follow their platform (else the org's setting)
    again. Written, with an audit event, only when it changes the choice. Returns the person as they now stand,
    or None if they are unknown or no longer active."""
    if choice is not None and choice not in SUPPORTED_LOCALES:
        raise ValueError(f"unsupported language {choice!r}: one of {SUPPORTED_LOCALES} or None")
    person = people.get_employee(conn, employee_id)
    if person is None or not person.active:
        return None
    if people.set_locale_column(conn, employee_id, "locale_choice", choice, now):
        audit.record(conn, now, [audit.Entry(LANGUAGE_CHOSEN, employee_id, None, {
            "employee_id": employee_id, "from": person.locale_choice, "to": choice})])
    return replace(person, locale_choice=choice)


def choose_notify_platform(conn: Connection, employee_id: int, platform: str | None, now: datetime,
                           actor_id: int | None) -> bool:
    """Where a person's messages go: "slack" or "teams", or None for wherever they were last seen. Chosen by
    `actor_id` (the person; None: an operator at the command line); written, with an audit event, only when it
    changes. Whether it changed."""
    if platform is not None and platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r}: one of {PLATFORMS} or None")
    before = people.notify_platform(conn, employee_id)
    if not people.set_notify_platform(conn, employee_id, platform, now):
        return False
    audit.record(conn, now, [audit.Entry(NOTIFY_CHOSEN, actor_id, None, {
        "employee_id": employee_id, "from": before, "to": platform})])
    return True
