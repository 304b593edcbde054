"""The org import against a real (in-memory) SQLite database: encodings, headers, validation, re-import."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from models import people
from models.audit import audit_events
from models.db import Database
from workflow import audit
from workflow.org_import import ImportReport, OrgImportError, RowError, decode_csv, import_org

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
DEMO = Path(__file__).resolve().parents[2] / "config" / "defaults" / "demo_org.csv"

EN_HEADER = "employee_code,email,name_ja,name_en,department_code,department_name_ja,manager_email,roles"
JA_HEADER = "社員番号,メールアドレス,氏名,氏名（英字）,部署コード,部署名,上長メールアドレス,役割"
SMALL = [
    "E1,boss@example.jp,社長 太郎,Taro Shacho,EXEC,役員,,admin",
    "E2,alice@example.jp,有村 亜里沙,Arisa Arimura,SALES,営業部,boss@example.jp,",
    "E3,bob@example.jp,坊田 茂,Shigeru Bota,SALES,営業部,alice@example.jp,finance",
]


@pytest.fixture
def database() -> Database:
    db = Database("sqlite://")
    db.create_all()
    return db


def csv_bytes(header: str, rows: list[str], encoding: str = "utf-8") -> bytes:
    return ("\r\n".join([header, *rows]) + "\r\n").encode(encoding)


def run(db: Database, data: bytes, **kwargs: object) -> ImportReport:
    return import_org(db, data, now=NOW, **kwargs)  # type: ignore[arg-type]


def everyone(db: Database) -> dict[str, people.Employee]:
    with db.unit_of_work(write=False) as conn:
        return {e.email: e for e in people.all_employees(conn)}


def departments(db: Database) -> dict[str, people.Department]:
    with db.unit_of_work(write=False) as conn:
        return {d.code: d for d in people.all_departments(conn)}


def counts(db: Database) -> tuple[int, int, int, int]:
    with db.unit_of_work(write=False) as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (people.employees, people.departments, people.employee_roles, audit_events)
        )


def events(db: Database) -> list[tuple[str, str]]:
    with db.unit_of_work(write=False) as conn:
        return [(r.kind, r.data) for r in conn.execute(sa.select(audit_events).order_by(audit_events.c.seq))]


def lines_and_columns(report: ImportReport) -> list[tuple[int, str | None]]:
    return [(e.line, e.column) for e in report.errors]


def assert_nothing_imported(db: Database, report: ImportReport) -> None:
    assert report.errors
    assert (report.created, report.updated, report.unchanged, report.deactivated) == (0, 0, 0, 0)
    assert counts(db) == (0, 0, 0, 0)


# --- the demo company -------------------------------------------------------------------------------------


def test_demo_file_is_utf8_with_bom_and_japanese_headers() -> None:
    raw = DEMO.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert decode_csv(raw).splitlines()[0].startswith("社員番号,メールアドレス,氏名")


def test_demo_file_imports(database: Database) -> None:
    seen: list[tuple[int, int]] = []
    report = run(database, DEMO.read_bytes(), progress=lambda done, total: seen.append((done, total)))

    assert report == ImportReport(created=12, updated=0, unchanged=0, deactivated=0, departments_created=7)
    assert seen == [(i, 12) for i in range(1, 13)]
    staff, depts = everyone(database), departments(database)
    ceo = staff["yamada.ichiro@example.jp"]
    assert ceo.manager_id is None and depts["EXEC"].head_id == ceo.id
    for code in ("SALES", "FIN", "LEGAL", "GA", "IT", "HR"):
        head = depts[code].head_id
        assert (
            head is not None
            and next(e for e in staff.values() if e.id == head).department_id == depts[code].id
        )
    assert depts["SALES"].name_ja == "営業部" and depts["SALES"].name_en == "Sales"
    by_role = {
        role: {e.email for e in staff.values() if e.has_role(role)}
        for role in ("finance", "legal", "seal_keeper", "it", "hr", "admin")
    }
    assert all(by_role.values())
    assert sum(e.locale == "en" for e in staff.values()) == 1
    part_timer = staff["takahashi.yuki@example.jp"]
    assert (part_timer.work_days_per_week, part_timer.weekly_hours) == (3, 24.0)
    assert staff["suzuki.misaki@example.jp"].manager_id == staff["sato.kenji@example.jp"].id
    assert staff["kobayashi.daisuke@example.jp"].substitute_id == staff["emily.clark@example.jp"].id
    hires = {e.hire_date for e in staff.values()}
    assert len({d.year for d in hires if d}) >= 5
    assert any(d and (date(2026, 11, 24) - d).days < 183 for d in hires)

    with database.unit_of_work(write=False) as conn:
        assert audit.verify(conn) == (1, [])
    assert [kind for kind, _ in events(database)] == ["org.import"]
    assert '"created":12' in events(database)[0][1]


# --- encodings ---------------------------------------------------------------------------------------------


def test_shift_jis_cp932_bytes_import(database: Database) -> None:
    text = (
        DEMO.read_bytes().decode("utf-8-sig").replace("高橋 由紀", "髙橋 由紀")
    )  # 髙: cp932, not plain Shift_JIS
    data = text.encode("cp932")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")

    report = run(database, data)

    assert report.ok and report.created == 12
    staff = everyone(database)
    assert staff["takahashi.yuki@example.jp"].name_ja == "髙橋 由紀"
    assert departments(database)["IT"].name_ja == "情報システム部"


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["utf8", "utf8-bom"])
def test_utf8_with_and_without_bom(database: Database, bom: bytes) -> None:
    report = run(database, bom + csv_bytes(JA_HEADER, SMALL))

    assert report.ok and report.created == 3
    assert set(everyone(database)) == {"boss@example.jp", "alice@example.jp", "bob@example.jp"}


def test_undecodable_bytes_raise_a_bilingual_error(database: Database) -> None:
    for data in (b"email,name\r\n\xff\xfe\xfd\r\n", b"email,name\r\n\x81\x20\r\n", b"email\r\n\x80"):
        with pytest.raises(OrgImportError) as caught:
            run(database, data)
        assert "UTF-8" in caught.value.message.en and "文字コード" in caught.value.message.ja
    with pytest.raises(OrgImportError):
        run(database, "email".encode("utf-16"))  # "Unicode text" from Excel
    assert counts(database) == (0, 0, 0, 0)


# --- headers -----------------------------------------------------------------------------------------------


def test_japanese_and_english_headers_give_the_same_result(database: Database) -> None:
    other = Database("sqlite://")
    other.create_all()

    assert run(database, csv_bytes(JA_HEADER, SMALL)).created == 3
    assert run(other, csv_bytes(EN_HEADER, SMALL)).created == 3

    def shape(db: Database) -> list[tuple[object, ...]]:
        return sorted(
            (e.email, e.code, e.name_ja, e.name_en, e.roles, e.manager_id, e.department_id)
            for e in everyone(db).values()
        )

    assert shape(database) == shape(other)


def test_headers_in_mixed_languages_and_full_width_are_accepted(database: Database) -> None:
    header = "ＥＭＡＩＬ,氏名,Name EN,部署コード,Department Name,入社日,週所定労働日数"
    row = (
        "ｈａｎａｋｏ＠ｅｘａｍｐｌｅ．ｊｐ,花子　山田,Ｈａｎａｋｏ　Ｙａｍａｄａ,D1,開発部,２０２４/４/１,４"
    )

    report = run(database, csv_bytes(header, [row]))

    assert report.ok, report.errors
    hanako = everyone(database)["hanako@example.jp"]
    assert (hanako.name_ja, hanako.name_en) == ("花子 山田", "Hanako Yamada")
    assert (hanako.hire_date, hanako.work_days_per_week) == (date(2024, 4, 1), 4)


def test_unknown_header_column_is_an_error_listing_the_accepted_names(database: Database) -> None:
    report = run(database, csv_bytes(EN_HEADER + ",shoe_size", [row + ",27" for row in SMALL]))

    assert lines_and_columns(report) == [(1, "shoe_size")]
    message = report.errors[0].message
    assert "shoe_size" in message.en and "manager_email / 上長メールアドレス" in message.en
    assert message.ja.startswith("1行目") and "使える列" in message.ja
    assert_nothing_imported(database, report)


def test_missing_required_column_is_reported_once(database: Database) -> None:
    report = run(database, csv_bytes("email,name_ja", ["a@example.jp,甲", "b@example.jp,乙"]))

    assert lines_and_columns(report) == [(1, "name_en")]
    assert_nothing_imported(database, report)


@pytest.mark.parametrize(
    "data", [b"", b"\xef\xbb\xbf", b"\r\n\r\n", EN_HEADER.encode()], ids=["empty", "bom", "blank", "header"]
)
def test_empty_file_or_header_only_is_an_error(database: Database, data: bytes) -> None:
    report = run(database, data)

    assert lines_and_columns(report) == [(1, None)]
    assert_nothing_imported(database, report)


# --- row validation ----------------------------------------------------------------------------------------


def test_three_bad_rows_are_all_reported_with_physical_line_numbers_and_nothing_is_imported(
    database: Database,
) -> None:
    run(database, csv_bytes(EN_HEADER, SMALL[:1]))
    before = counts(database)
    data = (
        "email,name_ja,name_en,department_code,department_name_ja,hire_date\r\n"  # 1
        'ok1@example.jp,一号,Ichigo,D1,"開発\r\n部",2024-04-01\r\n'  # 2-3: a quoted cell spans lines
        "taro@,太郎,Taro,D1,,2024-04-01\r\n"  # 4: bad email
        "\r\n"  # 5: blank
        "ok2@example.jp,二号,Nigo,D1,,2024-04-01\r\n"  # 6
        "ok3@example.jp,三号,Sango,D1,,2024-02-30\r\n"  # 7: no such date
        "ok4@example.jp,四号,,D1,,2024-04-01\r\n"  # 8: name_en empty
    ).encode()

    report = run(database, data)

    assert lines_and_columns(report) == [(4, "email"), (7, "hire_date"), (8, "name_en")]
    assert report.errors[0].message.en == "line 4, email: 'taro@' is not an email address"
    assert report.errors[0].message.ja.startswith("4行目 メールアドレス: ")
    assert str(report.errors[1]).startswith("line 7, hire_date: ")
    assert counts(database) == before
    assert (report.created, report.updated, report.unchanged) == (0, 0, 0)


@pytest.mark.parametrize("value", ["2024-02-30", "yesterday", "2024-13-01", "45383", "01/04/2024"])
def test_bad_date(database: Database, value: str) -> None:
    report = run(database, csv_bytes("email,name_ja,name_en,hire_date", [f"a@example.jp,甲,Ko,{value}"]))

    assert lines_and_columns(report) == [(2, "hire_date")]
    assert value in report.errors[0].message.en and "入社日" in report.errors[0].message.ja
    assert_nothing_imported(database, report)


@pytest.mark.parametrize(
    "value", ["2024-04-01", "2024/04/01", "2024/4/1", "２０２４－０４－０１", "2024年4月1日"]
)
def test_dates_in_the_usual_spellings(database: Database, value: str) -> None:
    assert run(database, csv_bytes("email,name_ja,name_en,hire_date", [f"a@example.jp,甲,Ko,{value}"])).ok
    assert everyone(database)["a@example.jp"].hire_date == date(2024, 4, 1)


def test_bad_role(database: Database) -> None:
    report = run(database, csv_bytes(EN_HEADER, [*SMALL[:2], SMALL[2].replace("finance", "finance;boss")]))

    assert lines_and_columns(report) == [(4, "roles")]
    assert (
        "'boss' is not a role" in report.errors[0].message.en and "seal_keeper" in report.errors[0].message.en
    )
    assert_nothing_imported(database, report)


def test_roles_separated_by_semicolon_comma_or_japanese_comma(database: Database) -> None:
    rows = [
        'a@example.jp,甲,Ko,"hr, finance"',
        "b@example.jp,乙,Otsu,legal;seal_keeper",
        "c@example.jp,丙,Hei,IT、総務",
    ]

    assert run(database, csv_bytes("email,name_ja,name_en,roles", rows)).ok

    staff = everyone(database)
    assert staff["a@example.jp"].roles == ("finance", "hr")
    assert staff["b@example.jp"].roles == ("legal", "seal_keeper")
    assert staff["c@example.jp"].roles == ("general_affairs", "it")


def test_bad_timezone(database: Database) -> None:
    rows = ["a@example.jp,甲,Ko,Asia/Tokio", "b@example.jp,乙,Otsu,america/new_york"]
    report = run(database, csv_bytes("email,name_ja,name_en,timezone", rows))

    assert lines_and_columns(report) == [(2, "timezone")]
    assert "Asia/Tokio" in report.errors[0].message.en
    assert_nothing_imported(database, report)


def test_defaults_and_valid_timezone(database: Database) -> None:
    rows = ["a@example.jp,甲,Ko,", "b@example.jp,乙,Otsu,America/New_York"]
    assert run(database, csv_bytes("email,name_ja,name_en,timezone", rows)).ok
    staff = everyone(database)
    a, b = staff["a@example.jp"], staff["b@example.jp"]
    assert (a.timezone, a.locale, a.work_days_per_week, a.active, a.roles) == (
        "Asia/Tokyo",
        "ja",
        5,
        True,
        (),
    )
    assert b.timezone == "America/New_York"


@pytest.mark.parametrize(
    "column, value",
    [
        ("work_days_per_week", "8"),
        ("work_days_per_week", "2.5"),
        ("weekly_hours", "81"),
        ("weekly_hours", "many"),
        ("locale", "fr"),
        ("department_head", "maybe"),
        ("active", "perhaps"),
        ("name_en", "山田 太郎"),
    ],
)
def test_other_bad_values(database: Database, column: str, value: str) -> None:
    header = "email,name_ja,name_en" + ("" if column == "name_en" else f",{column}")
    row = "a@example.jp,甲," + (value if column == "name_en" else f"Ko,{value}")

    report = run(database, csv_bytes(header, [row]))

    assert lines_and_columns(report) == [(2, column)]
    assert_nothing_imported(database, report)


# --- cross-row checks --------------------------------------------------------------------------------------


def test_duplicate_email_case_insensitive(database: Database) -> None:
    report = run(database, csv_bytes(EN_HEADER, [*SMALL, "E4,Alice@Example.jp,別人,Other Person,,,,"]))

    assert lines_and_columns(report) == [(5, "email")]
    assert "line 3" in report.errors[0].message.en and "3行目" in report.errors[0].message.ja
    assert_nothing_imported(database, report)


def test_duplicate_employee_code(database: Database) -> None:
    report = run(database, csv_bytes(EN_HEADER, [*SMALL, "E2,carol@example.jp,別人,Carol,,,,"]))

    assert lines_and_columns(report) == [(5, "employee_code")]
    assert_nothing_imported(database, report)


def test_unknown_manager_and_substitute(database: Database) -> None:
    header = "email,name_ja,name_en,manager_email,substitute_email"
    rows = ["a@example.jp,甲,Ko,nobody@example.jp,", "b@example.jp,乙,Otsu,a@example.jp,ghost@example.jp"]

    report = run(database, csv_bytes(header, rows))

    assert lines_and_columns(report) == [(2, "manager_email"), (3, "substitute_email")]
    assert "nobody@example.jp is neither in this file nor in the database" in report.errors[0].message.en
    assert_nothing_imported(database, report)


def test_manager_already_in_the_database_is_fine(database: Database) -> None:
    run(database, csv_bytes(EN_HEADER, SMALL))

    report = run(
        database, csv_bytes(EN_HEADER, ["E9,new@example.jp,新人 花子,Hanako Shinjin,SALES,,bob@example.jp,"])
    )

    assert report.ok and report.created == 1
    staff = everyone(database)
    assert staff["new@example.jp"].manager_id == staff["bob@example.jp"].id


def test_manager_may_appear_after_the_report(database: Database) -> None:
    report = run(database, csv_bytes(EN_HEADER, list(reversed(SMALL))))

    assert report.ok
    staff = everyone(database)
    assert staff["bob@example.jp"].manager_id == staff["alice@example.jp"].id
    assert staff["alice@example.jp"].manager_id == staff["boss@example.jp"].id


def test_manager_cycle(database: Database) -> None:
    rows = [
        "a@example.jp,甲,Ko,c@example.jp",
        "b@example.jp,乙,Otsu,a@example.jp",
        "c@example.jp,丙,Hei,b@example.jp",
        "d@example.jp,丁,Tei,a@example.jp",
        "e@example.jp,戊,Bo,e@example.jp",
    ]
    report = run(database, csv_bytes("email,name_ja,name_en,manager_email", rows))

    assert lines_and_columns(report) == [(2, "manager_email"), (6, "manager_email")]
    assert "cycle" in report.errors[0].message.en and "循環" in report.errors[0].message.ja
    assert "lines 2, 3, 4" in report.errors[0].message.en
    assert "own manager" in report.errors[1].message.en
    assert_nothing_imported(database, report)


def test_manager_cycle_through_the_database(database: Database) -> None:
    run(database, csv_bytes(EN_HEADER, SMALL))
    # bob (not in this file) reports to alice; making alice report to bob closes a loop
    report = run(
        database,
        csv_bytes("email,name_ja,name_en,manager_email", ["alice@example.jp,亜,Alice,bob@example.jp"]),
    )

    assert lines_and_columns(report) == [(2, "manager_email")]
    assert "cycle" in report.errors[0].message.en


def test_two_heads_for_one_department(database: Database) -> None:
    header = "email,name_ja,name_en,department_code,department_name_ja,department_head"
    rows = [
        "a@example.jp,甲,Ko,D1,開発部,yes",
        "b@example.jp,乙,Otsu,D1,開発部,はい",
        "c@example.jp,丙,Hei,D2,総務部,1",
    ]

    report = run(database, csv_bytes(header, rows))

    assert lines_and_columns(report) == [(3, "department_head")]
    assert "line 2" in report.errors[0].message.en
    assert_nothing_imported(database, report)


def test_new_department_needs_a_name_and_names_must_agree(database: Database) -> None:
    header = "email,name_ja,name_en,department_code,department_name_ja"
    rows = ["a@example.jp,甲,Ko,D1,", "b@example.jp,乙,Otsu,D2,開発部", "c@example.jp,丙,Hei,D2,開発二部"]

    report = run(database, csv_bytes(header, rows))

    assert lines_and_columns(report) == [(2, "department_name_ja"), (4, "department_name_ja")]
    assert_nothing_imported(database, report)


def test_employee_code_held_by_someone_else_in_the_database(database: Database) -> None:
    run(database, csv_bytes(EN_HEADER, SMALL))

    report = run(database, csv_bytes(EN_HEADER, ["E2,carol@example.jp,別人,Carol,,,,"]))

    assert lines_and_columns(report) == [(2, "employee_code")]
    assert "alice@example.jp" in report.errors[0].message.en


def test_swapping_two_employee_codes(database: Database) -> None:
    run(database, csv_bytes(EN_HEADER, SMALL))
    swapped = [SMALL[0], SMALL[1].replace("E2,", "E3,"), SMALL[2].replace("E3,", "E2,")]

    report = run(database, csv_bytes(EN_HEADER, swapped))

    assert report.ok and (report.updated, report.unchanged) == (2, 1)
    staff = everyone(database)
    assert (staff["alice@example.jp"].code, staff["bob@example.jp"].code) == ("E3", "E2")


# --- re-import ---------------------------------------------------------------------------------------------


def test_reimport_updates_in_place(database: Database) -> None:
    run(database, DEMO.read_bytes())
    ids = {email: e.id for email, e in everyone(database).items()}
    text = DEMO.read_bytes().decode("utf-8-sig")
    text = text.replace(
        "鈴木 美咲,Misaki Suzuki,SALES,営業部,Sales,sato.kenji@example.jp,",
        "鈴木 美咲,Misaki Suzuki,FIN,経理部,Finance,tanaka.hiroshi@example.jp,finance",
    )
    text = text.replace("IT,情報システム部,IT,", "IT,情報システム部,Information Systems,")

    report = run(database, text.encode("utf-8-sig"))

    assert report == ImportReport(created=0, updated=1, unchanged=11, deactivated=0, departments_created=0)
    staff = everyone(database)
    assert {email: e.id for email, e in staff.items()} == ids
    misaki = staff["suzuki.misaki@example.jp"]
    assert misaki.department_id == departments(database)["FIN"].id
    assert misaki.manager_id == ids["tanaka.hiroshi@example.jp"] and misaki.roles == ("finance",)
    assert departments(database)["IT"].name_en == "Information Systems"
    assert counts(database)[:2] == (12, 7)


def test_reimporting_the_same_file_changes_nothing(database: Database) -> None:
    run(database, DEMO.read_bytes())
    before = everyone(database)

    report = run(database, DEMO.read_bytes())

    assert report == ImportReport(created=0, updated=0, unchanged=12, deactivated=0, departments_created=0)
    assert everyone(database) == before


def test_a_column_left_out_keeps_its_values(database: Database) -> None:
    run(database, csv_bytes(EN_HEADER, SMALL))

    report = run(database, csv_bytes("email,name_ja,name_en", ["bob@example.jp,坊田 茂,Shigeru Bota"]))

    assert report.ok and report.unchanged == 1
    bob = everyone(database)["bob@example.jp"]
    assert bob.roles == ("finance",) and bob.manager_id is not None and bob.code == "E3"


def test_a_new_head_replaces_the_old_one(database: Database) -> None:
    header = "email,name_ja,name_en,department_code,department_name_ja,department_head"
    run(
        database, csv_bytes(header, ["a@example.jp,甲,Ko,D1,開発部,yes", "b@example.jp,乙,Otsu,D1,開発部,no"])
    )
    report = run(
        database, csv_bytes(header, ["a@example.jp,甲,Ko,D1,開発部,", "b@example.jp,乙,Otsu,D1,開発部,yes"])
    )

    assert report.ok
    assert departments(database)["D1"].head_id == everyone(database)["b@example.jp"].id


# --- deactivation ------------------------------------------------------------------------------------------


def test_people_missing_from_the_file_are_deactivated_only_with_the_flag(database: Database) -> None:
    run(database, DEMO.read_bytes())
    leaving = ("yoshida.sho@example.jp", "ito.naoko@example.jp")
    lines = [
        line
        for line in DEMO.read_bytes().decode("utf-8-sig").splitlines()
        if line.split(",")[1] not in leaving
    ]
    text = "\r\n".join(lines)
    for email in leaving:  # they were substitutes: the file names nobody instead
        text = text.replace(email, "")
    shorter = text.encode()

    without_flag = run(database, shorter)
    assert without_flag.ok and without_flag.deactivated == 0
    assert all(e.active for e in everyone(database).values())

    report = run(database, shorter, deactivate_missing=True)

    assert report.ok and report.deactivated == 2
    staff = everyone(database)
    assert len(staff) == 12  # nobody deleted
    assert {email for email, e in staff.items() if not e.active} == set(leaving)
    kinds = [kind for kind, _ in events(database)]
    assert kinds.count("employee.deactivated") == 2 and kinds.count("org.import") == 3
    with database.unit_of_work(write=False) as conn:
        assert audit.verify(conn)[1] == []


def test_deactivating_a_head_clears_the_department_head(database: Database) -> None:
    run(database, DEMO.read_bytes())
    text = DEMO.read_bytes().decode("utf-8-sig")
    text = text.replace(
        "HR,人事部,Human Resources,yamada.ichiro@example.jp,hr,ja,Asia/Tokyo,2018/04/01,5,,"
        "yoshida.sho@example.jp,はい,はい",
        "HR,人事部,Human Resources,yamada.ichiro@example.jp,hr,ja,Asia/Tokyo,2018/04/01,5,,"
        "yoshida.sho@example.jp,,いいえ",
    )
    text = text.replace(
        "yoshida.sho@example.jp,吉田 翔,Sho Yoshida,HR,人事部,Human Resources,kato.ayumi@example.jp",
        "yoshida.sho@example.jp,吉田 翔,Sho Yoshida,HR,人事部,Human Resources,yamada.ichiro@example.jp",
    )

    report = run(database, text.encode())

    assert report.ok, report.errors
    assert departments(database)["HR"].head_id is None
    assert not everyone(database)["kato.ayumi@example.jp"].active
    assert [kind for kind, _ in events(database)][-1] == "employee.deactivated"


def test_an_active_person_cannot_keep_a_manager_who_is_leaving(database: Database) -> None:
    run(database, csv_bytes(EN_HEADER, SMALL))
    # alice manages bob; the file marks alice inactive but says nothing about bob
    report = run(database, csv_bytes("email,name_ja,name_en,active", ["alice@example.jp,亜,Alice,no"]))
    assert lines_and_columns(report) == [(2, "active")]
    assert "bob@example.jp" in report.errors[0].message.en

    # with deactivate_missing, a manager who is only in the database would be deactivated
    report = run(
        database,
        csv_bytes("email,name_ja,name_en,manager_email", ["bob@example.jp,坊,Bob,alice@example.jp"]),
        deactivate_missing=True,
    )
    assert lines_and_columns(report) == [(2, "manager_email")]
    assert all(e.active for e in everyone(database).values())


def test_row_error_text() -> None:
    from config.i18n import LocalText

    error = RowError(3, "email", LocalText.of("3行目 メールアドレス: だめ", "line 3, email: bad"))
    assert str(error) == "line 3, email: bad / 3行目 メールアドレス: だめ"


def test_someone_back_in_the_file_is_active_again(database: Database) -> None:
    run(database, csv_bytes(EN_HEADER, SMALL))
    assert run(database, csv_bytes(EN_HEADER, SMALL[:2]), deactivate_missing=True).deactivated == 1
    assert not everyone(database)["bob@example.jp"].active

    report = run(database, csv_bytes(EN_HEADER, SMALL))  # no active column: being listed means active

    assert (report.updated, report.unchanged) == (1, 2)
    assert everyone(database)["bob@example.jp"].active
