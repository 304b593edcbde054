"""workflows.yaml validation: the shipped file loads; a broken one is refused with problems that each name the
file, the path inside it and what was expected; the editor's JSON Schema matches the pydantic models."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.policy import Condition, Policy, PolicyError, json_schema, load_policy, parse_policy
from config.settings import DEFAULT_WORKFLOWS

SHIPPED_SCHEMA = DEFAULT_WORKFLOWS.parent / "workflows.schema.json"
Data = dict[str, Any]


@pytest.fixture(scope="module")
def shipped_data() -> Data:
    return yaml.safe_load(DEFAULT_WORKFLOWS.read_text(encoding="utf-8"))


def write_yaml(path: Path, data: Data) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


# --- the shipped file -------------------------------------------------------------------------------------

def test_shipped_file_loads_with_the_four_types(policy: Policy) -> None:
    assert list(policy.types) == ["leave", "expense", "stamp", "it"]
    assert {key: spec.prefix for key, spec in policy.types.items()} == {
        "leave": "LV", "expense": "EXP", "stamp": "STP", "it": "IT"}
    assert {key: spec.behaviour for key, spec in policy.types.items()} == {
        "leave": "leave", "expense": "expense", "stamp": "generic", "it": "generic"}
    assert policy.company.timezone == "Asia/Tokyo"
    assert policy.company.fiscal_year_start_month == 4


def test_shipped_expense_route_needs_the_department_head_over_100000_yen(policy: Policy) -> None:
    route = policy.type("expense").route
    assert [step.id for step in route] == ["manager", "department_head", "finance"]
    head = route[1]
    assert head.approver == "department_head"
    assert head.kind == "approval"
    assert head.when == [Condition(fact="total", gt=Decimal(100000))]
    assert route[2].approver_refs == ["role:finance"] and route[2].require == "any"


def test_shipped_leave_and_it_routes(policy: Policy) -> None:
    leave = policy.type("leave")
    assert leave.field("period") is not None and leave.field("period").type == "date_range"  # type: ignore[union-attr]
    assert [(s.id, s.kind) for s in leave.route] == [("manager", "approval"), ("hr_fyi", "inform")]
    assert [(s.id, s.kind) for s in policy.type("it").route] == [("it_queue", "queue")]


def test_a_copy_of_the_shipped_data_loads_from_another_file(tmp_path: Path, shipped_data: Data) -> None:
    # the round trip the broken-file tests below rely on: dumping the data again changes nothing
    assert load_policy(write_yaml(tmp_path / "copy.yaml", shipped_data)) == load_policy(DEFAULT_WORKFLOWS)


# --- broken files: one mistake each, one problem naming file, path and what was expected ---------------------

def _set(path: str, value: Any) -> Callable[[Data], None]:
    """A mutation setting the value at a dotted path such as 'types.expense.route.2.approver'."""
    *parents, last = path.split(".")

    def mutate(data: Data) -> None:
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value
    return mutate


def _drop_leave_period(data: Data) -> None:
    fields = data["types"]["leave"]["fields"]
    fields[:] = [f for f in fields if f["id"] != "period"]


def _misspell_approver(data: Data) -> None:
    step = data["types"]["leave"]["route"][0]
    step["aprover"] = step.pop("approver")


def _all_inform(data: Data) -> None:
    data["types"]["it"]["route"][0]["kind"] = "inform"
    del data["types"]["it"]["route"][0]["channel"]  # (a channel is for queues only: another error)


def _channel_on_an_approval(data: Data) -> None:
    data["types"]["leave"]["route"][0]["channel"] = "#hr"


def _require_three_of_two(data: Data) -> None:
    step = data["types"]["stamp"]["route"][1]
    del step["approver"]
    step["approvers"] = ["role:legal", "person:boss@example.jp"]
    step["require"] = 3


BROKEN = [
    pytest.param(_set("types.expense.route.2.approver", "boss"), "types.expense.route[2].approver",
                 ["unknown approver 'boss'", "expected one of: manager, manager:N", "department_head", "role:<name>",
                  "person:<email>"], id="bad-approver"),
    pytest.param(_set("types.stamp.fields.0.type", "textarea"), "types.stamp.fields[0].type",
                 ["'text'", "'multiline'", "'date_range'", "'line_items'"], id="unknown-field-type"),
    pytest.param(_set("types.it.fields.0.options", []), "types.it.fields[0]",
                 ["a select field needs a non-empty 'options' list"], id="select-without-options"),
    pytest.param(_misspell_approver, "types.leave.route[0].aprover", ["Extra inputs are not permitted"],
                 id="misspelled-key"),
    pytest.param(_set("types.leave.titel", {"ja": "休暇", "en": "Leave"}), "types.leave.titel",
                 ["Extra inputs are not permitted"], id="misspelled-type-key"),
    pytest.param(_set("types.expense.route.1.when.0.fact", "totl"), "types.expense.route[1].when[0].fact",
                 ["unknown fact 'totl'", "expected one of:", "total", "purpose", "requester.department"],
                 id="condition-on-unknown-fact"),
    pytest.param(_drop_leave_period, "types.leave.fields",
                 ["a leave type needs a field 'period' of type date_range"], id="leave-without-period"),
    pytest.param(_set("company.timezone", "Asia/Tokio"), "company.timezone",
                 ["unknown time zone 'Asia/Tokio'", "expected an IANA name such as Asia/Tokyo"], id="unknown-zone"),
    pytest.param(_set("types.stamp.route.1.id", "manager"), "types.stamp.route",
                 ["step id 'manager' is used more than once"], id="duplicate-step-ids"),
    pytest.param(_all_inform, "types.it.route", ["a route needs at least one approval or queue step"],
                 id="all-inform-route"),
    pytest.param(_channel_on_an_approval, "types.leave.route[0]", ["'channel' is only for queue steps"],
                 id="channel-on-an-approval"),
    pytest.param(_set("types.it.route.0.channel", "it help"), "types.it.route[0].channel", ["#"],
                 id="channel-not-a-channel"),
    pytest.param(_require_three_of_two, "types.stamp.route[1].require",
                 ["needs 3 approvals but lists 2 approvers"], id="require-3-of-2"),
    pytest.param(_set("types.expense.prefix", "exp"), "types.expense.prefix", ["^[A-Z][A-Z0-9]{1,5}$"],
                 id="lowercase-prefix"),
]


@pytest.mark.parametrize(("mutate", "where", "expected"), BROKEN)
def test_a_broken_file_names_file_path_and_what_was_expected(
        tmp_path: Path, shipped_data: Data, mutate: Callable[[Data], None], where: str, expected: list[str]) -> None:
    data = copy.deepcopy(shipped_data)
    mutate(data)
    path = write_yaml(tmp_path / "workflows.yaml", data)

    problems = problems_of(path)

    assert len(problems) == 1, problems
    prefix = f"{path}: {where}: "
    assert problems[0].startswith(prefix), problems[0]
    for text in expected:
        assert text in problems[0][len(prefix):]


def test_every_problem_is_reported_at_once(tmp_path: Path, shipped_data: Data) -> None:
    data = copy.deepcopy(shipped_data)
    _set("types.expense.route.2.approver", "boss")(data)
    _set("types.stamp.fields.0.type", "textarea")(data)
    _set("company.timezone", "Mars/Olympus")(data)
    path = write_yaml(tmp_path / "workflows.yaml", data)

    wheres = sorted(p.split(": ")[1] for p in problems_of(path))

    assert wheres == ["company.timezone", "types.expense.route[2].approver", "types.stamp.fields[0].type"]


def test_parse_policy_names_the_source_it_is_given(shipped_data: Data) -> None:
    data = copy.deepcopy(shipped_data)
    _set("types.expense.route.2.approver", "boss")(data)
    with pytest.raises(PolicyError) as info:
        parse_policy(data, "from-the-database")
    assert info.value.problems[0].startswith("from-the-database: types.expense.route[2].approver: ")


# --- files that are not YAML, not UTF-8 or not there ------------------------------------------------------

def test_invalid_yaml_names_line_and_column(tmp_path: Path) -> None:
    lines = DEFAULT_WORKFLOWS.read_text(encoding="utf-8").splitlines(keepends=True)
    line_no = lines.index("  expense:\n") + 1
    lines[line_no - 1] = "\texpense:\n"  # a tab where YAML wants spaces
    path = tmp_path / "workflows.yaml"
    path.write_text("".join(lines), encoding="utf-8")

    [problem] = problems_of(path)

    assert problem.startswith(f"{path}:{line_no}:1: invalid YAML: ")
    assert "'\\t'" in problem


def test_unclosed_flow_mapping_names_where_yaml_gave_up(tmp_path: Path) -> None:
    path = tmp_path / "workflows.yaml"
    path.write_text("version: 1\ntypes:\n  leave: {prefix: LV\n  bad: : :\n", encoding="utf-8")

    [problem] = problems_of(path)

    assert problem.startswith(f"{path}:4:6: invalid YAML: ")
    assert "expected ',' or '}'" in problem


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "workflows.yaml"
    path.write_bytes(DEFAULT_WORKFLOWS.read_text(encoding="utf-8").encode("cp932"))  # saved as Shift_JIS

    [problem] = problems_of(path)

    assert problem.startswith(f"{path}: not UTF-8 text (")
    assert "at byte" in problem


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "workflows.yaml"
    assert problems_of(path) == [f"{path}: file not found"]


@pytest.mark.parametrize("text", ["", "- leave\n- expense\n", "just words\n"], ids=["empty", "list", "scalar"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "workflows.yaml"
    path.write_text(text, encoding="utf-8")
    assert problems_of(path) == [f"{path}: expected a mapping with 'types' at the top level"]


def test_no_types_at_all(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "workflows.yaml", {"version": 1, "types": {}})
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: types: ")


# --- the editor's JSON Schema -----------------------------------------------------------------------------

def test_shipped_schema_file_matches_the_models() -> None:
    # regenerate with: madoguchi config schema --out config/defaults/workflows.schema.json
    shipped = json.loads(SHIPPED_SCHEMA.read_text(encoding="utf-8"))
    assert shipped == json_schema()


def test_the_schema_accepts_the_shipped_file_and_rejects_a_misspelled_key(shipped_data: Data) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)

    assert [e.message for e in validator.iter_errors(shipped_data)] == []

    data = copy.deepcopy(shipped_data)
    _set("types.leave.titel", "x")(data)
    errors = list(validator.iter_errors(data))
    assert len(errors) == 1 and "'titel' was unexpected" in errors[0].message
    assert list(errors[0].absolute_path) == ["types", "leave"]


def test_operator_timezone_overrides_the_company_zone() -> None:
    from config.policy import with_timezone

    shipped = load_policy(DEFAULT_WORKFLOWS)
    assert with_timezone(shipped, None) is shipped
    moved = with_timezone(shipped, "Europe/London")
    assert moved.company.timezone == "Europe/London" and shipped.company.timezone == "Asia/Tokyo"
    assert moved.company.closures == shipped.company.closures
    with pytest.raises(PolicyError) as exc:
        with_timezone(shipped, "Mars/Olympus")
    assert "MADOGUCHI_TIMEZONE" in exc.value.problems[0]
