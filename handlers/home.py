"""A person's home (Slack's App Home tab): what waits for them, their requests, their delegations, their leave,
and the language it is all shown in, with a button to switch.

Built from the same pieces as the commands (`Conversation.inbox_cards`, `status_lines`), so the home and the
answers to `/madoguchi 承認` and `/madoguchi 状況` always agree. Each section is a few blocks; the whole home
stays well under Slack's 100 blocks per view (the renderer would cut the tail, and the tail is the leave).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from config.i18n import LocalText, normalize_locale
from handlers import broadcast, undelivered
from handlers.cards import escape
from handlers.commands import language_buttons, language_line
from handlers.conversation import NOT_REGISTERED, Conversation
from handlers.events import Who
from handlers.summaries import date_text
from handlers.views import Actions, Block, Context, Divider, Fields, Header, Home, Message, Text
from models import people
from models.people import Delegation, Employee
from workflow import leave
from workflow.leave_law import format_days

HOME_BLOCKS = 95  # Slack's view limit is 100: keep room so the renderer never has to cut
DELEGATIONS_SHOWN = 10

# Every sentence this module shows, in both languages.
NOT_REGISTERED_TITLE = LocalText.of("madoguchi へようこそ", "Welcome to madoguchi")
WAITING = LocalText.of("待っている申請", "Waiting for you")
WAITING_COUNT = LocalText.of("あなたの対応待ち: {n} 件", "{n} waiting for your decision")
WAITING_NONE = LocalText.of("対応待ちの申請はありません。", "Nothing is waiting for you.")
WAITING_MORE = LocalText.of("…ほか {n} 件（`{command} 承認` で一覧）", "…and {n} more (`{command} inbox` lists them)")
MINE = LocalText.of("あなたの申請", "Your requests")
MINE_NONE = LocalText.of("まだ申請はありません。`{command}` または「新規申請」ショートカットで申請できます。",
                         "No requests yet. Use `{command}` or the “New request” shortcut to file one.")
DELEGATIONS = LocalText.of("代理", "Delegations")
DELEGATIONS_NONE = LocalText.of("現在または今後の代理設定はありません。", "No delegations now or to come.")
GIVEN = LocalText.of("→ {name} さんに代理を依頼: {window}{types}", "→ {name} acts for you: {window}{types}")
RECEIVED = LocalText.of("← {name} さんの代理: {window}{types}", "← You act for {name}: {window}{types}")
ONLY_TYPES = LocalText.of("（{types} のみ）", " (only {types})")
LEAVE = LocalText.of("有給休暇", "Paid leave")
AVAILABLE = LocalText.of("残日数", "Days left")
PENDING = LocalText.of("申請中", "Pending")
DAYS = LocalText.of("{n} 日", "{n} days")
FIVE_DAY = LocalText.of("年5日の取得: {taken}/{required} 日（期限 {deadline}、あと {days} 日）",
                        "5 days a year: {taken}/{required} taken (by {deadline}, {days} days left)")
FIVE_DAY_SHORT = LocalText.of("⚠️ あと {n} 日の取得が必要です。", "⚠️ {n} more days must be taken.")
FIVE_DAY_DONE = LocalText.of("✅ 年5日の取得義務を満たしています。", "✅ The 5-day obligation is met.")
FIVE_DAY_NONE = LocalText.of("年5日の取得義務の対象となる付与はまだありません。",
                             "No grant yet brings the 5-day obligation.")


def home_for(conversation: Conversation, who: Who) -> Home:
    """The home of the person behind `who`; someone HR has not registered sees only a polite note."""
    person = conversation.identify(who)
    if person is None:
        return not_registered_home(who.locale)
    sections = [_mine(conversation, person), _delegations(conversation, person), _leave(conversation, person),
                _language(person, who)]
    sent = broadcast.home_section(conversation.engine, person)  # HR's recent broadcasts; [] for everyone else
    sections = [sent, *sections] if sent else sections
    stuck = undelivered.home_section(conversation.engine, person)  # admins: what could not be delivered
    sections = [stuck, *sections] if stuck else sections
    fixed = sum(len(s) for s in sections)
    # the inbox goes first and gets what the other sections leave of the block budget
    waiting = _waiting(conversation, person, HOME_BLOCKS - fixed)
    blocks: list[Block] = [*waiting]
    for section in sections:
        blocks += [Divider(), *section]
    return Home(tuple(blocks))


def not_registered_home(locale: str | None) -> Home:
    """The home of someone HR has not registered yet: the same words as every other answer to them."""
    lang = normalize_locale(locale)
    return Home((Header(NOT_REGISTERED_TITLE(lang)), Text(NOT_REGISTERED(lang), markdown=False)))


# ---------------------------------------------------------------------------------------------- sections


def _waiting(conversation: Conversation, person: Employee, budget: int) -> list[Block]:
    """Each waiting request's key lines and its buttons: header, fields, due date, Approve / Reject / Send back."""
    locale = person.locale
    count, cards = conversation.inbox_cards(person)
    blocks: list[Block] = [Header(WAITING(locale))]
    if not count:
        return [*blocks, Text(WAITING_NONE(locale), markdown=False)]
    blocks.append(Context(WAITING_COUNT(locale).format(n=count)))
    shown = 0
    for card in cards:
        lines = _key_lines(card)
        if len(blocks) + len(lines) + 1 >= budget:  # one kept for the "…and N more" line
            break
        blocks += lines
        shown += 1
    if count > shown:
        blocks.append(Context(WAITING_MORE(locale).format(n=count - shown, command=conversation.command_name)))
    return blocks


def _key_lines(card: Message) -> list[Block]:
    """An approval card without its route progress (the last context line): the home shows many at once.
    Its header becomes bold text, so the home's own headers still mark the sections."""
    contexts = [b for b in card.blocks if isinstance(b, Context)]
    progress = contexts[-1] if len(contexts) > 1 else None
    lines: list[Block] = []
    for block in card.blocks:
        if isinstance(block, Header):
            lines.append(Text(f"*{escape(block.text)}*"))
        elif isinstance(block, Fields | Actions) or (isinstance(block, Context) and block is not progress):
            lines.append(block)
    return lines


def _mine(conversation: Conversation, person: Employee) -> list[Block]:
    locale = person.locale
    lines = conversation.status_lines(person)
    if not lines:
        return [Header(MINE(locale)), Text(MINE_NONE(locale).format(command=conversation.command_name))]
    return [Header(MINE(locale)), Text("\n".join(lines), markdown=False)]


def _delegations(conversation: Conversation, person: Employee) -> list[Block]:
    """Delegations I gave and received that are in force now or start later, in my zone."""
    locale = person.locale
    engine = conversation.engine
    now = engine.clock()
    with engine.db.unit_of_work(write=False) as conn:
        found = people.delegations_involving(conn, person.id, now, DELEGATIONS_SHOWN)
        names = people.get_employees(conn, {d.from_id for d in found} | {d.to_id for d in found})
    if not found:
        return [Header(DELEGATIONS(locale)), Text(DELEGATIONS_NONE(locale), markdown=False)]
    lines = [_delegation_line(d, person, names, conversation) for d in found]
    return [Header(DELEGATIONS(locale)), Text("\n".join(lines), markdown=False)]


def _delegation_line(d: Delegation, person: Employee, names: dict[int, Employee],
                     conversation: Conversation) -> str:
    locale = person.locale
    given = d.from_id == person.id
    other = names.get(d.to_id if given else d.from_id)
    name = other.name(locale) if other else "?"
    zone = ZoneInfo(person.timezone)
    window = f"{d.starts_at.astimezone(zone):%Y-%m-%d %H:%M} – {d.ends_at.astimezone(zone):%Y-%m-%d %H:%M}"
    types = ""
    if d.request_types:
        titles = [conversation.policy.types[k].title(locale) if k in conversation.policy.types else k
                  for k in d.request_types]
        types = ONLY_TYPES(locale).format(types="、".join(titles) if locale == "ja" else ", ".join(titles))
    return (GIVEN if given else RECEIVED)(locale).format(name=name, window=window, types=types)


def _leave(conversation: Conversation, person: Employee) -> list[Block]:
    """Balance, what is asked for and waiting, and progress towards 年5日 with its deadline."""
    locale = person.locale
    engine = conversation.engine
    now = engine.clock()
    today = now.astimezone(engine.tz).date()
    with engine.db.unit_of_work() as conn:
        # grants due by law are stored lazily; without this a person hired years ago would see 0 days
        leave.sync_grants(conn, person, today, now)
        bal = leave.balance(conn, person, today, engine.calendar, engine.policy.company.hours_per_day)
    blocks: list[Block] = [Header(LEAVE(locale)),
                           Fields(((AVAILABLE(locale), _days(bal.available, locale)),
                                   (PENDING(locale), _days(bal.reserved, locale))))]
    five = bal.five_day
    if five is None:
        return [*blocks, Context(FIVE_DAY_NONE(locale))]
    deadline = five.window_end - timedelta(days=1)  # window_end is exclusive
    blocks.append(Text(FIVE_DAY(locale).format(taken=format_days(five.taken), required=format_days(five.required),
                                               deadline=date_text(deadline, locale), days=five.days_left),
                       markdown=False))
    short = FIVE_DAY_SHORT(locale).format(n=format_days(five.shortfall)) if five.shortfall > 0 \
        else FIVE_DAY_DONE(locale)
    return [*blocks, Context(short)]


def _days(n: Decimal, locale: str) -> str:
    return DAYS(locale).format(n=format_days(n))


def _language(person: Employee, who: Who) -> list[Block]:
    """The language shown, where it comes from, and a button to the other one (answered by on_click)."""
    return [Context(language_line(person.locale, person.locale_source, who.platform)),
            language_buttons(person.locale, person.locale_source, who.platform)]
