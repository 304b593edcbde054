"""Chat channels the bot posts shared cards to, registered from the channel itself: a queue's Teams channel.

A Slack channel is named in workflows.yaml (`channel: "#it-help"`) and reached by that name. A Teams channel has no
name the bot can post to: it is reached through the conversation reference of a message someone wrote there, so the
channel is registered by typing `channel it` (`チャンネル IT`) in it. The row maps the policy's channel key (the same
"#it-help") to that reference, so one queue step has one shared card, on Slack or on Teams.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.base import JSONType, UTCDateTime, metadata

queue_channels = sa.Table(
    "queue_channels", metadata,
    sa.Column("platform", sa.String(20), primary_key=True),
    sa.Column("channel", sa.String(100), primary_key=True),  # the policy's key for the queue's channel
    sa.Column("address", JSONType, nullable=False),  # how the platform reaches it (Teams: conversation reference)
    sa.Column("name", sa.String(200), nullable=True),  # as the platform showed it, for people reading a report
    sa.Column("registered_by", sa.Integer, sa.ForeignKey("employees.id"), nullable=False),
    sa.Column("registered_at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True)
class QueueChannel:
    platform: str
    channel: str
    address: dict
    name: str | None
    registered_by: int
    registered_at: datetime


def put_queue_channel(conn: Connection, platform: str, channel: str, address: dict, name: str | None,
                      registered_by: int, now: datetime) -> None:
    """Register (or move) the queue channel: the latest registration wins."""
    values = {"address": address, "name": name, "registered_by": registered_by, "registered_at": now}
    updated = conn.execute(queue_channels.update().where(queue_channels.c.platform == platform,
                                                         queue_channels.c.channel == channel).values(**values))
    if updated.rowcount == 0:
        conn.execute(queue_channels.insert().values(platform=platform, channel=channel, **values))


def queue_channel(conn: Connection, platform: str, channel: str) -> QueueChannel | None:
    row = conn.execute(sa.select(queue_channels).where(queue_channels.c.platform == platform,
                                                       queue_channels.c.channel == channel)).first()
    if row is None:
        return None
    return QueueChannel(row.platform, row.channel, dict(row.address), row.name, row.registered_by, row.registered_at)
