"""`madoguchi broadcast send | list | report [--csv] | remind | cancel` against a real SQLite file."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_cli import DEMO_ORG, Invoke, db_path, flat, invoke, migrated  # noqa: F401  (fixtures)


def test_send_list_report_and_csv(invoke: Invoke, migrated: Path, tmp_path: Path) -> None:  # noqa: F811
    invoke("org", "import", str(DEMO_ORG))
    hr = _hr_email(migrated)
    refused = invoke("broadcast", "send", "--audience", "departments:NOPE", "--ja", "テスト", "--as", hr, code=1)
    assert "Unknown department code(s): NOPE" in flat(refused.stderr)
    not_hr = invoke("broadcast", "send", "--audience", "everyone", "--ja", "x", "--as", _someone(migrated), code=1)
    assert "Only HR and admins" in flat(not_hr.stderr)

    sent = invoke("broadcast", "send", "--audience", "everyone", "--ja", "年末調整の書類を提出してください",
                  "--en", "Please hand in your year-end adjustment papers", "--ack", "--as", hr)
    assert "Broadcast #1 is on its way to" in flat(sent.stdout)
    listed = invoke("broadcast", "list")
    assert "│ 1  │" in listed.stdout
    report = invoke("broadcast", "report", "1")
    assert "outstanding" in flat(report.stdout)
    out = tmp_path / "report.csv"
    invoke("broadcast", "report", "1", "--csv", str(out))
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and "社員番号" in data.decode("utf-8-sig").splitlines()[0]
    assert "送信待ち" in data.decode("utf-8-sig")
    reminded = invoke("broadcast", "remind", "1", "--as", hr)
    assert "Reminded the" in flat(reminded.stdout)
    invoke("broadcast", "cancel", "1", "--as", hr)
    invoke("broadcast", "report", "99", code=1)


def _hr_email(path: Path) -> str:
    from tests.integration.test_cli import sql

    return str(sql(path, "SELECT e.email FROM employees e JOIN employee_roles r ON r.employee_id = e.id "
                         "WHERE r.role = 'hr' ORDER BY e.id LIMIT 1")[0][0])


def _someone(path: Path) -> str:
    from tests.integration.test_cli import sql

    return str(sql(path, "SELECT e.email FROM employees e WHERE NOT EXISTS (SELECT 1 FROM employee_roles r "
                         "WHERE r.employee_id = e.id) ORDER BY e.id LIMIT 1")[0][0])
