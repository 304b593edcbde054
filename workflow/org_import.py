"""The org import: HR uploads the company's people as a CSV file, and all of it applies or none of it does.

The file is what Excel or an HR system exports: UTF-8 (with or without a BOM) or Windows Shift_JIS (cp932),
a header row in English or Japanese, one person per row. Every row is validated and every cross-row rule
checked before anything is written; one bad cell means nothing is imported and HR gets every problem at
once, each with the file's physical line number and the column, in Japanese and English.

Re-importing the same file changes nothing. People are matched by email (case-insensitively), departments
by code. A column left out of the header leaves that value alone for people already in the database (a
file without a roles column keeps everyone's roles); a column that is present but empty in a row sets the
default (no department, no manager, no roles, ...). The exception is `active`: a person in the file is active
unless the file says otherwise, so someone re-hired is active again. Nobody is ever deleted: with
`deactivate_missing=True` people in the database who are not in the file are marked inactive.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError
from sqlalchemy.engine import Connection

from config.i18n import LocalText
from config.policy import ROLES
from models import people
from models.db import Database
from workflow.audit import Entry, record

# --------------------------------------------------------------------------------------------------------
# Public API


class OrgImportError(Exception):
    """The upload cannot be read as a CSV text file at all (wrong encoding, a workbook, binary)."""

    def __init__(self, message: LocalText) -> None:
        super().__init__(f"{message.en} / {message.ja}")
        self.message = message


@dataclass(frozen=True)
class RowError:
    """One problem in the file. `line` is the physical line (header = 1); `column` the English column name,
    or None when the problem is not about one column. `message` already names the line and the column."""

    line: int
    column: str | None
    message: LocalText

    def __str__(self) -> str:
        return f"{self.message.en} / {self.message.ja}"


@dataclass
class ImportReport:
    """What an import did; when `errors` is not empty it did nothing and every count is 0."""

    created: int
    updated: int
    unchanged: int
    deactivated: int
    departments_created: int
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


# --------------------------------------------------------------------------------------------------------
# Columns


@dataclass(frozen=True)
class Column:
    name: str  # the English name, also the field of OrgRow
    ja: str  # the Japanese name shown in messages
    aliases: tuple[str, ...] = ()
    required: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("employee_code", "社員番号", ("employee_number", "employee_no", "社員コード", "従業員番号")),
    Column("email", "メールアドレス", ("e-mail", "mail", "メール"), required=True),
    Column("name_ja", "氏名", ("name", "名前", "氏名（漢字）"), required=True),
    Column("name_en", "氏名（英字）", ("ローマ字", "氏名（ローマ字）", "英字氏名"), required=True),
    Column("department_code", "部署コード", ("所属コード",)),
    Column("department_name_ja", "部署名", ("department_name", "所属", "所属部署")),
    Column("department_name_en", "部署名（英字）", ("部署名（英語）",)),
    Column("manager_email", "上長メールアドレス", ("上司メールアドレス",)),
    Column("roles", "役割", ("role", "ロール")),
    Column("locale", "言語", ("language",)),
    Column("timezone", "タイムゾーン", ("time_zone", "tz")),
    Column("hire_date", "入社日", ()),
    Column("work_days_per_week", "週所定労働日数", ()),
    Column("weekly_hours", "週所定労働時間", ()),
    Column("substitute_email", "代理承認者メールアドレス", ("代理承認者",)),
    Column("department_head", "部門長", ("部署長",)),
    Column("active", "在籍", ("在籍区分",)),
)
COLUMN_BY_NAME = {c.name: c for c in COLUMNS}
_COLUMN_ORDER = {c.name: i for i, c in enumerate(COLUMNS)}


def _header_key(raw: str) -> str:
    """Fold the ways a header gets typed: full-width letters and brackets, case, spaces, hyphens."""
    return re.sub(r"[\s_\-]+", "_", unicodedata.normalize("NFKC", raw).strip().lower())


_HEADER_ALIASES = {_header_key(a): c.name for c in COLUMNS for a in (c.name, c.ja, *c.aliases)}
ACCEPTED_COLUMNS = ", ".join(f"{c.name} / {c.ja}" for c in COLUMNS)

# Japanese spellings of the roles, for HR staff who fill the sheet in Japanese.
_ROLE_ALIASES = {
    "人事": "hr",
    "経理": "finance",
    "財務": "finance",
    "法務": "legal",
    "印章管理者": "seal_keeper",
    "押印管理者": "seal_keeper",
    "情報システム": "it",
    "情シス": "it",
    "システム管理者": "admin",
    "総務": "general_affairs",
}
_YES = frozenset({"yes", "y", "true", "1", "はい", "○", "〇", "◯", "有", "あり", "在籍"})
_NO = frozenset({"no", "n", "false", "0", "いいえ", "×", "-", "無", "なし", "退職"})
_LOCALES = {"ja": "ja", "en": "en", "japanese": "ja", "english": "en", "日本語": "ja", "英語": "en"}

# --------------------------------------------------------------------------------------------------------
# One row: a pydantic model whose validators normalize what people type and fail in both languages


def _fail(ja: str, en: str) -> PydanticCustomError:
    return PydanticCustomError("org_import", "{en}", {"ja": ja, "en": en})


def _nfkc(value: Any) -> str:
    """Full-width digits, letters, @ and punctuation to ASCII; surrounding spaces (also U+3000) removed."""
    return unicodedata.normalize("NFKC", str(value)).strip()


def _max_len(value: str, limit: int) -> str:
    if len(value) > limit:
        raise _fail(
            f"{limit}文字以内にしてください（{len(value)}文字あります）",
            f"must be at most {limit} characters (it has {len(value)})",
        )
    return value


def _code(value: Any) -> str:
    return _max_len(_nfkc(value), 40)


_EMAIL = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$"
)


def normalize_email(value: Any) -> str:
    return _nfkc(value).lower()


def _email(value: Any) -> str:
    email = normalize_email(value)
    if len(email) > 254 or not _EMAIL.match(email):
        raise _fail(f"「{value}」はメールアドレスの形式ではありません", f"'{value}' is not an email address")
    return email


def _name_ja(value: Any) -> str:
    # No NFKC here: it would swap a person's chosen kanji variant (CJK compatibility ideographs) for another.
    return _max_len(" ".join(str(value).split()), 200)


_JAPANESE_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uff66-\uff9f]")


def _name_en(value: Any) -> str:
    name = " ".join(_nfkc(value).split())
    if _JAPANESE_SCRIPT.search(name):
        raise _fail(
            f"「{value}」: ローマ字（英字）で入力してください", f"'{value}' must be written in Latin letters"
        )
    return _max_len(name, 200)


def _roles(value: Any) -> frozenset[str]:
    found: set[str] = set()
    for part in re.split(r"[;,、]", _nfkc(value)):
        word = part.strip()
        if not word:
            continue
        role = _ROLE_ALIASES.get(word, word.lower())
        if role not in ROLES:
            raise _fail(
                f"「{word}」は役割として使えません。使える役割: {', '.join(ROLES)}",
                f"'{word}' is not a role; allowed: {', '.join(ROLES)}",
            )
        found.add(role)
    return frozenset(found)


def _locale(value: Any) -> str:
    text = _nfkc(value).lower()
    locale = _LOCALES.get(text) or _LOCALES.get(text.replace("_", "-").split("-", 1)[0])
    if locale not in ("ja", "en"):
        raise _fail(
            f"「{value}」は言語として使えません（ja または en）", f"'{value}' is not a language: use ja or en"
        )
    return locale


@cache
def _zones() -> dict[str, str]:
    return {z.lower(): z for z in available_timezones()}


def _timezone(value: Any) -> str:
    zone = _zones().get(_nfkc(value).lower())
    if zone is None:
        raise _fail(
            f"「{value}」はタイムゾーン名（IANA、例: Asia/Tokyo）ではありません",
            f"'{value}' is not an IANA time zone name (e.g. Asia/Tokyo)",
        )
    return zone


_DATE = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$|^(\d{4})年(\d{1,2})月(\d{1,2})日$")


def _date(value: Any) -> date:
    match = _DATE.match(_nfkc(value))
    if not match:
        raise _fail(
            f"「{value}」は日付ではありません（YYYY-MM-DD または YYYY/MM/DD）",
            f"'{value}' is not a date (use YYYY-MM-DD or YYYY/MM/DD)",
        )
    y, m, d = (int(g) for g in match.groups() if g is not None)
    try:
        return date(y, m, d)
    except ValueError:
        raise _fail(f"「{value}」という日付は存在しません", f"'{value}' is not a real date") from None


def _work_days(value: Any) -> int:
    text = _nfkc(value)
    if not re.fullmatch(r"\d+", text) or not 1 <= int(text) <= 7:
        raise _fail(
            f"「{value}」: 1から7の整数を入力してください", f"'{value}' must be a whole number from 1 to 7"
        )
    return int(text)


def _weekly_hours(value: Any) -> float:
    text = _nfkc(value)
    try:
        hours = Decimal(text)
    except InvalidOperation:
        hours = Decimal("NaN")
    if not hours.is_finite() or not 0 <= hours <= 80:
        raise _fail(
            f"「{value}」: 0から80の数値（時間）を入力してください",
            f"'{value}' must be a number of hours from 0 to 80",
        )
    return float(round(hours, 2))


def _yes_no(value: Any) -> bool:
    text = _nfkc(value).lower()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise _fail(f"「{value}」: はい／いいえ（yes/no）で入力してください", f"'{value}' must be yes or no")


Code = Annotated[str, BeforeValidator(_code)]
Email = Annotated[str, BeforeValidator(_email)]
DepartmentNameJa = Annotated[str, BeforeValidator(_name_ja)]


class OrgRow(BaseModel):
    """One person as the file describes them, normalized. Empty cells are left out before validation, so a
    missing value takes the default here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    employee_code: Code | None = None
    email: Email
    name_ja: Annotated[str, BeforeValidator(_name_ja)]
    name_en: Annotated[str, BeforeValidator(_name_en)]
    department_code: Code | None = None
    department_name_ja: DepartmentNameJa | None = None
    department_name_en: Annotated[str, BeforeValidator(_name_en)] | None = None
    manager_email: Email | None = None
    roles: Annotated[frozenset[str], BeforeValidator(_roles)] = frozenset()
    locale: Annotated[Literal["ja", "en"], BeforeValidator(_locale)] = "ja"
    timezone: Annotated[str, BeforeValidator(_timezone)] = "Asia/Tokyo"
    hire_date: Annotated[date, BeforeValidator(_date)] | None = None
    work_days_per_week: Annotated[int, BeforeValidator(_work_days)] = 5
    weekly_hours: Annotated[float, BeforeValidator(_weekly_hours)] | None = None
    substitute_email: Email | None = None
    department_head: Annotated[bool, BeforeValidator(_yes_no)] = False
    active: Annotated[bool, BeforeValidator(_yes_no)] = True


# --------------------------------------------------------------------------------------------------------
# Reading the file


_NOT_CP932_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\uf8f0-\uf8f3]")


def decode_csv(data: bytes) -> str:
    """The upload as text: UTF-8 (a BOM is dropped), else cp932 (Windows Shift_JIS, what Excel saves)."""
    if data.startswith(b"PK\x03\x04"):
        raise OrgImportError(
            LocalText.of(
                "Excelのブック（.xlsx）はそのまま読み込めません。「CSV UTF-8（コンマ区切り）」で保存してください。",
                "This is an Excel workbook (.xlsx), not a CSV file: save it as 'CSV UTF-8 (Comma delimited)'.",
            )
        )
    if b"\x00" in data:  # UTF-16 ("Unicode text") or binary: cp932 would "decode" it into garbage
        raise OrgImportError(
            LocalText.of(
                "CSVファイルとして読めません（UTF-16 またはバイナリ）。UTF-8 または Shift_JIS のCSVで保存してください。",
                "This is not a CSV text file (UTF-16 or binary): save it as CSV in UTF-8 or Shift_JIS.",
            )
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp932")
    except UnicodeDecodeError:
        text = None
    # cp932 maps the bytes 0x80, 0xA0 and 0xFD-0xFF to control or private-use characters instead of failing;
    # no Windows export contains them, so they mean the file is in some other encoding.
    if text is not None and not _NOT_CP932_TEXT.search(text):
        return text
    raise OrgImportError(
        LocalText.of(
            "文字コードを判別できません。UTF-8 または Shift_JIS（cp932）のCSVで保存してください。",
            "The file's encoding is neither UTF-8 nor Shift_JIS (cp932): save it as CSV in UTF-8 or Shift_JIS.",
        )
    )


def _error(line: int, column: str | None, ja: str, en: str) -> RowError:
    where_ja = f"{line}行目" + (f" {COLUMN_BY_NAME[column].ja}" if column in COLUMN_BY_NAME else "")
    where_en = f"line {line}" + (f", {column}" if column else "")
    return RowError(line, column, LocalText.of(f"{where_ja}: {ja}", f"{where_en}: {en}"))


@dataclass(frozen=True)
class _Row:
    line: int
    data: OrgRow


@dataclass
class _Parsed:
    columns: set[str] = field(default_factory=set)
    rows: list[_Row] = field(default_factory=list)
    # every email in the file, also on rows that failed validation, so references to them are not "unknown"
    emails: set[str] = field(default_factory=set)
    errors: list[RowError] = field(default_factory=list)


def _records(text: str, errors: list[RowError]) -> Iterable[tuple[int, list[str]]]:
    """(physical line where the record starts, cells); blank lines skipped. Quoted cells may span lines."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    last = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            errors.append(
                _error(
                    last + 1,
                    None,
                    f"CSVとして読めません（{exc}）。ここから先は読み込めませんでした。",
                    f"not valid CSV ({exc}); the file could not be read past this line",
                )
            )
            return
        line, last = last + 1, reader.line_num
        if any(c.strip() for c in cells):
            yield line, cells


def _read_header(line: int, cells: list[str], parsed: _Parsed) -> list[str | None]:
    """The column at each position ("" under a blank header cell, None under an unknown or repeated one),
    reporting unknown, repeated and missing columns."""
    positions: list[str | None] = []
    for raw in cells:
        if not raw.strip():
            positions.append("")
            continue
        name = _HEADER_ALIASES.get(_header_key(raw))
        if name is None:
            hint_ja, hint_en = "", ""
            if len(cells) == 1 and ("\t" in raw or ";" in raw):
                hint_ja, hint_en = "（区切り文字はコンマにしてください）", " (separate columns with commas)"
            parsed.errors.append(
                _error(
                    line,
                    raw.strip(),
                    f"「{raw.strip()}」という列はありません{hint_ja}。使える列: {ACCEPTED_COLUMNS}",
                    f"unknown column '{raw.strip()}'{hint_en}; accepted columns: {ACCEPTED_COLUMNS}",
                )
            )
        elif name in parsed.columns:
            parsed.errors.append(_error(line, name, "同じ列が2回あります", "this column appears twice"))
            name = None
        else:
            parsed.columns.add(name)
        positions.append(name)
    for column in COLUMNS:
        if column.required and column.name not in parsed.columns:
            parsed.errors.append(
                _error(line, column.name, "必須の列がありません", "this required column is missing")
            )
    return positions


def _read_row(line: int, cells: list[str], positions: list[str | None], parsed: _Parsed) -> None:
    values: dict[str, str] = {}
    for i, cell in enumerate(cells):
        name = positions[i] if i < len(positions) else ""
        if name is None:  # under an unknown column: reported once, on the header
            continue
        if name == "":  # Excel leaves empty cells past the last column; a value there has no meaning
            if cell.strip():
                parsed.errors.append(
                    _error(
                        line,
                        None,
                        f"{i + 1}列目に見出しのない値「{cell.strip()}」があります",
                        f"cell {i + 1} ('{cell.strip()}') has no column header",
                    )
                )
            continue
        if cell.strip():
            values[name] = cell.strip()
    if "email" in values:
        parsed.emails.add(normalize_email(values["email"]))
    try:
        parsed.rows.append(_Row(line, OrgRow.model_validate(values)))
    except ValidationError as exc:
        for err in exc.errors():
            column = str(err["loc"][0]) if err["loc"] else None
            if err["type"] == "missing":
                if column in parsed.columns:  # a missing column is reported once, on the header
                    parsed.errors.append(_error(line, column, "必須の項目が空です", "a value is required"))
            elif err["type"] == "org_import":
                ctx = err.get("ctx") or {}
                parsed.errors.append(_error(line, column, str(ctx["ja"]), str(ctx["en"])))
            else:
                parsed.errors.append(
                    _error(line, column, f"値が正しくありません（{err['msg']}）", str(err["msg"]))
                )


def _parse(text: str) -> _Parsed:
    parsed = _Parsed()
    positions: list[str | None] | None = None
    header_line = 1
    for line, cells in _records(text, parsed.errors):
        if positions is None:
            positions, header_line = _read_header(line, cells, parsed), line
        else:
            _read_row(line, cells, positions, parsed)
    if positions is None:
        parsed.errors.append(
            _error(
                1,
                None,
                "ファイルが空です（1行目に見出しが必要です）",
                "the file is empty (line 1 must be the header)",
            )
        )
    elif not parsed.rows and not parsed.errors:
        parsed.errors.append(
            _error(
                header_line, None, "見出しの下に社員の行がありません", "there are no people below the header"
            )
        )
    return parsed


# --------------------------------------------------------------------------------------------------------
# Cross-row checks, against the file and the database


@dataclass
class _Snapshot:
    """The org as it is in the database, read in the import's own transaction."""

    by_email: dict[str, people.Employee]
    by_id: dict[int, people.Employee]
    by_code: dict[str, people.Employee]
    departments: dict[str, people.Department]

    @classmethod
    def load(cls, conn: Connection) -> _Snapshot:
        everyone = people.all_employees(conn)
        return cls(
            by_email={e.email.lower(): e for e in everyone},
            by_id={e.id: e for e in everyone},
            by_code={e.code: e for e in everyone if e.code},
            departments={d.code: d for d in people.all_departments(conn)},
        )


_LINKS = {"manager_email": "manager_id", "substitute_email": "substitute_id"}  # OrgRow field -> column
_LINK_WORDS = {"manager_email": ("上長", "manager"), "substitute_email": ("代理承認者", "substitute")}


class _Checks:
    """Rules that span rows; each appends to `errors`."""

    def __init__(self, parsed: _Parsed, db: _Snapshot, deactivate_missing: bool) -> None:
        self.parsed, self.db, self.deactivate_missing = parsed, db, deactivate_missing
        self.rows: dict[str, _Row] = {}  # by email, the first row (later ones are duplicates, reported)
        for row in parsed.rows:
            self.rows.setdefault(row.data.email, row)
        self.errors: list[RowError] = []

    def run(self) -> list[RowError]:
        self.duplicates()
        self.employee_codes()
        for column in _LINKS:
            if column in self.parsed.columns:
                self.references(column)
        if "manager_email" in self.parsed.columns:
            self.manager_cycles()
        self.departments()
        self.heads()
        self.kept_links()
        return self.errors

    def duplicates(self) -> None:
        for column in ("email", "employee_code"):
            first: dict[str, int] = {}
            for row in self.parsed.rows:
                value = getattr(row.data, column)
                if value is None:
                    continue
                if value in first:
                    self.errors.append(
                        _error(
                            row.line,
                            column,
                            f"「{value}」は{first[value]}行目と重複しています",
                            f"'{value}' is already on line {first[value]}",
                        )
                    )
                else:
                    first[value] = row.line

    def employee_codes(self) -> None:
        """A code that belongs in the database to someone else is an error, unless the file moves it away."""
        if "employee_code" not in self.parsed.columns:
            return
        for row in self.parsed.rows:
            holder = self.db.by_code.get(row.data.employee_code or "")
            if holder is None or holder.email.lower() == row.data.email:
                continue
            holder_row = self.rows.get(holder.email.lower())
            if holder_row is not None and holder_row.data.employee_code != row.data.employee_code:
                continue
            self.errors.append(
                _error(
                    row.line,
                    "employee_code",
                    f"社員番号「{row.data.employee_code}」は登録済みの {holder.email} のものです",
                    f"employee code '{row.data.employee_code}' already belongs to {holder.email} in the database",
                )
            )

    def _active_after(self, email: str) -> bool | None:
        """Whether the person will be active after this import; None if they are nowhere."""
        if email in self.rows:
            return self.rows[email].data.active
        if email in self.parsed.emails:  # on a row that failed validation, already reported
            return True
        existing = self.db.by_email.get(email)
        if existing is None:
            return None
        return existing.active and not self.deactivate_missing

    def references(self, column: str) -> None:
        ja_who, en_who = _LINK_WORDS[column]
        for row in self.parsed.rows:
            target = getattr(row.data, column)
            if target is None:
                continue
            active = self._active_after(target)
            if target == row.data.email:
                ja, en = f"自分自身を{ja_who}にはできません", f"a person cannot be their own {en_who}"
            elif active is None:
                ja = f"{target} はこのファイルにもデータベースにもいません"
                en = f"{target} is neither in this file nor in the database"
            elif active or not row.data.active:
                continue
            elif target not in self.parsed.emails and self.db.by_email[target].active:
                ja = (
                    f"{target} はファイルにないため、この取り込みで在籍でなくなります（{ja_who}にできません）"
                )
                en = (
                    f"{target} is not in the file, so this import deactivates them: they cannot be a {en_who}"
                )
            else:
                ja, en = (
                    f"{target} は在籍していません（{ja_who}にできません）",
                    f"{target} is not active: they cannot be a {en_who}",
                )
            self.errors.append(_error(row.line, column, ja, en))

    def _manager_of(self, email: str) -> str | None:
        if email in self.rows:
            return self.rows[email].data.manager_email
        existing = self.db.by_email.get(email)
        manager = self.db.by_id.get(existing.manager_id or 0) if existing else None
        return manager.email.lower() if manager else None

    def manager_cycles(self) -> None:
        """Follow each person's chain of managers (the file's, else the database's) until it ends or loops."""
        done: set[str] = set()
        for start in self.rows:
            path: list[str] = []
            current: str | None = start
            while current is not None and current not in done and current not in path:
                path.append(current)
                current = self._manager_of(current)
            done.update(path)
            if current is None or current not in path:
                continue
            cycle = path[path.index(current) :]
            lines = sorted(self.rows[e].line for e in cycle if e in self.rows)
            if len(cycle) == 1 or not lines:
                continue  # managing oneself is reported by references(); a loop only in the database is not ours
            chain = " → ".join([*cycle, cycle[0]])
            self.errors.append(
                _error(
                    lines[0],
                    "manager_email",
                    f"上長の関係が循環しています: {chain}（{', '.join(map(str, lines))}行目）",
                    f"managers form a cycle: {chain} (lines {', '.join(map(str, lines))})",
                )
            )

    def departments(self) -> None:
        first: dict[tuple[str, str], tuple[str, int]] = {}  # (code, column) -> (name, line)
        used_at: dict[str, int] = {}
        for row in self.parsed.rows:
            code = row.data.department_code
            if code is None:
                if row.data.department_name_ja or row.data.department_name_en:
                    self.errors.append(
                        _error(
                            row.line,
                            "department_code",
                            "部署名があるのに部署コードがありません",
                            "a department name is given without a department code",
                        )
                    )
                continue
            used_at.setdefault(code, row.line)
            for column in ("department_name_ja", "department_name_en"):
                name = getattr(row.data, column)
                if name is None:
                    continue
                earlier, at = first.setdefault((code, column), (name, row.line))
                if earlier != name:
                    self.errors.append(
                        _error(
                            row.line,
                            column,
                            f"部署「{code}」の名前が{at}行目（{earlier}）と違います: {name}",
                            f"department '{code}' is named '{earlier}' on line {at}, here '{name}'",
                        )
                    )
        for code, line in used_at.items():
            if code not in self.db.departments and (code, "department_name_ja") not in first:
                self.errors.append(
                    _error(
                        line,
                        "department_name_ja",
                        f"新しい部署コード「{code}」には部署名が必要です",
                        f"department code '{code}' is new: give its name (department_name_ja)",
                    )
                )

    def heads(self) -> None:
        first: dict[str, int] = {}
        for row in self.parsed.rows:
            if not row.data.department_head:
                continue
            code = row.data.department_code
            if code is None:
                self.errors.append(
                    _error(
                        row.line,
                        "department_head",
                        "部門長には部署コードが必要です",
                        "a department head needs a department code",
                    )
                )
            elif not row.data.active:
                self.errors.append(
                    _error(
                        row.line,
                        "department_head",
                        "在籍していない人は部門長になれません",
                        "a person who is not active cannot be a department head",
                    )
                )
            elif code in first:
                self.errors.append(
                    _error(
                        row.line,
                        "department_head",
                        f"部署「{code}」の部門長は{first[code]}行目ですでに指定されています",
                        f"department '{code}' already has its head on line {first[code]}",
                    )
                )
            else:
                first[code] = row.line

    def kept_links(self) -> None:
        """Links the file does not set (a person not in it, or no such column) must not end up pointing at
        someone this import deactivates."""
        for person in self.db.by_id.values():
            email = person.email.lower()
            row = self.rows.get(email)
            if (row is None and email in self.parsed.emails) or not self._active_after(email):
                continue
            for column, attr in _LINKS.items():
                if row is not None and column in self.parsed.columns:
                    continue  # set by the file: checked by references()
                target = self.db.by_id.get(getattr(person, attr) or 0)
                if target is None or not target.active or self._active_after(target.email.lower()):
                    continue
                target_row = self.rows.get(target.email.lower())
                line = target_row.line if target_row else row.line if row else 1
                ja_who, en_who = _LINK_WORDS[column]
                self.errors.append(
                    _error(
                        line,
                        "active" if target_row else None,
                        f"{target.email} は {person.email} の{ja_who}のままですが、この取り込みで在籍でなくなります",
                        f"{target.email} stays the {en_who} of {person.email} but this import deactivates them",
                    )
                )


# --------------------------------------------------------------------------------------------------------
# Applying a valid file

# OrgRow field -> employees column, for the plain values
_PLAIN = {
    "employee_code": "code",
    "name_ja": "name_ja",
    "name_en": "name_en",
    "locale": "locale",
    "timezone": "timezone",
    "hire_date": "hire_date",
    "work_days_per_week": "work_days_per_week",
    "weekly_hours": "weekly_hours",
    "active": "active",
}

# employees column -> the Employee attribute holding what is stored in it, where the two differ: `locale` is the
# language the person sees (their own choice first), the file's column is `org_locale`
_STORED = {"locale": "org_locale"}


class _Apply:
    def __init__(self, conn: Connection, parsed: _Parsed, db: _Snapshot, now: datetime) -> None:
        self.conn, self.parsed, self.db, self.now = conn, parsed, db, now
        self.columns = parsed.columns
        self.ids = {email: e.id for email, e in db.by_email.items()}
        self.department_ids = {code: d.id for code, d in db.departments.items()}
        self.created = self.updated = self.unchanged = self.deactivated = 0
        self.departments_created = self.departments_updated = self.heads_changed = 0
        self.events: list[Entry] = []
        self.head_of: dict[int, int | None] = {d.id: d.head_id for d in db.departments.values()}
        self.inactive: set[int] = set()  # people this import deactivates

    def departments(self) -> None:
        wanted: dict[str, dict[str, str]] = {}
        for row in self.parsed.rows:
            if row.data.department_code is None:
                continue
            names = wanted.setdefault(row.data.department_code, {})
            if row.data.department_name_ja:
                names.setdefault("name_ja", row.data.department_name_ja)
            if row.data.department_name_en:
                names.setdefault("name_en", row.data.department_name_en)
        for code, names in wanted.items():
            existing = self.db.departments.get(code)
            if existing is None:
                dept_id = people.insert_department(
                    self.conn,
                    code=code,
                    name_ja=names["name_ja"],
                    name_en=names.get("name_en", names["name_ja"]),
                )
                self.department_ids[code] = dept_id
                self.head_of[dept_id] = None
                self.departments_created += 1
                continue
            changes = {k: v for k, v in names.items() if getattr(existing, k) != v}
            if changes:
                people.update_department(self.conn, existing.id, **changes)
                self.departments_updated += 1

    def release_codes(self) -> None:
        """Clear codes that move to another person first, so swapping two codes never trips the unique index."""
        if "employee_code" not in self.columns:
            return
        for row in self.parsed.rows:
            existing = self.db.by_email.get(row.data.email)
            if existing is not None and existing.code and existing.code != row.data.employee_code:
                people.update_employee(self.conn, existing.id, code=None, updated_at=self.now)

    def _values(self, row: OrgRow, new: bool) -> dict[str, Any]:
        values: dict[str, Any] = {"email": row.email}
        for attr, col in _PLAIN.items():
            if (
                new or attr in self.columns or attr == "active"
            ):  # being in the file means active unless it says not
                values[col] = getattr(row, attr)
        if new or "department_code" in self.columns:
            values["department_id"] = (
                self.department_ids[row.department_code] if row.department_code else None
            )
        return values

    def _links(self, row: OrgRow, new: bool) -> tuple[dict[str, int | None], bool]:
        """manager_id / substitute_id as far as known now, and whether some wait for a later row's insert."""
        links: dict[str, int | None] = {}
        waiting = False
        for attr, col in _LINKS.items():
            if not (new or attr in self.columns):
                continue
            target = getattr(row, attr)
            if target is None:
                links[col] = None
            elif target in self.ids:
                links[col] = self.ids[target]
            else:
                waiting = True
        return links, waiting

    def employees(self, progress: Callable[[int, int], None] | None) -> None:
        rows = self.parsed.rows
        waiting: list[OrgRow] = []
        for done, row in enumerate(rows, start=1):
            existing = self.db.by_email.get(row.data.email)
            values = self._values(row.data, new=existing is None)
            links, waits = self._links(row.data, new=existing is None)
            values.update(links)
            if waits:
                waiting.append(row.data)
            if existing is None:
                self.ids[row.data.email] = people.insert_employee(
                    self.conn, roles=set(row.data.roles), created_at=self.now, updated_at=self.now, **values
                )
                self.created += 1
            else:
                self._update(existing, row.data, values, changed=waits)
            if progress is not None:
                progress(done, len(rows))
        for data in waiting:
            links = {
                col: self.ids[getattr(data, attr)]
                for attr, col in _LINKS.items()
                if getattr(data, attr) is not None and getattr(data, attr) in self.ids
            }
            people.update_employee(self.conn, self.ids[data.email], updated_at=self.now, **links)

    def _update(self, existing: people.Employee, row: OrgRow, values: dict[str, Any], changed: bool) -> None:
        changes = {k: v for k, v in values.items() if getattr(existing, _STORED.get(k, k)) != v}
        roles_change = "roles" in self.columns and set(existing.roles) != set(row.roles)
        if changes:
            people.update_employee(self.conn, existing.id, updated_at=self.now, **changes)
        if roles_change:
            people.set_roles(self.conn, existing.id, set(row.roles))
        if changes or roles_change or changed:
            self.updated += 1
        else:
            self.unchanged += 1
        if existing.active and changes.get("active") is False:
            self.inactive.add(existing.id)
            self.events.append(
                Entry(
                    kind="employee.deactivated",
                    actor_id=None,
                    data={"employee_id": existing.id, "email": row.email, "reason": "marked_inactive"},
                )
            )

    def heads(self) -> None:
        """Heads the file marks; someone the file no longer marks (or who moved) stops heading."""
        if "department_head" not in self.columns:
            return
        wanted: dict[int, int | None] = {
            self.department_ids[r.data.department_code]: self.ids[r.data.email]
            for r in self.parsed.rows
            if r.data.department_head and r.data.department_code
        }
        in_file = {self.ids[r.data.email] for r in self.parsed.rows}
        for dept_id, head_id in self.head_of.items():
            if dept_id not in wanted and head_id in in_file:
                wanted[dept_id] = None
        self._set_heads(wanted)

    def _set_heads(self, wanted: dict[int, int | None]) -> None:
        for dept_id, head_id in wanted.items():
            if self.head_of.get(dept_id) != head_id:
                people.update_department(self.conn, dept_id, head_id=head_id)
                self.head_of[dept_id] = head_id
                self.heads_changed += 1

    def deactivate_missing(self) -> None:
        in_file = {r.data.email for r in self.parsed.rows}
        gone = [e for email, e in self.db.by_email.items() if e.active and email not in in_file]
        for person in gone:
            people.update_employee(self.conn, person.id, active=False, updated_at=self.now)
            self.events.append(
                Entry(
                    kind="employee.deactivated",
                    actor_id=None,
                    data={"employee_id": person.id, "email": person.email, "reason": "not_in_file"},
                )
            )
            self.inactive.add(person.id)
        self.deactivated = len(gone)

    def clear_heads_of_the_inactive(self) -> None:
        """A department headed by someone this import deactivates has no head until HR names one."""
        self._set_heads({d: None for d, head in self.head_of.items() if head in self.inactive})


def import_org(
    db: Database,
    data: bytes,
    *,
    deactivate_missing: bool = False,
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Validate the whole file, then apply it in one transaction; with any error, change nothing.

    Raises OrgImportError when the bytes are not a CSV text file; problems inside the file come back in
    `ImportReport.errors`.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    parsed = _parse(decode_csv(data))
    with db.unit_of_work() as conn:
        snapshot = _Snapshot.load(conn)
        errors = parsed.errors + _Checks(parsed, snapshot, deactivate_missing).run()
        if errors:
            errors.sort(key=lambda e: (e.line, _COLUMN_ORDER.get(e.column or "", len(COLUMNS))))
            return ImportReport(0, 0, 0, 0, 0, errors=errors)
        apply = _Apply(conn, parsed, snapshot, now)
        apply.departments()
        apply.release_codes()
        apply.employees(progress)
        apply.heads()
        if deactivate_missing:
            apply.deactivate_missing()
        apply.clear_heads_of_the_inactive()
        summary = {
            "rows": len(parsed.rows),
            "created": apply.created,
            "updated": apply.updated,
            "unchanged": apply.unchanged,
            "deactivated": apply.deactivated,
            "departments_created": apply.departments_created,
            "departments_updated": apply.departments_updated,
            "heads_changed": apply.heads_changed,
            "deactivate_missing": deactivate_missing,
            "file_sha256": hashlib.sha256(data).hexdigest(),
        }
        record(conn, now, [Entry(kind="org.import", actor_id=None, data=summary), *apply.events])
    return ImportReport(
        apply.created, apply.updated, apply.unchanged, apply.deactivated, apply.departments_created
    )
