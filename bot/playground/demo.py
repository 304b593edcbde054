"""The demo company behind `madoguchi demo`: a fresh SQLite database with the shipped org chart (30 people of
株式会社デモ across 役員, 営業, 経理, 法務, 総務, 情報システム, 人事), their statutory leave, a Slack identity each in
the playground workspace (and, for six of them, a Teams identity of Microsoft's Agents Playground's test users:
`PLAYGROUND_USERS`), and a few requests already under way so the first screen is not empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from bot.playground.workspace import Person, Workspace
from config.policy import Policy
from models import people
from models.db import Database
from models.schema import upgrade
from workflow import leave
from workflow.calendar import BusinessCalendar
from workflow.engine import Engine, calendar_for
from workflow.org_import import import_org

DEMO_COMPANY = Path(__file__).resolve().parents[2] / "config" / "defaults" / "demo_company.csv"
PLATFORM = "slack"
# Microsoft's Agents Playground (npm @microsoft/m365agentsplayground 0.2.28) comes with six test users in one
# tenant; the demo maps them to demo employees, so trying Teams locally needs no tenant and no sign-up. Ids as
# the Playground sends them (from.aadObjectId, conversation.tenantId); the first is who it types as by default.
PLAYGROUND_TENANT = "00000000-0000-0000-0000-0000000000001"
PLAYGROUND_USERS = (  # (Playground user, AAD object id, demo employee number)
    ("Alex Wilber", "00000000-0000-0000-0000-0000000000020", "E0004"),  # 高橋 由紀, sales: her leave waits
    ("Megan Bowen", "00000000-0000-0000-0000-0000000000021", "E0002"),  # 佐藤 健二, her manager: approves
    ("Adele Vance", "00000000-0000-0000-0000-0000000000022", "E0008"),  # 中村 恵子, general affairs, seal keeper
    ("Isaiah Langer", "00000000-0000-0000-0000-0000000000023", "E0005"),  # 田中 浩, head of finance
    ("Patti Fernandez", "00000000-0000-0000-0000-0000000000024", "E0011"),  # 加藤 あゆみ, HR (broadcasts)
    ("Lynne Robbins", "00000000-0000-0000-0000-0000000000025", "E0009"),  # 小林 大輔, IT and admin
)


@dataclass(frozen=True)
class DemoCompany:
    """Who is who in the demo, by Slack user id."""

    people: dict[str, str]  # Slack user id -> name
    first: str  # the person the page shows first: an employee with a request waiting on their manager


def slack_id(code: str | None, employee_id: int) -> str:
    """A stable Slack-looking user id per employee (U + the employee number)."""
    return f"U{(code or str(employee_id)).upper()}"


def seed(db: Database, policy: Policy, workspace: Workspace, *, csv: Path = DEMO_COMPANY,
         now: datetime | None = None) -> DemoCompany:
    """Migrate, import the org chart, grant leave, give everyone a Slack identity in `workspace`, and file a few
    requests. The database should be empty (the demo starts afresh each time)."""
    moment = now or datetime.now(UTC)
    upgrade(db.engine)
    report = import_org(db, csv.read_bytes(), now=moment)
    if report.errors:
        raise RuntimeError(f"the demo company file {csv} has problems: {report.errors[:3]}")
    names: dict[str, str] = {}
    by_email: dict[str, int] = {}
    with db.unit_of_work() as conn:
        departments = {d.id: d for d in people.all_departments(conn)}
        for person in people.all_employees(conn, active_only=True):
            leave.sync_grants(conn, person, moment.date(), moment)
            user_id = slack_id(person.code, person.id)
            department = departments.get(person.department_id) if person.department_id else None
            workspace.add_person(Person(
                id=user_id, name=person.name_ja, email=person.email, name_en=person.name_en,
                department=department.name_ja if department else "", roles=person.roles,
                locale="en-US" if person.locale.startswith("en") else "ja-JP", tz=person.timezone))
            people.remember_identity(conn, person.id, PLATFORM, workspace.team_id, user_id, moment)
            names[user_id] = person.name_ja
            by_email[person.email] = person.id
        teams = {code: aad for _, aad, code in PLAYGROUND_USERS}
        for person in people.all_employees(conn, active_only=True):
            if person.code in teams:  # a Teams identity too: reached there once their Playground has written
                people.remember_identity(conn, person.id, "teams", PLAYGROUND_TENANT, teams[person.code], moment)
    for name in sorted({s.channel for spec in policy.types.values() for s in spec.route if s.channel}):
        workspace.channel(workspace.next_id("C"), name)  # the queues' channels (e.g. #it-help), the bot in them
    _file_examples(Engine(db, policy, clock=lambda: moment), calendar_for(policy), by_email, moment.date())
    first = slack_id("E0003", 0)
    return DemoCompany(names, first if first in names else next(iter(names)))


def _file_examples(engine: Engine, calendar: BusinessCalendar, ids: dict[str, int], today: date) -> None:
    """Requests already under way: something for a manager to approve and for IT to claim."""
    day = calendar.add_business_days(today, 5)
    examples = [
        ("takahashi.yuki@example.jp", "leave",
         {"unit": "full", "period": {"start": day, "end": day}, "reason": "家族の用事"}),
        ("kimura.haruka@example.jp", "expense",
         {"purpose": "大阪出張（顧客訪問）", "items": [
             {"date": today.isoformat(), "payee": "JR東海", "amount": 14_170, "tax_rate": "10",
              "category": "travel", "invoice_number": "T7010705000725"},
             {"date": today.isoformat(), "payee": "ホテル大阪", "amount": 9_800, "tax_rate": "10",
              "category": "travel"}]}),
        ("hayashi.ren@example.jp", "it",
         {"category": "device", "subject": "ノートPCの画面がちらつく",
          "details": "外部モニターに繋ぐと画面がちらつきます。", "urgency": "normal"}),
    ]
    for email, kind, payload in examples:
        if email in ids and kind in engine.policy.types:
            engine.submit(ids[email], kind, payload)  # a refusal (e.g. a changed form) just leaves it out
