"""A request form's whole path, minus HTTP: workflows.yaml -> neutral form -> Block Kit modal (checked by
slack_sdk) -> a view_submission's state as Slack sends it -> payload -> the real engine; and the engine's
errors back under the modal's inputs."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.views import View

from bot.slack.blockkit import errors_response, read_submission, render_form
from config.policy import Policy
from handlers.request_forms import form_for, input_errors, payload_from, read_state
from models.db import Database
from tests.conftest import Clock, Org
from workflow.engine import Engine


def _slack_state(view: dict[str, Any], answers: dict[str, Any]) -> dict[str, Any]:
    """What Slack puts in view.state.values for these answers (every input block is listed, empty or not)."""
    values: dict[str, Any] = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        element = block["element"]
        answer = answers.get(block["block_id"])
        kind = element["type"]
        if kind == "datepicker":
            state = {"type": kind, "selected_date": answer}
        elif kind == "static_select":
            state = {"type": kind, "selected_option": {"text": {"type": "plain_text", "text": str(answer)},
                                                       "value": answer} if answer else None}
        else:
            state = {"type": kind, "value": answer}
        values[block["block_id"]] = {element["action_id"]: state}
    return values


def test_an_expense_filed_through_the_modal_reaches_the_engine(db: Database, org: Org, policy: Policy,
                                                                clock: Clock) -> None:
    spec = policy.types["expense"]
    view = render_form(form_for("expense", spec, "ja"), "ja")
    View(**view).validate_json()
    state = _slack_state(view, {
        "purpose": "大阪出張", "items[0].date": "2026-06-01", "items[0].payee": "JR東海",
        "items[0].amount": "14,170", "items[0].tax_rate": "10", "items[0].category": "travel",
        "items[0].invoice_number": "T7010705000725",
        "items[1].date": "2026-06-01", "items[1].payee": "ホテル", "items[1].amount": "9800",
        "items[1].tax_rate": "10", "items[1].category": "travel",
    })
    form_state = read_state(view["private_metadata"])
    assert form_state is not None and form_state.type_key == "expense"
    payload = payload_from(spec, read_submission(state))
    out = Engine(db, policy, clock=clock).submit(org.alice, form_state.type_key, payload)
    assert out.ok, out.errors
    assert out.request is not None and len(out.request.payload["items"]) == 2
    assert out.request.payload["items"][0]["amount"] == 14170


def test_engine_errors_come_back_under_the_modal_inputs(db: Database, org: Org, policy: Policy,
                                                        clock: Clock) -> None:
    spec = policy.types["leave"]
    view = render_form(form_for("leave", spec, "en"), "en")
    View(**view).validate_json()
    state = _slack_state(view, {"unit": "am", "period.start": "2026-06-08", "period.end": "2026-06-09"})
    values = read_submission(state)
    out = Engine(db, policy, clock=clock).submit(org.bob, "leave", payload_from(spec, values))
    assert not out.ok and "period" in out.errors
    response = errors_response(input_errors(out.errors, "en", values), state)
    assert response["response_action"] == "errors"
    assert set(response["errors"]) <= set(state)  # Slack refuses errors for blocks the modal does not have
    assert "one date" in response["errors"]["period.start"]
