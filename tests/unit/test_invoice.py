"""Unit tests for workflow.invoice: registration number normalizing and checking."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.i18n import LocalText
from workflow.invoice import (
    InvoiceNumberCheck,
    check_invoice_number,
    corporate_check_digit,
    normalize_invoice_number,
)

DOMAIN_EXAMPLE = "T7010705000725"

# Well-formed corporate numbers (first digit = check digit over the other twelve).
CORPORATE_NUMBERS = ["1180301018771", "5010401067252", "4010401022860", "8010001008843", "3010401011971"]


class TestCheckDigit:
    def test_domain_example_worked_by_hand(self) -> None:
        # 010705000725 read from the right: 5 2 7 0 0 0 5 0 7 0 1 0, weights 1 2 1 2 ...
        # 5 + 4 + 7 + 0 + 0 + 0 + 5 + 0 + 7 + 0 + 1 + 0 = 29; 29 mod 9 = 2; 9 - 2 = 7.
        assert corporate_check_digit("010705000725") == 7

    @pytest.mark.parametrize("number", CORPORATE_NUMBERS)
    def test_known_corporate_numbers(self, number: str) -> None:
        assert corporate_check_digit(number[1:]) == int(number[0])

    def test_all_zeros_gives_nine(self) -> None:
        # 9 - 0 = 9: the check digit is never 0.
        assert corporate_check_digit("000000000000") == 9

    def test_weights_alternate_from_the_right(self) -> None:
        assert corporate_check_digit("000000000001") == 8  # rightmost digit weight 1
        assert corporate_check_digit("000000000010") == 7  # next weight 2

    @pytest.mark.parametrize(
        "bad", ["", "12345678901", "1234567890123", "12345678901a", "１２３４５６７８９０１２"]
    )
    def test_needs_twelve_ascii_digits(self, bad: str) -> None:
        with pytest.raises(ValueError):
            corporate_check_digit(bad)


class TestNormalize:
    @pytest.mark.parametrize(
        "raw",
        [
            "T7010705000725",
            "t7010705000725",
            " T7010705000725 ",
            "T 7010 7050 00725",
            "T-7010-7050-00725",
            "Ｔ７０１０７０５０００７２５",
            "ｔ７０１０－７０５０－００７２５",
            "T\u30007010705000725",  # full-width space
            "T7010ー7050ー00725",  # katakana long mark typed for "-" by an IME
            "T7010–7050—00725",  # en and em dashes from a PDF copy
            "T7010705000725\n",
        ],
    )
    def test_variants_normalize_to_the_canonical_form(self, raw: str) -> None:
        assert normalize_invoice_number(raw) == DOMAIN_EXAMPLE

    def test_does_not_validate(self) -> None:
        assert normalize_invoice_number("t a-b") == "Tab"
        assert normalize_invoice_number("") == ""


class TestCheckInvoiceNumber:
    def test_domain_example_is_ok(self) -> None:
        assert check_invoice_number(DOMAIN_EXAMPLE) == InvoiceNumberCheck(
            status="ok", normalized=DOMAIN_EXAMPLE, message=None
        )

    @pytest.mark.parametrize("number", CORPORATE_NUMBERS)
    def test_corporate_numbers_are_ok(self, number: str) -> None:
        result = check_invoice_number("T" + number)
        assert result.status == "ok"
        assert result.normalized == "T" + number
        assert result.is_acceptable

    def test_messy_input_is_ok_and_normalized(self) -> None:
        result = check_invoice_number("ｔ７０１０ - ７０５０ - ００７２５")
        assert result.status == "ok"
        assert result.normalized == DOMAIN_EXAMPLE

    def test_wrong_check_digit_is_only_a_warning(self) -> None:
        result = check_invoice_number("T8010705000725")
        assert result.status == "warning"
        assert result.normalized == "T8010705000725"
        assert result.is_acceptable  # maybe a sole proprietor: never refuse
        assert isinstance(result.message, LocalText)
        assert "請求書" in result.message("ja")
        assert "invoice" in result.message("en")
        assert "T8010705000725" in result.message("en")

    @pytest.mark.parametrize(
        ("raw", "hint_ja", "hint_en"),
        [
            ("", "入力されていません", "empty"),
            ("7010705000725", "T が抜けて", "leading T is missing"),
            ("T701070500072", "12 桁", "12 digits"),
            ("T70107050007255", "14 桁", "14 digits"),
            ("T", "0 桁", "0 digits"),
            ("T70107O5000725", "使えない文字", "cannot be used"),  # letter O for zero
            ("X7010705000725", "使えない文字", "cannot be used"),
            ("TT7010705000725", "使えない文字", "cannot be used"),
            ("T٧٠١٠٧٠٥٠٠٠٧٢٥", "使えない文字", "cannot be used"),  # Arabic-Indic digits are not ASCII
        ],
    )
    def test_malformed_is_an_error_that_says_what_is_expected(
        self, raw: str, hint_ja: str, hint_en: str
    ) -> None:
        result = check_invoice_number(raw)
        assert result.status == "error"
        assert result.normalized is None
        assert not result.is_acceptable
        assert result.message is not None
        assert "T + 13桁" in result.message("ja") and hint_ja in result.message("ja")
        assert "13 digits" in result.message("en") and hint_en in result.message("en")

    def test_result_is_frozen(self) -> None:
        result = check_invoice_number(DOMAIN_EXAMPLE)
        with pytest.raises(AttributeError):
            result.status = "error"  # type: ignore[misc]


twelve_digits = st.text(alphabet="0123456789", min_size=12, max_size=12)


@given(twelve_digits)
def test_any_twelve_digits_with_their_check_digit_are_ok(body: str) -> None:
    result = check_invoice_number(f"T{corporate_check_digit(body)}{body}")
    assert result.status == "ok"
    assert result.message is None


@given(twelve_digits, st.integers(min_value=0, max_value=9))
def test_any_other_first_digit_is_a_warning(body: str, first: int) -> None:
    check = corporate_check_digit(body)
    result = check_invoice_number(f"T{first}{body}")
    assert result.status == ("ok" if first == check else "warning")
    assert result.normalized == f"T{first}{body}"


@given(st.text(max_size=30))
def test_never_crashes_and_status_matches_normalized(raw: str) -> None:
    result = check_invoice_number(raw)
    assert (result.normalized is None) == (result.status == "error")
    assert (result.message is None) == (result.status == "ok")
