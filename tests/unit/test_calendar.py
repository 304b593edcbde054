"""Unit tests for workflow.calendar: business days, working hours and SLA due times."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.i18n import LocalText
from workflow.calendar import BusinessCalendar, japan

TOKYO = ZoneInfo("Asia/Tokyo")
LONDON = ZoneInfo("Europe/London")

CAL = BusinessCalendar()


def tokyo(*args: int) -> datetime:
    return datetime(*args, tzinfo=TOKYO)


def in_tokyo(moment: datetime) -> datetime:
    return moment.astimezone(TOKYO)


# --- days ------------------------------------------------------------------------------------------------


class TestGoldenWeek2026:
    @pytest.mark.parametrize(
        ("day", "name"),
        [
            (date(2026, 4, 29), "昭和の日"),
            (date(2026, 5, 3), "憲法記念日"),
            (date(2026, 5, 4), "みどりの日"),
            (date(2026, 5, 5), "こどもの日"),
            (date(2026, 5, 6), "振替休日"),
        ],
    )
    def test_holidays_are_closed_and_named(self, day: date, name: str) -> None:
        assert not CAL.is_business_day(day)
        assert CAL.holiday_name(day) == name

    def test_days_between_holidays_are_open(self) -> None:
        assert CAL.is_business_day(date(2026, 4, 30))
        assert CAL.is_business_day(date(2026, 5, 1))
        assert CAL.is_business_day(date(2026, 5, 7))

    def test_add_two_business_days_skips_the_whole_week(self) -> None:
        assert CAL.add_business_days(date(2026, 4, 30), 2) == date(2026, 5, 7)

    def test_count_over_golden_week(self) -> None:
        # Apr 27 - May 8: 10 weekdays, minus Apr 29, May 4, 5, 6.
        assert CAL.count_business_days(date(2026, 4, 27), date(2026, 5, 8)) == 6

    def test_business_days_listing(self) -> None:
        assert CAL.business_days(date(2026, 4, 29), date(2026, 5, 7)) == [
            date(2026, 4, 30),
            date(2026, 5, 1),
            date(2026, 5, 7),
        ]


class TestNationalHolidayBetweenHolidays:
    def test_holidays_package_agrees_it_is_a_holiday(self) -> None:
        japan = holidays.Japan(categories=("public",), years=2026, language="ja")
        assert japan.get(date(2026, 9, 21)) == "敬老の日"
        assert date(2026, 9, 22) in japan
        assert japan.get(date(2026, 9, 23)) == "秋分の日"

    def test_kokumin_no_kyujitsu_is_closed(self) -> None:
        assert not CAL.is_business_day(date(2026, 9, 22))
        assert CAL.holiday_name(date(2026, 9, 22)) == "国民の休日"
        assert CAL.holiday_name(date(2026, 9, 22), "en") == "National Holiday"

    def test_silver_week_2026(self) -> None:
        # Fri Sep 18 + 1 business day skips Sat-Wed (weekend, 敬老の日, 国民の休日, 秋分の日).
        assert CAL.add_business_days(date(2026, 9, 18), 1) == date(2026, 9, 24)


class TestNewYearClosure:
    @pytest.mark.parametrize(
        "day", [date(2026, 12, 29), date(2026, 12, 31), date(2027, 1, 2), date(2027, 1, 3)]
    )
    def test_closure_days_are_closed(self, day: date) -> None:
        assert not CAL.is_business_day(day)

    def test_edges_of_the_closure(self) -> None:
        assert CAL.is_business_day(date(2026, 12, 28))
        assert CAL.is_business_day(date(2027, 1, 4))

    def test_closure_is_named_and_new_years_day_keeps_its_own_name(self) -> None:
        assert CAL.holiday_name(date(2026, 12, 30)) == "年末年始休業"
        assert CAL.holiday_name(date(2027, 1, 1)) == "元日"
        assert CAL.holiday_text(date(2026, 12, 30)) == LocalText(
            ja="年末年始休業", en="Year-end and New Year closure"
        )

    def test_due_from_the_last_afternoon_lands_in_january(self) -> None:
        due = CAL.due_after(tokyo(2026, 12, 28, 17), 1)
        assert in_tokyo(due) == tokyo(2027, 1, 4, 17)
        assert in_tokyo(due).date() >= date(2027, 1, 4)

    def test_next_business_day_over_the_closure(self) -> None:
        assert CAL.next_business_day(date(2026, 12, 28)) == date(2027, 1, 4)
        assert CAL.previous_business_day(date(2027, 1, 4)) == date(2026, 12, 28)

    def test_no_closure_when_configured_without(self) -> None:
        cal = BusinessCalendar(annual_closures=())
        assert cal.is_business_day(date(2026, 12, 29))
        assert not cal.is_business_day(date(2027, 1, 1))  # 元日 is still a national holiday

    def test_a_non_wrapping_annual_closure(self) -> None:
        cal = BusinessCalendar(annual_closures=(((8, 13), (8, 16)),))
        assert not cal.is_business_day(date(2026, 8, 13))
        assert cal.holiday_name(date(2026, 8, 14)) == "会社休業日"
        assert cal.is_business_day(date(2026, 8, 17))
        assert cal.is_business_day(date(2026, 12, 29))

    def test_invalid_closure_day_is_rejected(self) -> None:
        with pytest.raises(ValueError):
            BusinessCalendar(annual_closures=(((2, 30), (3, 1)),))


class TestWeekendsAndOneOffs:
    def test_weekend(self) -> None:
        assert not CAL.is_business_day(date(2026, 6, 6))  # Saturday
        assert not CAL.is_business_day(date(2026, 6, 7))  # Sunday
        assert CAL.is_business_day(date(2026, 6, 8))
        assert CAL.holiday_name(date(2026, 6, 6)) is None  # a plain weekend has no name

    def test_friday_plus_one_is_monday(self) -> None:
        assert CAL.add_business_days(date(2026, 6, 5), 1) == date(2026, 6, 8)

    def test_zero_days(self) -> None:
        assert CAL.add_business_days(date(2026, 6, 5), 0) == date(2026, 6, 5)
        assert CAL.add_business_days(date(2026, 6, 6), 0) == date(2026, 6, 8)

    def test_negative_days(self) -> None:
        assert CAL.add_business_days(date(2026, 6, 8), -1) == date(2026, 6, 5)
        assert CAL.add_business_days(date(2026, 5, 7), -2) == date(2026, 4, 30)
        assert CAL.add_business_days(date(2026, 6, 6), -1) == date(2026, 6, 5)

    def test_custom_weekend(self) -> None:
        cal = BusinessCalendar(weekend=frozenset({4, 5}))  # Friday and Saturday off
        assert not cal.is_business_day(date(2026, 6, 5))
        assert cal.is_business_day(date(2026, 6, 7))

    def test_one_off_closed_date(self) -> None:
        cal = BusinessCalendar(closed_dates=[date(2026, 6, 10)])
        assert not cal.is_business_day(date(2026, 6, 10))
        assert cal.holiday_name(date(2026, 6, 10)) == "臨時休業日"
        assert cal.add_business_days(date(2026, 6, 9), 1) == date(2026, 6, 11)

    def test_open_saturday(self) -> None:
        cal = BusinessCalendar(open_dates=[date(2026, 6, 6)])
        assert cal.is_business_day(date(2026, 6, 6))
        assert cal.holiday_name(date(2026, 6, 6)) is None
        assert cal.add_business_days(date(2026, 6, 5), 1) == date(2026, 6, 6)
        assert cal.is_working_time(tokyo(2026, 6, 6, 10))

    def test_open_date_overrides_holiday_and_closed_date(self) -> None:
        cal = BusinessCalendar(open_dates=[date(2026, 5, 4)], closed_dates=[date(2026, 5, 4)])
        assert cal.is_business_day(date(2026, 5, 4))
        assert cal.holiday_name(date(2026, 5, 4)) is None

    def test_count_is_inclusive_and_empty_when_reversed(self) -> None:
        assert CAL.count_business_days(date(2026, 6, 8), date(2026, 6, 8)) == 1
        assert CAL.count_business_days(date(2026, 6, 8), date(2026, 6, 12)) == 5
        assert CAL.count_business_days(date(2026, 6, 12), date(2026, 6, 8)) == 0
        assert CAL.business_days(date(2026, 6, 12), date(2026, 6, 8)) == []

    def test_a_datetime_is_not_a_date(self) -> None:
        with pytest.raises(TypeError):
            CAL.is_business_day(datetime(2026, 6, 8, 10, tzinfo=TOKYO))

    def test_every_day_closed_raises_instead_of_looping(self) -> None:
        cal = BusinessCalendar(weekend=frozenset(range(7)))
        with pytest.raises(ValueError, match="no business day"):
            cal.next_business_day(date(2026, 6, 8))

    def test_memoized(self) -> None:
        cal = BusinessCalendar()
        cal.is_business_day(date(2026, 6, 8))
        assert cal._business_day == {date(2026, 6, 8): True}
        assert cal.is_business_day(date(2026, 6, 8))


class TestConstruction:
    def test_defaults(self) -> None:
        assert CAL.tz == TOKYO
        assert CAL.workday_length == timedelta(hours=9)

    def test_unknown_zone(self) -> None:
        with pytest.raises(ValueError, match="time zone"):
            BusinessCalendar(timezone="Mars/Olympus")

    def test_work_end_must_follow_start(self) -> None:
        with pytest.raises(ValueError):
            BusinessCalendar(work_start=time(18), work_end=time(9))

    def test_weekend_range(self) -> None:
        with pytest.raises(ValueError):
            BusinessCalendar(weekend=frozenset({7}))


# --- hours -----------------------------------------------------------------------------------------------


class TestWorkingHours:
    @pytest.mark.parametrize(
        ("hour", "minute", "expected"),
        [(8, 59, False), (9, 0, True), (17, 59, True), (18, 0, False), (23, 0, False), (0, 0, False)],
    )
    def test_edges(self, hour: int, minute: int, expected: bool) -> None:
        assert CAL.is_working_time(tokyo(2026, 6, 8, hour, minute)) is expected

    def test_holiday_is_not_working_time(self) -> None:
        assert not CAL.is_working_time(tokyo(2026, 5, 4, 10))

    def test_utc_input_is_read_in_tokyo(self) -> None:
        # 01:00 UTC is 10:00 in Tokyo.
        assert CAL.is_working_time(datetime(2026, 6, 8, 1, tzinfo=UTC))
        assert not CAL.is_working_time(datetime(2026, 6, 8, 12, tzinfo=UTC))

    def test_next_working_moment_inside_hours_is_the_moment(self) -> None:
        moment = tokyo(2026, 6, 8, 10, 30)
        result = CAL.next_working_moment(moment)
        assert result == moment
        assert result.tzinfo == UTC

    def test_next_working_moment_before_and_after_hours(self) -> None:
        assert CAL.next_working_moment(tokyo(2026, 6, 8, 8, 59)) == tokyo(2026, 6, 8, 9)
        assert CAL.next_working_moment(tokyo(2026, 6, 8, 18)) == tokyo(2026, 6, 9, 9)
        assert CAL.next_working_moment(tokyo(2026, 6, 5, 23)) == tokyo(2026, 6, 8, 9)
        assert CAL.next_working_moment(tokyo(2026, 5, 2, 12)) == tokyo(2026, 5, 7, 9)

    def test_add_business_hours(self) -> None:
        assert CAL.add_business_hours(tokyo(2026, 6, 8, 10), 2) == tokyo(2026, 6, 8, 12)
        assert CAL.add_business_hours(tokyo(2026, 6, 8, 17), 2) == tokyo(2026, 6, 9, 10)
        assert CAL.add_business_hours(tokyo(2026, 6, 5, 17, 30), 1) == tokyo(2026, 6, 8, 9, 30)
        assert CAL.add_business_hours(tokyo(2026, 6, 8, 10), 0.5) == tokyo(2026, 6, 8, 10, 30)

    def test_zero_hours_is_the_next_working_moment(self) -> None:
        assert CAL.add_business_hours(tokyo(2026, 6, 6, 12), 0) == tokyo(2026, 6, 8, 9)

    def test_results_are_utc(self) -> None:
        assert CAL.add_business_hours(tokyo(2026, 6, 8, 10), 1).tzinfo == UTC
        assert CAL.due_after(tokyo(2026, 6, 8, 10), 1).tzinfo == UTC
        assert CAL.next_working_moment(tokyo(2026, 6, 6, 10)).tzinfo == UTC

    @pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
    def test_bad_amounts(self, bad: float) -> None:
        with pytest.raises(ValueError):
            CAL.add_business_hours(tokyo(2026, 6, 8, 10), bad)
        with pytest.raises(ValueError):
            CAL.due_after(tokyo(2026, 6, 8, 10), bad)


class TestDueAfter:
    def test_friday_afternoon_plus_two(self) -> None:
        assert CAL.due_after(tokyo(2026, 6, 5, 15), 2) == tokyo(2026, 6, 9, 15)

    def test_friday_night_plus_two_ends_tuesday_evening(self) -> None:
        assert CAL.due_after(tokyo(2026, 6, 5, 23), 2) == tokyo(2026, 6, 9, 18)

    def test_fractional_days(self) -> None:
        assert CAL.due_after(tokyo(2026, 6, 8, 9), 0.5) == tokyo(2026, 6, 8, 13, 30)

    def test_over_golden_week(self) -> None:
        assert CAL.due_after(tokyo(2026, 4, 30, 15), 2) == tokyo(2026, 5, 7, 15)

    def test_other_working_hours(self) -> None:
        cal = BusinessCalendar(work_start=time(10), work_end=time(16))
        assert cal.workday_length == timedelta(hours=6)
        assert cal.due_after(tokyo(2026, 6, 5, 15), 1) == tokyo(2026, 6, 8, 15)


class TestOtherZones:
    def test_tokyo_has_no_dst(self) -> None:
        # Same wall-clock deadline in winter and summer: Tokyo never shifts.
        assert in_tokyo(CAL.due_after(tokyo(2026, 1, 16, 15), 1)).time() == time(15)
        assert in_tokyo(CAL.due_after(tokyo(2026, 7, 17, 15), 1)).time() == time(15)

    def test_london_working_hours_follow_london_clock(self) -> None:
        # 09:30 London in summer (BST, UTC+1) is 08:30 UTC; in winter (GMT) 09:30 UTC.
        summer = datetime(2026, 7, 6, 9, 30, tzinfo=LONDON)
        assert CAL.is_working_time(summer, tz="Europe/London")
        assert CAL.is_working_time(summer)  # 17:30 in Tokyo: still working time there...
        # ...but 10:30 London in summer is 18:30 Tokyo: after hours in Tokyo, working time in London.
        assert not CAL.is_working_time(datetime(2026, 7, 6, 10, 30, tzinfo=LONDON))
        assert CAL.is_working_time(datetime(2026, 7, 6, 10, 30, tzinfo=LONDON), tz="Europe/London")

    def test_next_working_moment_in_london_across_dst(self) -> None:
        # UK clocks go forward on Sun 29 Mar 2026: Friday 09:00 is GMT, Monday 09:00 is BST.
        friday = CAL.next_working_moment(datetime(2026, 3, 27, 7, tzinfo=LONDON), tz="Europe/London")
        monday = CAL.next_working_moment(datetime(2026, 3, 28, 12, tzinfo=LONDON), tz="Europe/London")
        assert friday == datetime(2026, 3, 27, 9, tzinfo=UTC)
        assert monday == datetime(2026, 3, 30, 8, tzinfo=UTC)

    def test_due_after_in_london_across_dst(self) -> None:
        due = CAL.due_after(datetime(2026, 3, 27, 15, tzinfo=LONDON), 1, tz="Europe/London")
        assert due.astimezone(LONDON) == datetime(2026, 3, 30, 15, tzinfo=LONDON)
        assert due == datetime(2026, 3, 30, 14, tzinfo=UTC)

    def test_london_person_still_gets_japanese_holidays(self) -> None:
        assert not CAL.is_working_time(datetime(2026, 5, 4, 10, tzinfo=LONDON), tz="Europe/London")

    def test_calendar_in_another_zone(self) -> None:
        cal = BusinessCalendar(timezone="Europe/London")
        assert cal.tz == LONDON
        assert cal.is_working_time(datetime(2026, 7, 6, 9, 30, tzinfo=LONDON))


class TestNaiveRejected:
    naive = datetime(2026, 6, 8, 10)

    def test_is_working_time(self) -> None:
        with pytest.raises(ValueError, match="naive"):
            CAL.is_working_time(self.naive)

    def test_next_working_moment(self) -> None:
        with pytest.raises(ValueError, match="naive"):
            CAL.next_working_moment(self.naive)

    def test_add_business_hours(self) -> None:
        with pytest.raises(ValueError, match="naive"):
            CAL.add_business_hours(self.naive, 1)

    def test_due_after(self) -> None:
        with pytest.raises(ValueError, match="naive"):
            CAL.due_after(self.naive, 1)


# --- properties ------------------------------------------------------------------------------------------

days = st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31))
moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(TOKYO)
)
zones = st.sampled_from([None, "Asia/Tokyo", "Europe/London", "America/New_York"])


@given(days, st.integers(min_value=-40, max_value=40))
def test_add_business_days_lands_on_a_business_day(start: date, n: int) -> None:
    assert CAL.is_business_day(CAL.add_business_days(start, n))


@given(days, st.integers(min_value=-40, max_value=40))
def test_add_business_days_remembered_is_what_a_fresh_calendar_computes(start: date, n: int) -> None:
    first = CAL.add_business_days(start, n)
    assert CAL.add_business_days(start, n) == first == BusinessCalendar().add_business_days(start, n)


@given(moments, st.floats(min_value=0, max_value=20), zones)
def test_due_after_with_remembered_days_is_what_a_fresh_calendar_computes(moment: datetime, days_: float,
                                                                          tz: str | None) -> None:
    # CAL has answered many questions before (its days, steps and working periods are memoized); a fresh one
    # computes everything for the first time
    assert CAL.due_after(moment, days_, tz) == BusinessCalendar().due_after(moment, days_, tz)
    assert CAL.next_working_moment(moment, tz) == BusinessCalendar().next_working_moment(moment, tz)
    assert CAL.previous_business_day(moment.date()) == BusinessCalendar().previous_business_day(moment.date())


@given(days, st.integers(min_value=0, max_value=40))
def test_count_matches_add_forwards(start: date, n: int) -> None:
    end = CAL.add_business_days(start, n)
    # The start itself counts only when it is a business day; n == 0 always lands on one day.
    expected = n + 1 if CAL.is_business_day(start) else max(n, 1)
    assert CAL.count_business_days(start, end) == expected


@given(days, st.integers(min_value=1, max_value=40))
def test_count_matches_add_backwards(start: date, n: int) -> None:
    end = CAL.add_business_days(start, -n)
    expected = n + 1 if CAL.is_business_day(start) else n
    assert CAL.count_business_days(end, start) == expected


@given(days)
def test_next_business_day_is_strictly_after_and_nothing_in_between(d: date) -> None:
    nxt = CAL.next_business_day(d)
    assert nxt > d
    assert CAL.count_business_days(d + timedelta(days=1), nxt) == 1


@given(moments, zones)
def test_next_working_moment_is_working_time_and_not_earlier(moment: datetime, tz: str | None) -> None:
    result = CAL.next_working_moment(moment, tz)
    assert result >= moment
    assert CAL.is_working_time(result, tz)
    assert result.tzinfo == UTC


@settings(max_examples=200)
@given(moments, st.integers(min_value=0, max_value=7 * 24 * 60), st.floats(0, 15), zones)
def test_due_after_is_monotone(
    moment: datetime, later_minutes: int, business_days: float, tz: str | None
) -> None:
    later = moment + timedelta(minutes=later_minutes)
    assert CAL.due_after(moment, business_days, tz) <= CAL.due_after(later, business_days, tz)


@given(moments, st.floats(0, 10), st.floats(0, 10))
def test_due_after_is_monotone_in_days(moment: datetime, a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert CAL.due_after(moment, low) <= CAL.due_after(moment, high)


def _working_time_between(start: datetime, end: datetime) -> timedelta:
    """An independent oracle: overlap of [start, end) with each day's 09:00-18:00 Tokyo on business days."""
    total = timedelta()
    day = start.astimezone(TOKYO).date()
    while day <= end.astimezone(TOKYO).date():
        if CAL.is_business_day(day):
            opens, closes = tokyo(day.year, day.month, day.day, 9), tokyo(day.year, day.month, day.day, 18)
            total += max(timedelta(), min(end, closes) - max(start, opens))
        day += timedelta(days=1)
    return total


@given(moments, st.integers(min_value=0, max_value=24 * 60))
def test_added_working_time_is_conserved(moment: datetime, minutes: int) -> None:
    end = CAL.add_business_hours(moment, minutes / 60)
    assert _working_time_between(moment, end) == timedelta(minutes=minutes)


class TestJapanLoadedByItself:
    """workflow.calendar.japan loads the holidays package's Japan without the ~250 other countries."""

    def test_the_same_holidays_as_the_package_in_both_languages_1990_to_2099(self) -> None:
        years = range(1990, 2100)
        for language in ("ja", "en_US"):
            theirs = holidays.Japan(categories=(holidays.PUBLIC,), years=years, language=language)
            ours = japan()(categories=(holidays.PUBLIC,), years=years, language=language)
            assert dict(ours) == dict(theirs) and len(ours) > 1900
        assert japan() is not holidays.Japan  # loaded by itself (a package laid out otherwise falls back)

    def test_no_other_country_is_imported(self) -> None:
        code = ("import sys; from datetime import date; from workflow.calendar import BusinessCalendar; "
                "c = BusinessCalendar(); assert c.holiday_name(date(2026, 5, 4)) == 'みどりの日'; "
                "print(sorted(m for m in sys.modules if m.startswith('holidays.countries')))")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parents[2])
        assert done.stdout.strip() == "[]", done.stdout + done.stderr
