"""Unit tests for workflow.leave_law: grants, expiry, allocation, units and the 5-day obligation."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflow.leave_law import (
    FULL_TIME_DAYS,
    PART_TIME_DAYS,
    FiveDayStatus,
    Grant,
    GrantUse,
    InsufficientLeave,
    Taken,
    add_months,
    allocate,
    available_on,
    five_day_status,
    grant_schedule,
    hourly_cap_hours,
    hours_per_leave_day,
    is_part_time,
    period_end,
    unit_days,
)

D = Decimal
FAR_FUTURE = date(2040, 1, 1)


def days_of(grants: list[Grant]) -> list[int]:
    return [int(g.days) for g in grants]


# --- month arithmetic -------------------------------------------------------------------------------------


class TestMonths:
    @pytest.mark.parametrize(
        ("start", "months", "expected"),
        [
            (date(2025, 4, 1), 6, date(2025, 10, 1)),
            (date(2023, 8, 31), 6, date(2024, 2, 29)),  # leap year
            (date(2024, 8, 31), 6, date(2025, 2, 28)),
            (date(2025, 1, 31), 1, date(2025, 2, 28)),
            (date(2025, 10, 31), 18, date(2027, 4, 30)),
            (date(2025, 11, 15), 2, date(2026, 1, 15)),
            (date(2025, 3, 15), -3, date(2024, 12, 15)),
        ],
    )
    def test_add_months_clamps_to_month_end(self, start: date, months: int, expected: date) -> None:
        assert add_months(start, months) == expected

    def test_period_end_is_the_day_after_the_last_day(self) -> None:
        assert period_end(date(2024, 10, 1), 24) == date(2026, 10, 1)
        # Feb 29 has no corresponding day two years on: the period runs through Feb 28 (民法143条).
        assert period_end(date(2024, 2, 29), 24) == date(2026, 3, 1)
        assert period_end(date(2024, 2, 29), 12) == date(2025, 3, 1)
        assert period_end(date(2025, 2, 28), 24) == date(2027, 2, 28)


# --- grants -----------------------------------------------------------------------------------------------


class TestPartTime:
    @pytest.mark.parametrize(
        ("days", "hours", "expected"),
        [
            (4, 29, True),
            (4, 29.9, True),
            (4, 30, False),
            (4, None, True),
            (3, 20, True),
            (1, None, True),
            (5, 20, False),  # five days a week is full-time whatever the hours
            (5, None, False),
            (6, 48, False),
        ],
    )
    def test_thresholds(self, days: int, hours: float | None, expected: bool) -> None:
        assert is_part_time(days, hours) is expected


class TestGrantSchedule:
    def test_full_time_table(self) -> None:
        grants = grant_schedule(date(2020, 4, 1), FAR_FUTURE)
        assert days_of(grants)[:7] == list(FULL_TIME_DAYS) == [10, 11, 12, 14, 16, 18, 20]
        assert all(g.days == 20 for g in grants[7:])  # 20 days every year after 6.5 years

    @pytest.mark.parametrize("work_days", sorted(PART_TIME_DAYS))
    def test_every_part_time_row(self, work_days: int) -> None:
        grants = grant_schedule(date(2020, 4, 1), FAR_FUTURE, work_days_per_week=work_days, weekly_hours=20)
        assert days_of(grants)[:7] == list(PART_TIME_DAYS[work_days])
        assert all(g.days == PART_TIME_DAYS[work_days][-1] for g in grants[7:])

    def test_part_time_rows_match_the_domain_notes(self) -> None:
        assert PART_TIME_DAYS == {
            4: (7, 8, 9, 10, 12, 13, 15),
            3: (5, 6, 6, 8, 9, 10, 11),
            2: (3, 4, 4, 5, 6, 6, 7),
            1: (1, 2, 2, 2, 3, 3, 3),
        }

    def test_four_days_thirty_hours_is_the_full_time_table(self) -> None:
        grants = grant_schedule(date(2020, 4, 1), FAR_FUTURE, work_days_per_week=4, weekly_hours=30)
        assert days_of(grants)[:7] == list(FULL_TIME_DAYS)

    def test_four_days_twenty_nine_hours_is_part_time(self) -> None:
        grants = grant_schedule(date(2020, 4, 1), FAR_FUTURE, work_days_per_week=4, weekly_hours=29)
        assert days_of(grants)[:7] == list(PART_TIME_DAYS[4])

    def test_hire_on_april_first(self) -> None:
        grants = grant_schedule(date(2025, 4, 1), date(2028, 12, 31))
        assert [g.granted_on for g in grants] == [
            date(2025, 10, 1),
            date(2026, 10, 1),
            date(2027, 10, 1),
            date(2028, 10, 1),
        ]
        assert grants[0].expires_on == date(2027, 10, 1)

    def test_hire_on_august_31_clamps_each_year_from_the_hire_date(self) -> None:
        grants = grant_schedule(date(2023, 8, 31), date(2028, 12, 31))
        assert [g.granted_on for g in grants] == [
            date(2024, 2, 29),
            date(2025, 2, 28),
            date(2026, 2, 28),
            date(2027, 2, 28),
            date(2028, 2, 29),  # back to the 29th: not stuck on the 28th
        ]

    def test_only_grants_on_or_before_until(self) -> None:
        hire = date(2025, 4, 1)
        assert grant_schedule(hire, date(2025, 9, 30)) == []
        assert len(grant_schedule(hire, date(2025, 10, 1))) == 1
        assert grant_schedule(hire, date(2024, 1, 1)) == []

    def test_zero_work_days_gets_nothing(self) -> None:
        assert grant_schedule(date(2020, 4, 1), FAR_FUTURE, work_days_per_week=0) == []

    @pytest.mark.parametrize("bad", [-1, 8])
    def test_work_days_out_of_range(self, bad: int) -> None:
        with pytest.raises(ValueError):
            grant_schedule(date(2020, 4, 1), FAR_FUTURE, work_days_per_week=bad)

    def test_days_are_decimal(self) -> None:
        assert all(isinstance(g.days, Decimal) for g in grant_schedule(date(2020, 4, 1), FAR_FUTURE))


class TestGrantValidity:
    def test_expires_two_years_after_the_grant(self) -> None:
        grant = Grant.of(date(2024, 10, 1), 10)
        assert grant.expires_on == date(2026, 10, 1)
        assert not grant.is_valid_on(date(2024, 9, 30))
        assert grant.is_valid_on(date(2024, 10, 1))
        assert grant.is_valid_on(date(2026, 9, 30))
        assert not grant.is_valid_on(date(2026, 10, 1))  # exclusive

    def test_expired_grant_is_not_available(self) -> None:
        uses = [GrantUse(Grant.of(date(2024, 10, 1), 10), D(0))]
        assert available_on(uses, date(2026, 9, 30)) == 10
        assert available_on(uses, date(2026, 10, 1)) == 0

    def test_float_days_rejected(self) -> None:
        with pytest.raises(TypeError):
            Grant(date(2024, 10, 1), 10.0, date(2026, 10, 1))  # type: ignore[arg-type]

    def test_expiry_must_follow_grant(self) -> None:
        with pytest.raises(ValueError):
            Grant(date(2024, 10, 1), D(10), date(2024, 10, 1))

    def test_use_cannot_exceed_the_grant(self) -> None:
        grant = Grant.of(date(2024, 10, 1), 10)
        with pytest.raises(ValueError):
            GrantUse(grant, D(11))
        with pytest.raises(ValueError):
            GrantUse(grant, D(-1))


# --- balance and allocation -------------------------------------------------------------------------------

OLD = Grant.of(date(2024, 10, 1), 10)
NEW = Grant.of(date(2025, 10, 1), 11)
ON = date(2025, 11, 10)


class TestAllocation:
    def test_available_sums_valid_grants(self) -> None:
        uses = [GrantUse(OLD, D(7)), GrantUse(NEW, D("0.5"))]
        assert available_on(uses, ON) == D("13.5")
        assert available_on(uses, date(2025, 9, 1)) == 3  # NEW not granted yet

    def test_oldest_grant_first_across_two_grants(self) -> None:
        uses = [GrantUse(NEW, D(0)), GrantUse(OLD, D(7))]  # order of input does not matter
        assert allocate(uses, ON, D(5)) == [(OLD, D(3)), (NEW, D(2))]

    def test_fits_in_the_oldest(self) -> None:
        assert allocate([GrantUse(OLD, D(7)), GrantUse(NEW, D(0))], ON, D("0.5")) == [(OLD, D("0.5"))]

    def test_skips_exhausted_and_expired_grants(self) -> None:
        uses = [GrantUse(OLD, D(10)), GrantUse(NEW, D(0))]
        assert allocate(uses, ON, D(1)) == [(NEW, D(1))]
        later = date(2026, 10, 1)  # OLD expired
        assert allocate([GrantUse(OLD, D(0)), GrantUse(NEW, D(0))], later, D(2)) == [(NEW, D(2))]

    def test_exact_balance(self) -> None:
        uses = [GrantUse(OLD, D(7)), GrantUse(NEW, D(0))]
        assert allocate(uses, ON, D(14)) == [(OLD, D(3)), (NEW, D(11))]

    def test_insufficient_balance_names_both_numbers(self) -> None:
        uses = [GrantUse(OLD, D("6.5"))]
        with pytest.raises(InsufficientLeave) as info:
            allocate(uses, date(2025, 6, 1), D(5))
        error = info.value
        assert error.available == D("3.5")
        assert error.requested == D(5)
        assert error.message("ja") == "有給休暇の残日数が足りません（残り 3.5 日、申請 5 日）"
        assert "3.5" in error.message("en") and "5 days" in error.message("en")

    def test_message_drops_trailing_zeros(self) -> None:
        error = InsufficientLeave(available=D("0.2500"), requested=D("1.0"))
        assert "残り 0.25 日、申請 1 日" in error.message("ja")
        assert "1 day requested" in error.message("en")

    def test_nothing_left(self) -> None:
        with pytest.raises(InsufficientLeave) as info:
            allocate([], ON, D(1))
        assert info.value.available == 0

    @pytest.mark.parametrize("bad", [D(0), D(-1)])
    def test_request_must_be_positive(self, bad: Decimal) -> None:
        with pytest.raises(ValueError):
            allocate([GrantUse(OLD, D(0))], ON, bad)

    def test_duplicate_grant_rejected(self) -> None:
        with pytest.raises(ValueError, match="only once"):
            available_on([GrantUse(OLD, D(0)), GrantUse(OLD, D(1))], ON)


# --- units ------------------------------------------------------------------------------------------------


class TestUnits:
    def test_full_and_half(self) -> None:
        assert unit_days("full") == 1
        assert unit_days("am") == D("0.5")
        assert unit_days("pm") == D("0.5")

    def test_hourly(self) -> None:
        assert unit_days("hourly", D(1)) == D("0.125")
        assert unit_days("hourly", D(4)) == D("0.5")
        assert unit_days("hourly", D(8)) == 1

    def test_hourly_quantized_to_four_places(self) -> None:
        assert unit_days("hourly", D(1), hours_per_day=D(7)) == D("0.1429")
        assert unit_days("hourly", D(3), hours_per_day=D(7)) == D("0.4286")

    def test_fractional_day_hours_round_up(self) -> None:
        # 7.5-hour days: a day of hourly leave is 8 hours (労基則24条の4).
        assert hours_per_leave_day(D("7.5")) == 8
        assert unit_days("hourly", D(2), hours_per_day=D("7.5")) == D("0.25")

    @pytest.mark.parametrize("hours", [None, D(0), D("1.5"), D(9)])
    def test_bad_hours(self, hours: Decimal | None) -> None:
        with pytest.raises(ValueError):
            unit_days("hourly", hours)

    def test_hours_on_a_full_day_rejected(self) -> None:
        with pytest.raises(ValueError):
            unit_days("full", D(8))

    def test_unknown_unit(self) -> None:
        with pytest.raises(ValueError):
            unit_days("week")  # type: ignore[arg-type]

    def test_hourly_cap(self) -> None:
        assert hourly_cap_hours() == 40
        assert hourly_cap_hours(D(6)) == 30
        assert hourly_cap_hours(D("7.5")) == 40


# --- 年5日の取得義務 ---------------------------------------------------------------------------------------

GRANT_10 = Grant.of(date(2025, 4, 1), 10)


def full(on: date) -> Taken:
    return Taken(on, "full", D(1))


def half(on: date, unit: str = "am") -> Taken:
    return Taken(on, unit, D("0.5"))  # type: ignore[arg-type]


class TestFiveDayObligation:
    def test_three_full_and_two_half_days_leave_a_shortfall_of_one(self) -> None:
        taken = [
            full(date(2025, 5, 1)),
            full(date(2025, 6, 1)),
            full(date(2025, 7, 1)),
            half(date(2025, 8, 1), "am"),
            half(date(2025, 9, 1), "pm"),
        ]
        status = five_day_status([GRANT_10], taken, as_of=date(2025, 10, 1))
        assert status == FiveDayStatus(
            granted_on=date(2025, 4, 1),
            window_end=date(2026, 4, 1),
            taken=D(4),
            required=D(5),
            shortfall=D(1),
            days_left=182,
        )

    def test_hourly_leave_does_not_count(self) -> None:
        taken = [Taken(date(2025, 5, 1) + timedelta(days=i), "hourly", D("0.5")) for i in range(20)]
        status = five_day_status([GRANT_10], taken, as_of=date(2025, 10, 1))
        assert status is not None
        assert status.taken == 0
        assert status.shortfall == 5

    def test_leave_outside_the_window_does_not_count(self) -> None:
        taken = [
            full(date(2025, 3, 31)),
            full(date(2026, 4, 1)),
            full(date(2025, 4, 1)),
            full(date(2026, 3, 31)),
        ]
        status = five_day_status([GRANT_10], taken, as_of=date(2025, 10, 1))
        assert status is not None
        assert status.taken == 2  # only the first and last day of the window

    def test_met_obligation_has_no_shortfall(self) -> None:
        taken = [full(date(2025, 5, 1) + timedelta(days=i)) for i in range(6)]
        status = five_day_status([GRANT_10], taken, as_of=date(2025, 10, 1))
        assert status is not None
        assert status.taken == 6
        assert status.shortfall == 0

    def test_part_time_seven_day_grant_has_no_obligation(self) -> None:
        grant = Grant.of(date(2025, 4, 1), 7)
        assert five_day_status([grant], [], as_of=date(2025, 10, 1)) is None

    def test_part_timer_reaching_ten_days_is_obligated(self) -> None:
        # 4 days a week: 10 days at 3.5 years of service.
        grants = grant_schedule(date(2020, 4, 1), date(2024, 1, 1), work_days_per_week=4)
        status = five_day_status(grants, [], as_of=date(2024, 1, 1))
        assert status is not None and status.granted_on == date(2023, 10, 1)

    def test_outside_any_window(self) -> None:
        assert five_day_status([GRANT_10], [], as_of=date(2025, 3, 31)) is None
        assert five_day_status([GRANT_10], [], as_of=date(2026, 4, 1)) is None
        assert five_day_status([], [], as_of=date(2025, 10, 1)) is None

    def test_window_edges_and_days_left(self) -> None:
        first_day = five_day_status([GRANT_10], [], as_of=date(2025, 4, 1))
        last_day = five_day_status([GRANT_10], [], as_of=date(2026, 3, 31))
        assert first_day is not None and first_day.days_left == 365
        assert last_day is not None and last_day.days_left == 1

    def test_most_recent_open_window_wins(self) -> None:
        grants = grant_schedule(date(2020, 4, 1), date(2026, 1, 1))
        status = five_day_status(
            grants, [full(date(2025, 9, 1)), full(date(2025, 11, 1))], as_of=date(2026, 1, 1)
        )
        assert status is not None
        assert status.granted_on == date(2025, 10, 1)
        assert status.taken == 1

    def test_leap_day_grant_window(self) -> None:
        grant = Grant.of(date(2024, 2, 29), 10)
        status = five_day_status([grant], [full(date(2025, 2, 28))], as_of=date(2025, 2, 28))
        assert status is not None
        assert status.window_end == date(2025, 3, 1)
        assert status.taken == 1


# --- properties -------------------------------------------------------------------------------------------

grant_dates = st.dates(min_value=date(2020, 1, 1), max_value=date(2026, 12, 31))
halves = st.integers(min_value=0, max_value=40).map(lambda n: D(n) / 2)


@st.composite
def grant_uses(draw: st.DrawFn) -> list[GrantUse]:
    granted = draw(st.lists(grant_dates, min_size=0, max_size=5, unique=True))
    uses = []
    for on in granted:
        grant = Grant.of(on, draw(st.integers(min_value=0, max_value=20)))
        used = draw(st.integers(min_value=0, max_value=int(grant.days) * 2)) / D(2)
        uses.append(GrantUse(grant, used))
    return uses


@given(grant_uses(), grant_dates, halves.filter(lambda d: d > 0))
def test_allocate_takes_only_what_is_available_from_valid_grants(
    uses: list[GrantUse], on: date, days: Decimal
) -> None:
    available = available_on(uses, on)
    remaining = {use.grant: use.remaining for use in uses}
    try:
        taken = allocate(uses, on, days)
    except InsufficientLeave as error:
        assert days > available
        assert error.available == available and error.requested == days
        return
    assert days <= available
    assert sum(amount for _, amount in taken) == days
    for grant, amount in taken:
        assert grant.is_valid_on(on)
        assert 0 < amount <= remaining[grant]
    # Oldest first: every grant but the last one used is drained.
    granted = [grant.granted_on for grant, _ in taken]
    assert granted == sorted(granted)
    assert all(amount == remaining[grant] for grant, amount in taken[:-1])


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 12, 31)),
    st.integers(1, 7),
    st.one_of(st.none(), st.floats(0, 60)),
)
def test_schedule_dates_increase_and_days_never_decrease(
    hire: date, work_days: int, hours: float | None
) -> None:
    grants = grant_schedule(hire, date(2045, 1, 1), work_days, hours)
    assert grants[0].granted_on == add_months(hire, 6)
    for earlier, later in zip(grants, grants[1:], strict=False):
        assert earlier.granted_on < later.granted_on
        assert earlier.days <= later.days
        assert later.granted_on.year == earlier.granted_on.year + 1
