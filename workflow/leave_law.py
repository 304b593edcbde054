"""Annual paid leave under 労働基準法 39条, as pure rules.

What the law gives and takes, without any storage:

- **Grants.** After 6 months' service a worker gets 10 days, then 11, 12, 14, 16, 18 and 20 days at 1.5 to
  6.5 years of service, and 20 days every year after. Part-timers (at most 4 days and under 30 hours a week)
  get the pro-rata table for their days per week. Every schedule here assumes the worker attended at least
  80% of the scheduled days in each period: madoguchi does not track attendance, so a company must withhold
  a grant by hand when that condition fails. Schedules fixed by yearly days (年間所定労働日数) instead of
  days per week are not modelled either.
- **Expiry.** A grant is usable for two years (the unused part carries over one year, then lapses).
- **Units.** Full day, half day (AM/PM) and hourly leave (capped at 5 days' worth a year).
- **年5日の取得義務.** A worker newly granted 10 or more days must take 5 of them within a year of the grant;
  half days count 0.5, hourly leave does not count.

Day amounts are ``Decimal`` everywhere: half days and hours must add up exactly, which floats do not.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from itertools import count
from typing import Literal

from config.i18n import LocalText

FULL_TIME_DAYS: tuple[int, ...] = (10, 11, 12, 14, 16, 18, 20)
PART_TIME_DAYS: dict[int, tuple[int, ...]] = {
    4: (7, 8, 9, 10, 12, 13, 15),
    3: (5, 6, 6, 8, 9, 10, 11),
    2: (3, 4, 4, 5, 6, 6, 7),
    1: (1, 2, 2, 2, 3, 3, 3),
}

FIRST_GRANT_MONTHS = 6  # the first grant comes after six months' service...
GRANT_INTERVAL_MONTHS = 12  # ...and then one every year
VALIDITY_MONTHS = 24  # 時効: a grant lapses two years after it is made
PART_TIME_MAX_DAYS = 4
PART_TIME_HOURS_LIMIT = 30.0  # part-time means strictly under 30 hours a week

OBLIGATION_MIN_GRANT = Decimal(10)  # only a grant of 10+ days carries the 5-day obligation
OBLIGATION_DAYS = Decimal(5)
OBLIGATION_WINDOW_MONTHS = 12
HOURLY_CAP_DAYS = 5  # hourly leave: at most 5 days' worth a year

_HALF = Decimal("0.5")
_HOURLY_QUANTUM = Decimal("0.0001")

LeaveUnit = Literal["full", "am", "pm", "hourly"]


def _require_decimal(value: object, name: str) -> None:
    # A float slipping in (0.1 + 0.2) would make balances drift; fail at the boundary instead.
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, got {type(value).__name__}")


def add_months(d: date, months: int) -> date:
    """``d`` plus ``months`` calendar months, clamped to the month end (Aug 31 + 6 months = Feb 28/29)."""
    years, month_index = divmod(d.month - 1 + months, 12)
    year, month = d.year + years, month_index + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def period_end(start: date, months: int) -> date:
    """The exclusive end of a period of ``months`` starting on (and including) ``start``.

    民法143条: the period ends the day before the corresponding date, or at the month end when that date does
    not exist. So Oct 1 + 2 years ends after Sep 30 (exclusive end Oct 1), and a grant of Feb 29 stays usable
    through Feb 28 (exclusive end Mar 1), where plain month arithmetic would lose that last day.
    """
    one_day = timedelta(days=1)
    return add_months(start - one_day, months) + one_day


@dataclass(frozen=True)
class Grant:
    """Days granted on one date; usable while ``granted_on <= day < expires_on``."""

    granted_on: date
    days: Decimal
    expires_on: date

    def __post_init__(self) -> None:
        _require_decimal(self.days, "days")
        if self.days < 0:
            raise ValueError(f"a grant cannot be negative: {self.days}")
        if self.expires_on <= self.granted_on:
            raise ValueError(f"grant of {self.granted_on} expires on {self.expires_on}, not after it")

    @classmethod
    def of(cls, granted_on: date, days: Decimal | int) -> Grant:
        """A grant with the statutory two-year validity."""
        return cls(granted_on, Decimal(days), period_end(granted_on, VALIDITY_MONTHS))

    def is_valid_on(self, on: date) -> bool:
        """True if the grant can be drawn on ``on`` (the expiry date itself is already too late)."""
        return self.granted_on <= on < self.expires_on


def is_part_time(work_days_per_week: int, weekly_hours: float | None) -> bool:
    """True if the pro-rata (比例付与) table applies: at most 4 days AND under 30 hours a week.

    ``weekly_hours=None`` means the hours are not known and is read as under 30, so a 4-day worker gets the
    part-time table until HR records longer hours.
    """
    hours_under_limit = weekly_hours is None or weekly_hours < PART_TIME_HOURS_LIMIT
    return work_days_per_week <= PART_TIME_MAX_DAYS and hours_under_limit


def _grant_table(work_days_per_week: int, weekly_hours: float | None) -> tuple[int, ...]:
    if is_part_time(work_days_per_week, weekly_hours):
        return PART_TIME_DAYS[work_days_per_week]
    return FULL_TIME_DAYS


def grant_schedule(
    hire_date: date, until: date, work_days_per_week: int = 5, weekly_hours: float | None = None
) -> list[Grant]:
    """Every statutory grant from ``hire_date`` up to and including ``until``, oldest first.

    Grants come at 6, 18, 30, ... months of service; after the table ends, its last value repeats yearly.
    Assumes >= 80% attendance in every period (not tracked; see the module docstring). A worker with 0 work
    days a week gets nothing.
    """
    if not 0 <= work_days_per_week <= 7:
        raise ValueError(f"work_days_per_week must be 0..7, got {work_days_per_week}")
    if work_days_per_week == 0:
        return []
    table = _grant_table(work_days_per_week, weekly_hours)
    grants: list[Grant] = []
    for index in count():
        # Each date is computed from the hire date, not from the previous grant, so a month-end clamp
        # (Feb 28) does not stick to later years (a hire on Aug 31 is back to Feb 29 in leap years).
        granted_on = add_months(hire_date, FIRST_GRANT_MONTHS + GRANT_INTERVAL_MONTHS * index)
        if granted_on > until:
            break
        grants.append(Grant.of(granted_on, table[min(index, len(table) - 1)]))
    return grants


@dataclass(frozen=True)
class GrantUse:
    """How much of one grant is already used (taken or reserved by approved requests)."""

    grant: Grant
    used: Decimal

    def __post_init__(self) -> None:
        _require_decimal(self.used, "used")
        if not 0 <= self.used <= self.grant.days:
            raise ValueError(
                f"used {self.used} is outside 0..{self.grant.days} for the grant of {self.grant.granted_on}"
            )

    @property
    def remaining(self) -> Decimal:
        return self.grant.days - self.used


def _usable(uses: Sequence[GrantUse], on: date) -> list[GrantUse]:
    """The uses whose grant is valid on ``on``, oldest grant first (it expires first)."""
    grants = [use.grant for use in uses]
    if len(set(grants)) != len(grants):
        # Two rows for one grant would count its days twice; that is a caller bug, not a balance.
        raise ValueError("each grant may appear only once in uses")
    valid = (use for use in uses if use.grant.is_valid_on(on))
    return sorted(valid, key=lambda use: (use.grant.granted_on, use.grant.expires_on))


def available_on(uses: Sequence[GrantUse], on: date) -> Decimal:
    """Days that can still be taken on ``on``: what is left of every grant valid that day."""
    return sum((use.remaining for use in _usable(uses, on)), Decimal(0))


def format_days(days: Decimal) -> str:
    """Days as a person writes them: 3.5, 5 (never 5E+0 or 3.5000)."""
    # Decimal("3.5000") -> "3.5", Decimal("5") -> "5", never "5E+0".
    return format(days.normalize(), "f")


class InsufficientLeave(Exception):
    """A request asks for more paid leave than the worker has left on that day."""

    def __init__(self, available: Decimal, requested: Decimal) -> None:
        self.available = available
        self.requested = requested
        self.message = _insufficient_message(available, requested)
        super().__init__(self.message.en)


def _insufficient_message(available: Decimal, requested: Decimal) -> LocalText:
    left, asked = format_days(available), format_days(requested)
    left_en, asked_en = f"{left} {_day_word(available)}", f"{asked} {_day_word(requested)}"
    return LocalText(
        ja=f"有給休暇の残日数が足りません（残り {left} 日、申請 {asked} 日）",
        en=f"Not enough paid leave left ({left_en} left, {asked_en} requested)",
    )


def _day_word(days: Decimal) -> str:
    return "day" if days == 1 else "days"


def allocate(uses: Sequence[GrantUse], on: date, days: Decimal) -> list[tuple[Grant, Decimal]]:
    """Take ``days`` from the grants valid on ``on``, oldest first, so carried-over days go before they lapse.

    Returns ``(grant, days taken from it)`` pairs with positive amounts. Raises ``InsufficientLeave`` if the
    valid grants hold less than ``days`` in total.
    """
    _require_decimal(days, "days")
    if days <= 0:
        raise ValueError(f"days to allocate must be positive, got {days}")
    usable = _usable(uses, on)
    available = sum((use.remaining for use in usable), Decimal(0))
    if available < days:
        raise InsufficientLeave(available=available, requested=days)
    taken: list[tuple[Grant, Decimal]] = []
    still_needed = days
    for use in usable:
        portion = min(use.remaining, still_needed)
        if portion > 0:
            taken.append((use.grant, portion))
            still_needed -= portion
        if still_needed == 0:
            break
    return taken


def hours_per_leave_day(hours_per_day: Decimal = Decimal(8)) -> Decimal:
    """Hours that make one day of hourly leave: the daily hours rounded UP to a whole hour.

    労基則24条の4: a 7.5-hour day counts as 8 hours for hourly leave, so 8 hourly hours use one day.
    """
    _require_decimal(hours_per_day, "hours_per_day")
    if hours_per_day <= 0:
        raise ValueError(f"hours_per_day must be positive, got {hours_per_day}")
    return hours_per_day.to_integral_value(rounding=ROUND_CEILING)


def unit_days(unit: LeaveUnit, hours: Decimal | None = None, hours_per_day: Decimal = Decimal(8)) -> Decimal:
    """Days one leave entry uses: full 1, am/pm 0.5, hourly ``hours / hours_per_leave_day`` (4 places).

    Hourly leave is taken in whole hours (the law has no smaller unit), from 1 up to one day's worth.
    """
    if unit not in ("full", "am", "pm", "hourly"):
        raise ValueError(f"unknown leave unit: {unit!r}")
    if unit != "hourly":
        if hours is not None:
            # Hours on a day or half-day entry mean the caller mixed up units; do not guess which was meant.
            raise ValueError(f"{unit!r} leave takes no hours")
        return Decimal(1) if unit == "full" else _HALF
    day_hours = hours_per_leave_day(hours_per_day)
    if hours is None:
        raise ValueError("hourly leave needs hours")
    _require_decimal(hours, "hours")
    if hours != hours.to_integral_value() or not 1 <= hours <= day_hours:
        raise ValueError(f"hourly leave is 1 to {day_hours} whole hours, got {hours}")
    # 1/7 of a day is not exact in decimal; 4 places keeps a year of hourly entries within a rounding hair.
    return (hours / day_hours).quantize(_HOURLY_QUANTUM, rounding=ROUND_HALF_UP)


def hourly_cap_hours(hours_per_day: Decimal = Decimal(8)) -> Decimal:
    """The most hourly leave a worker may take in a year: 5 days' worth (40 hours for 7.5- or 8-hour days)."""
    return HOURLY_CAP_DAYS * hours_per_leave_day(hours_per_day)


@dataclass(frozen=True)
class Taken:
    """One leave entry already taken (or approved) on a date."""

    on: date
    unit: LeaveUnit
    days: Decimal

    def __post_init__(self) -> None:
        _require_decimal(self.days, "days")


@dataclass(frozen=True)
class FiveDayStatus:
    """Progress towards 年5日の取得義務 for one grant's one-year window."""

    granted_on: date
    window_end: date  # exclusive: granted_on + 1 year (see period_end)
    taken: Decimal
    required: Decimal
    shortfall: Decimal
    days_left: int  # calendar days from as_of to window_end


def _obligation_days(unit: LeaveUnit) -> Decimal:
    # The law counts by unit, not by what a day is worth in the balance: hourly leave never counts.
    return {"full": Decimal(1), "am": _HALF, "pm": _HALF}.get(unit, Decimal(0))


def five_day_status(grants: Sequence[Grant], taken: Sequence[Taken], as_of: date) -> FiveDayStatus | None:
    """The 5-day obligation of the most recent 10+ day grant whose one-year window contains ``as_of``.

    None when no such window is open (e.g. a part-timer's 7-day grant carries no obligation). Only leave
    taken inside the window counts: full days 1, half days 0.5, hourly leave 0. When windows overlap (a
    grant brought forward) the newest grant is reported; the law's pro-rata rule for overlaps is not applied.
    """
    grant = _obligation_grant(grants, as_of)
    if grant is None:
        return None
    window_end = period_end(grant.granted_on, OBLIGATION_WINDOW_MONTHS)
    counted = sum(
        (_obligation_days(t.unit) for t in taken if grant.granted_on <= t.on < window_end), Decimal(0)
    )
    return FiveDayStatus(
        granted_on=grant.granted_on,
        window_end=window_end,
        taken=counted,
        required=OBLIGATION_DAYS,
        shortfall=max(OBLIGATION_DAYS - counted, Decimal(0)),
        days_left=(window_end - as_of).days,
    )


def _obligation_grant(grants: Sequence[Grant], as_of: date) -> Grant | None:
    open_windows = [
        g
        for g in grants
        if g.days >= OBLIGATION_MIN_GRANT
        and g.granted_on <= as_of < period_end(g.granted_on, OBLIGATION_WINDOW_MONTHS)
    ]
    return max(open_windows, key=lambda g: g.granted_on, default=None)
