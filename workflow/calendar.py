"""The business calendar: which days and which hours count as work.

Deadlines, nudges and "N business days" rules all run through this module, so that a request filed on the
Friday evening before Golden Week is not "overdue" on the Monday holiday, and nobody is pinged at 23:00.

A business day is a day that is not a weekend day, not a Japanese national holiday (振替休日 and 国民の休日
included, from the ``holidays`` package), not inside an annual company closure (typically 年末年始,
Dec 29 - Jan 3) and not a one-off closed date; a one-off open date (a working Saturday) overrides all of that.
Working time is ``work_start <= wall clock < work_end`` on a business day.

Every moment this module accepts must be timezone-aware (a naive datetime raises ``ValueError``: we never
guess a zone) and every moment it returns is aware and in UTC, the zone we store.

The calendar is immutable after construction, which is what makes its caches safe: national holidays are
loaded lazily once per year (shared by all calendars), and ``is_business_day``, the business-day steps and the
working period's bounds are memoized per date, so on the hot path (every submit and decision computes due
times) they are dict lookups.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from config.i18n import LocalText

MonthDay = tuple[int, int]
ClosureRange = tuple[MonthDay, MonthDay]

DEFAULT_ANNUAL_CLOSURES: tuple[ClosureRange, ...] = (((12, 29), (1, 3)),)

YEAR_END_CLOSURE = LocalText(ja="年末年始休業", en="Year-end and New Year closure")
ANNUAL_CLOSURE = LocalText(ja="会社休業日", en="Company holiday")
ONE_OFF_CLOSURE = LocalText(ja="臨時休業日", en="Company closure")

# A calendar with any business day at all has one within a few years (the week repeats, closures are
# annual); hitting this bound means the configuration closes every day, and we say so instead of looping.
_SEARCH_LIMIT_DAYS = 366 * 8

# 2000 is a leap year, so (2, 29) is accepted as a closure boundary.
_LEAP_YEAR = 2000


@cache
def japan() -> Any:
    """The holidays package's Japan, loaded by itself. `holidays.Japan` imports `holidays.countries`, whose
    __init__ imports every country it knows (about 250 modules: 8 MB of a server's memory and a fifth of a
    second), while Japan's own module needs none of them. Where the package is laid out otherwise, its own
    `holidays.Japan` (tests/unit/test_calendar.py checks both give the same holidays)."""
    path = Path(holidays.__file__).parent / "countries" / "japan.py"
    spec = importlib.util.spec_from_file_location("madoguchi_holidays_japan", path) if path.is_file() else None
    if spec is None or spec.loader is None:
        return holidays.Japan
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.Japan
    except Exception:  # a package that no longer loads this way: the ordinary import, slower, still right
        return holidays.Japan


@cache
def _japanese_holidays(year: int) -> Mapping[date, LocalText]:
    """National holidays of one year with both names; cached because the package computes them on demand."""
    ja = japan()(categories=(holidays.PUBLIC,), years=year, language="ja")
    en = japan()(categories=(holidays.PUBLIC,), years=year, language="en_US")
    # Read-only: the same mapping is shared by every calendar in the process.
    return MappingProxyType({day: LocalText(ja=name, en=en.get(day, name)) for day, name in ja.items()})


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone: {name!r}") from exc


def _require_aware(moment: datetime) -> datetime:
    if not isinstance(moment, datetime):
        raise TypeError(f"expected a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        # Guessing the zone of a naive time would silently shift deadlines by hours; refuse instead.
        raise ValueError(f"naive datetime {moment.isoformat()}: pass a timezone-aware datetime")
    return moment


def _require_date(d: date) -> date:
    # datetime is a subclass of date; accepting one would key the cache by moment instead of by day.
    if isinstance(d, datetime) or not isinstance(d, date):
        raise TypeError(f"expected a date, got {type(d).__name__}")
    return d


def _check_month_day(month_day: MonthDay) -> MonthDay:
    month, day = month_day
    try:
        date(_LEAP_YEAR, month, day)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid (month, day) in an annual closure: {month_day!r}") from exc
    return (month, day)


def _in_closure(month_day: MonthDay, closure: ClosureRange) -> bool:
    first, last = closure
    if first <= last:
        return first <= month_day <= last
    # The range wraps the year end (Dec 29 - Jan 3): inside if after the start or before the end.
    return month_day >= first or month_day <= last


class BusinessCalendar:
    """One company's working days and hours. Immutable after construction; safe to share."""

    def __init__(
        self,
        *,
        timezone: str = "Asia/Tokyo",
        work_start: time = time(9),
        work_end: time = time(18),
        weekend: frozenset[int] = frozenset({5, 6}),
        annual_closures: Sequence[ClosureRange] = DEFAULT_ANNUAL_CLOSURES,
        closed_dates: Iterable[date] = (),
        open_dates: Iterable[date] = (),
    ) -> None:
        """Build a calendar.

        ``weekend`` uses Monday=0. ``annual_closures`` are inclusive ``((month, day), (month, day))`` ranges
        that may wrap the year end. ``open_dates`` override everything else, ``closed_dates`` included.
        """
        self._tz = _zone(timezone)
        self.work_start, self.work_end = self._check_hours(work_start, work_end)
        self.weekend = self._check_weekend(weekend)
        self.annual_closures: tuple[ClosureRange, ...] = tuple(
            (_check_month_day(first), _check_month_day(last)) for first, last in annual_closures
        )
        self.closed_dates = frozenset(_require_date(d) for d in closed_dates)
        self.open_dates = frozenset(_require_date(d) for d in open_dates)
        # Wall-clock length of a working day: the unit of due_after's "business days".
        self.workday_length = datetime.combine(date.min, work_end) - datetime.combine(date.min, work_start)
        self._business_day: dict[date, bool] = {}
        self._moved: dict[tuple[date, int], date] = {}
        self._stepped: dict[tuple[date, int], date] = {}
        # a working period's bounds per day and zone (an SLA deadline walks them day by day)
        self._starts: dict[tuple[date, ZoneInfo], datetime] = {}
        self._ends: dict[tuple[date, ZoneInfo], datetime] = {}

    @staticmethod
    def _check_hours(work_start: time, work_end: time) -> tuple[time, time]:
        if work_start.tzinfo is not None or work_end.tzinfo is not None:
            raise ValueError("work_start and work_end are wall-clock times in the calendar's zone: no tzinfo")
        if not work_start < work_end:
            # Overnight shifts would make a working period span two dates; not supported.
            raise ValueError(f"work_start {work_start} must be before work_end {work_end}")
        return work_start, work_end

    @staticmethod
    def _check_weekend(weekend: Iterable[int]) -> frozenset[int]:
        days = frozenset(weekend)
        if not days <= frozenset(range(7)):
            raise ValueError(f"weekend days are 0 (Monday) to 6 (Sunday), got {sorted(days)}")
        return days

    @property
    def tz(self) -> ZoneInfo:
        """The calendar's own zone, used when a method is not given another one."""
        return self._tz

    # --- days -------------------------------------------------------------------------------------

    def is_business_day(self, d: date) -> bool:
        """True if ``d`` is a working day for the company."""
        cached = self._business_day.get(d)
        if cached is None:
            # A racing thread may compute the same value twice; both write the same bool, so no lock.
            cached = self._business_day[d] = self._compute_business_day(d)
        return cached

    def _compute_business_day(self, d: date) -> bool:
        _require_date(d)
        if d in self.open_dates:
            return True
        return d.weekday() not in self.weekend and self.holiday_text(d) is None

    def holiday_text(self, d: date) -> LocalText | None:
        """Why ``d`` is closed beyond the weekend: a national holiday or a company closure, in both languages.

        None for an ordinary day, a plain weekend day, and any open date (it is a working day, so there is
        nothing to explain). A national holiday wins over a closure it falls in (Jan 1 shows 元日).
        """
        _require_date(d)
        if d in self.open_dates:
            return None
        return _japanese_holidays(d.year).get(d) or self._closure_text(d)

    def holiday_name(self, d: date, locale: str | None = "ja") -> str | None:
        """The holiday or closure name of ``d`` for display, in Japanese unless another locale is given."""
        text = self.holiday_text(d)
        return None if text is None else text(locale)

    def _closure_text(self, d: date) -> LocalText | None:
        if d in self.closed_dates:
            return ONE_OFF_CLOSURE
        month_day = (d.month, d.day)
        for closure in self.annual_closures:
            if _in_closure(month_day, closure):
                return YEAR_END_CLOSURE if closure[0] > closure[1] else ANNUAL_CLOSURE
        return None

    def next_business_day(self, d: date) -> date:
        """The first business day strictly after ``d``."""
        return self._step(d, 1)

    def previous_business_day(self, d: date) -> date:
        """The last business day strictly before ``d``."""
        return self._step(d, -1)

    def _step(self, d: date, direction: Literal[1, -1]) -> date:
        key = (d, direction)
        found = self._stepped.get(key)
        if found is None:
            found = self._stepped[key] = self._search(d, direction)
        return found

    def _search(self, d: date, direction: Literal[1, -1]) -> date:
        for offset in range(1, _SEARCH_LIMIT_DAYS + 1):
            candidate = d + timedelta(days=offset * direction)
            if self.is_business_day(candidate):
                return candidate
        raise ValueError(f"no business day within {_SEARCH_LIMIT_DAYS} days of {d}: check the calendar")

    def add_business_days(self, d: date, n: int) -> date:
        """Move ``n`` business days from ``d`` (backwards if negative).

        ``n == 0`` returns ``d`` if it is a business day, else the next one. ``d`` itself need not be a
        business day: from a Saturday, +1 is the next business day and -1 the previous one.
        """
        # memoized like is_business_day: every activation shifts its due time by the same few day counts
        key = (d, n)
        moved = self._moved.get(key)
        if moved is None:
            moved = self._moved[key] = self._add_business_days(d, n)
        return moved

    def _add_business_days(self, d: date, n: int) -> date:
        if n == 0:
            return d if self.is_business_day(d) else self.next_business_day(d)
        direction: Literal[1, -1] = 1 if n > 0 else -1
        for _ in range(abs(n)):
            d = self._step(d, direction)
        return d

    def business_days(self, start: date, end: date) -> list[date]:
        """The business days in ``[start, end]``, both inclusive; empty if ``start > end``."""
        span = (end - start).days + 1
        days = (start + timedelta(days=offset) for offset in range(span))
        return [d for d in days if self.is_business_day(d)]

    def count_business_days(self, start: date, end: date) -> int:
        """How many business days ``[start, end]`` holds, both inclusive; 0 if ``start > end``."""
        return len(self.business_days(start, end))

    # --- hours ------------------------------------------------------------------------------------

    def _zone_for(self, tz: str | None) -> ZoneInfo:
        # A person abroad works the company's business days, but by the wall clock of their own zone.
        return self._tz if tz is None else _zone(tz)

    def _period_start(self, day: date, zone: ZoneInfo) -> datetime:
        start = self._starts.get((day, zone))
        if start is None:
            start = self._starts[(day, zone)] = datetime.combine(day, self.work_start, tzinfo=zone).astimezone(UTC)
        return start

    def _period_end(self, day: date, zone: ZoneInfo) -> datetime:
        end = self._ends.get((day, zone))
        if end is None:
            end = self._ends[(day, zone)] = datetime.combine(day, self.work_end, tzinfo=zone).astimezone(UTC)
        return end

    def is_working_time(self, moment: datetime, tz: str | None = None) -> bool:
        """True if ``moment`` falls in working hours of a business day, read in ``tz`` (default: ours)."""
        local = _require_aware(moment).astimezone(self._zone_for(tz))
        return self.is_business_day(local.date()) and self.work_start <= local.time() < self.work_end

    def next_working_moment(self, moment: datetime, tz: str | None = None) -> datetime:
        """``moment`` itself if it is working time, else the start of the next working period (UTC)."""
        zone = self._zone_for(tz)
        local = _require_aware(moment).astimezone(zone)
        day = local.date()
        if self.is_business_day(day) and local.time() < self.work_end:
            # Before work_start this is today's start; inside working hours it is the moment itself.
            return max(moment.astimezone(UTC), self._period_start(day, zone))
        return self._period_start(self.next_business_day(day), zone)

    def add_business_hours(self, moment: datetime, hours: float, tz: str | None = None) -> datetime:
        """The moment ``hours`` of working time after ``moment`` (counting from the next working moment)."""
        _check_amount(hours, "hours")
        return self._add_working_time(moment, timedelta(hours=hours), tz)

    def due_after(self, moment: datetime, business_days: float, tz: str | None = None) -> datetime:
        """An SLA deadline: ``business_days`` working days' worth of working time after ``moment``.

        With 09:00-18:00, Friday 15:00 + 2 business days is Tuesday 15:00, and Friday 23:00 + 2 is Tuesday
        18:00 (the clock starts at Monday 09:00 and a deadline at the very end of a day stays on that day).
        """
        _check_amount(business_days, "business_days")
        return self._add_working_time(moment, self.workday_length * business_days, tz)

    def _add_working_time(self, moment: datetime, amount: timedelta, tz: str | None) -> datetime:
        zone = self._zone_for(tz)
        cursor = self.next_working_moment(moment, tz)
        remaining = amount
        while True:
            day = cursor.astimezone(zone).date()
            period_end = self._period_end(day, zone)
            # "<=": a deadline that lands exactly at closing time belongs to this day, not the next morning.
            if cursor + remaining <= period_end:
                return cursor + remaining
            remaining -= period_end - cursor
            cursor = self._period_start(self.next_business_day(day), zone)


def _check_amount(amount: float, name: str) -> None:
    # NaN or infinity would loop forever in _add_working_time, and SLAs only run forwards.
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {amount!r}")
