"""A queue's channel on Teams, registered from the channel: which queue steps a `channel <type>` means, who may
register it, and where a queue's shared card goes (`posts_to`).

A Slack channel is named in workflows.yaml and reached by name. A Teams channel is reached only through a
conversation reference, so someone of the queue (or an admin) types `channel it` in the channel; from then on the
type's queue steps with a `channel:` post their one shared card there when Slack is not configured. Registering
again (in another channel) moves it; the audit trail records who did it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.engine import Connection

from config.policy import Policy, StepSpec
from models import channels
from models.people import Employee
from workflow import audit

Refusal = Literal["no_type", "no_queue", "not_holder", "ambiguous"]


@dataclass(frozen=True)
class Registered:
    """Done: these steps' shared cards (the policy's channel keys) now go to the channel."""

    type_key: str
    channels: tuple[str, ...]
    steps: tuple[StepSpec, ...]


@dataclass(frozen=True)
class Refused:
    reason: Refusal
    type_key: str | None = None


def queue_steps(policy: Policy, type_key: str) -> list[StepSpec]:
    """The type's queue steps that have a shared channel card."""
    return [s for s in policy.types[type_key].route if s.kind == "queue" and s.channel is not None]


def types_with_channels(policy: Policy) -> list[str]:
    return [key for key in policy.types if queue_steps(policy, key)]


def may_register(person: Employee, step: StepSpec) -> bool:
    """Someone who holds the queue (its role, or the person named) or an admin."""
    if "admin" in person.roles:
        return True
    for ref in step.approver_refs:
        kind, _, name = ref.partition(":")
        if (kind == "role" and name in person.roles) or (kind == "person" and name.lower() == person.email.lower()):
            return True
    return False


def register(conn: Connection, policy: Policy, person: Employee, type_key: str | None, platform: str,
             address: dict, name: str | None, now: datetime) -> Registered | Refused:
    """Make this channel the one of the type's queue (the only type with one, when none is named)."""
    if type_key is None:
        candidates = types_with_channels(policy)
        if len(candidates) != 1:
            return Refused("ambiguous" if candidates else "no_queue")
        type_key = candidates[0]
    if type_key not in policy.types:
        return Refused("no_type")
    steps = queue_steps(policy, type_key)
    if not steps:
        return Refused("no_queue", type_key)
    if not all(may_register(person, s) for s in steps):
        return Refused("not_holder", type_key)
    keys = tuple(dict.fromkeys(str(s.channel) for s in steps))
    for key in keys:
        channels.put_queue_channel(conn, platform, key, address, name, person.id, now)
    audit.record(conn, now, [audit.Entry("queue.channel_registered", person.id, None,
                                         {"type": type_key, "platform": platform, "channels": list(keys),
                                          "name": name})])
    return Registered(type_key, keys, tuple(steps))


def registered_address(conn: Connection, platform: str, channel: str) -> dict | None:
    """Where the queue's shared card goes on this platform, if its channel was registered."""
    found = channels.queue_channel(conn, platform, channel)
    return found.address if found is not None else None
