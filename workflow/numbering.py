"""Human request numbers: sequential per type and fiscal year, e.g. EXP-2026-0042."""

from __future__ import annotations

from datetime import date


def fiscal_year(day: date, start_month: int = 4) -> int:
    """The fiscal year a day belongs to, named by the calendar year it starts in (April start: 2027-03-31 -> 2026)."""
    return day.year if day.month >= start_month else day.year - 1


def format_number(prefix: str, fiscal_year_: int, sequence: int) -> str:
    return f"{prefix}-{fiscal_year_}-{sequence:04d}"
