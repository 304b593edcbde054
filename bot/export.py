"""`madoguchi export`: requests, decisions and audit events of a period as CSV or JSON lines.

The period is calendar dates in the company's zone, both ends included. Times are written as ISO 8601 with the
company's offset (2026-06-02T10:00:00+09:00). Rows stream from the database to the output one at a time
(models.exports), so an export of millions of rows needs no more memory than one of ten.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from config.i18n import LocalText
from models import exports
from models.db import Database


class Format(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


class ExportError(Exception):
    """Bad input, said in both languages; nothing was written."""

    def __init__(self, message: LocalText) -> None:
        super().__init__(message.en)
        self.message = message


@dataclass(frozen=True)
class Period:
    """Calendar dates in the company's zone, both included; None: open on that side."""

    first: date | None
    last: date | None

    def bounds(self, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
        """The half-open window of instants [first 00:00, the day after last 00:00) in the company's zone."""
        start = datetime.combine(self.first, time(), zone) if self.first else None
        end = datetime.combine(self.last + timedelta(days=1), time(), zone) if self.last else None
        return start, end


def parse_period(first: str | None, last: str | None) -> Period:
    """`--from` and `--to` as typed; a clear error for a date that is not one, or a period that ends before it
    starts."""
    def day(option: str, text: str | None) -> date | None:
        if text is None:
            return None
        try:
            return date.fromisoformat(text.strip())
        except ValueError:
            raise ExportError(LocalText(
                ja=f"{option} には 2026-04-01 のような日付を指定してください（{text!r} は日付ではありません）",
                en=f"{option} must be a date such as 2026-04-01, not {text!r}")) from None

    period = Period(day("--from", first), day("--to", last))
    if period.first and period.last and period.first > period.last:
        raise ExportError(LocalText(
            ja=f"--from {period.first} が --to {period.last} より後になっています",
            en=f"--from {period.first} is after --to {period.last}"))
    return period


def byte_order_mark(fmt: Format, out_file: Path | None, bom: bool | None) -> bool:
    """Whether the output starts with a BOM: a CSV file yes (Japanese Excel needs it to read UTF-8), a CSV on
    standard output no (it goes to another program), unless `--bom/--no-bom` says; JSON lines never."""
    if out_file is not None and not out_file.parent.is_dir():
        raise ExportError(LocalText(ja=f"--out {out_file}: フォルダ {out_file.parent} がありません",
                                    en=f"--out {out_file}: there is no folder {out_file.parent}"))
    if fmt is not Format.csv:
        if bom:
            raise ExportError(LocalText(ja="--bom は CSV にだけ使えます（JSON Lines には付けません）",
                                        en="--bom is for CSV only (JSON lines never start with one)"))
        return False
    return bom if bom is not None else out_file is not None


Row = dict[str, Any]


@dataclass(frozen=True)
class Table:
    """What one export kind reads and how each record becomes a row (column -> value)."""

    noun: str
    columns: tuple[str, ...]
    read: Callable[[Connection, datetime | None, datetime | None], Iterator[Any]]
    row: Callable[[Any, ZoneInfo], Row]


def _at(moment: datetime | None, zone: ZoneInfo, spec: str = "seconds") -> str | None:
    return moment.astimezone(zone).isoformat(timespec=spec) if moment else None


def _request_row(r: exports.RequestRecord, zone: ZoneInfo) -> Row:
    return {"number": r.number, "type": r.type, "status": r.status, "requester_code": r.requester_code,
            "requester_email": r.requester_email, "requester_name": r.requester_name, "round": r.round,
            "submitted_at": _at(r.submitted_at, zone), "updated_at": _at(r.updated_at, zone),
            "decided_at": _at(r.decided_at, zone), "payload": r.payload}


def _decision_row(d: exports.DecisionRecord, zone: ZoneInfo) -> Row:
    return {"request_number": d.request_number, "request_type": d.request_type, "round": d.round, "step": d.step,
            "decision": d.decision, "approver_email": d.approver_email, "approver_name": d.approver_name,
            "acting_for_email": d.acting_for_email, "acting_for_name": d.acting_for_name, "comment": d.comment,
            "decided_at": _at(d.decided_at, zone)}


def _audit_row(e: exports.AuditRecord, zone: ZoneInfo) -> Row:
    # microseconds: the hash covers the instant to the microsecond, so an auditor can recompute it from here
    return {"seq": e.seq, "at": _at(e.at, zone, "microseconds"), "actor_id": e.actor_id,
            "actor_email": e.actor_email, "actor_name": e.actor_name, "event": e.kind, "request_id": e.request_id,
            "request_number": e.request_number, "data": e.data, "prev_hash": e.prev_hash, "hash": e.hash}


TABLES: dict[str, Table] = {
    "requests": Table("requests", ("number", "type", "status", "requester_code", "requester_email",
                                   "requester_name", "round", "submitted_at", "updated_at", "decided_at",
                                   "payload"), exports.requests_submitted, _request_row),
    "decisions": Table("decisions", ("request_number", "request_type", "round", "step", "decision",
                                     "approver_email", "approver_name", "acting_for_email", "acting_for_name",
                                     "comment", "decided_at"), exports.decisions_made, _decision_row),
    "audit": Table("audit events", ("seq", "at", "actor_id", "actor_email", "actor_name", "event", "request_id",
                                    "request_number", "data", "prev_hash", "hash"), exports.audit_trail,
                   _audit_row),
}

# A cell Excel would read as a formula (=, +, -, @, or a tab/CR before one) is written with a leading
# apostrophe, so a comment such as "=HYPERLINK(...)" stays text (OWASP's advice for CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def write_rows(table: Table, rows: Iterable[Row], fmt: Format, target: TextIO) -> int:
    """Write rows (CSV with a header line, or one JSON object a line); return how many."""
    count = 0
    if fmt is Format.csv:
        writer = csv.writer(target)  # RFC 4180: CRLF line ends, as Excel writes them
        writer.writerow(table.columns)
        for row in rows:
            writer.writerow([_cell(row[c]) for c in table.columns])
            count += 1
    else:
        for row in rows:
            target.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def export(db: Database, kind: str, period: Period, zone: ZoneInfo, fmt: Format, target: TextIO) -> int:
    """Stream one kind's rows of the period to `target` in one read transaction (one snapshot)."""
    table = TABLES[kind]
    start, end = period.bounds(zone)
    with db.unit_of_work(write=False) as conn:
        return write_rows(table, (table.row(r, zone) for r in table.read(conn, start, end)), fmt, target)


@contextmanager
def replacing(path: Path, *, bom: bool) -> Iterator[TextIO]:
    """A text file that takes `path`'s place only once everything is written: a failed export leaves nothing
    (and never half of a file over an older export)."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
            yield handle
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
