"""Who is this chat user? A platform identity (Slack user in a workspace, Teams user in a tenant) mapped to an
employee, matched by email the first time and remembered after that.

Plain arguments rather than the handlers' `Who`: workflow/ knows no chat edge. Only active employees are
recognised, so someone HR has marked as having left can no longer file or decide anything from chat.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Connection

from models import people
from models.people import Employee


def identify(conn: Connection, platform: str, workspace: str, user_id: str, email: str | None,
             now: datetime) -> Employee | None:
    """The active employee behind a chat identity, or None when HR has not registered them (or they left).

    A known identity wins over the email: a person's chat account stays theirs even if their profile email
    changes. A new identity is matched by email (case-insensitive) and remembered, so later events that carry
    no email (most of Slack's) are recognised too.
    """
    known = people.employee_of_identity(conn, platform, workspace, user_id)
    if known is None and email and email.strip():
        known = _match_by_email(conn, platform, workspace, user_id, email, now)
    if known is None or not known.active:
        return None
    people.touch_identity(conn, platform, workspace, user_id, now)
    return known


def _match_by_email(conn: Connection, platform: str, workspace: str, user_id: str, email: str,
                    now: datetime) -> Employee | None:
    found = people.find_employee_by_email(conn, email)
    if found is None or not found.active:
        return None
    people.remember_identity(conn, found.id, platform, workspace, user_id, now)
    # Read back: if another process remembered this identity first, its row is the one that counts.
    return people.employee_of_identity(conn, platform, workspace, user_id)
