"""Qualified invoice registration numbers (適格請求書発行事業者登録番号, インボイス制度).

A registration number is ``T`` followed by 13 digits. For a corporation the digits are its 法人番号, whose
first digit is a check digit over the other twelve; for a sole proprietor they are a separately issued
number whose check digit we cannot verify. Without a valid number the buyer loses the input-tax credit, so
we catch typos when an expense is filed:

- wrong shape (not ``T`` + 13 digits after normalizing): ``"error"``, the expense cannot carry it;
- right shape, corporate check digit wrong: ``"warning"`` only, because a sole proprietor's number is legal
  and may fail the check; we never refuse it, we ask the filer to compare it with the invoice;
- otherwise ``"ok"``.

Pure functions, no I/O: this does not ask the tax agency whether the number is actually registered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from config.i18n import LocalText

PREFIX = "T"
DIGITS = 13

_WELL_FORMED = re.compile(rf"{PREFIX}[0-9]{{{DIGITS}}}")

# Full-width digits and Ｔ/ｔ come from Japanese IMEs; map them to ASCII before checking.
_TO_ASCII = str.maketrans({**{chr(0xFF10 + i): str(i) for i in range(10)}, "Ｔ": "T", "ｔ": "T", "t": "T"})

# Separators people type between digit groups: ASCII and full-width hyphens, dashes, minus signs, and the
# katakana prolonged sound mark (ー, ｰ) that an IME produces for "-" in full-width mode.
_SEPARATORS = frozenset("-‐‑‒–—―−－ー﹣ｰ")


@dataclass(frozen=True)
class InvoiceNumberCheck:
    """The verdict on one registration number, ready to show to the filer."""

    status: Literal["ok", "warning", "error"]
    normalized: str | None  # "T" + 13 ASCII digits when the format is right, else None
    message: LocalText | None  # None when ok

    @property
    def is_acceptable(self) -> bool:
        """True unless the number is malformed: a warning is shown but does not block filing."""
        return self.status != "error"


def normalize_invoice_number(raw: str) -> str:
    """Strip spaces and hyphens and map full-width characters, so "ｔ７０１０-７０５０-００７２５" reads as
    "T7010705000725". The result is not validated: see ``check_invoice_number``."""
    return "".join(ch for ch in raw.translate(_TO_ASCII) if not ch.isspace() and ch not in _SEPARATORS)


def corporate_check_digit(twelve_digits: str) -> int:
    """The check digit of a 法人番号 over its last twelve digits.

    ``9 - (sum of Pn * Qn for n = 1..12) mod 9``, where Pn is the n-th digit counted from the right and Qn is
    1 for odd n and 2 for even n. The result is 1..9, never 0.
    """
    if not re.fullmatch(r"[0-9]{12}", twelve_digits):
        raise ValueError(f"expected 12 ASCII digits, got {twelve_digits!r}")
    weighted = sum(int(digit) * (1 if n % 2 else 2) for n, digit in enumerate(reversed(twelve_digits), 1))
    return 9 - weighted % 9


def check_invoice_number(raw: str) -> InvoiceNumberCheck:
    """Normalize ``raw`` and judge it: "ok", "warning" (check digit mismatch) or "error" (malformed)."""
    normalized = normalize_invoice_number(raw)
    if not _WELL_FORMED.fullmatch(normalized):
        return InvoiceNumberCheck(status="error", normalized=None, message=_format_problem(normalized))
    digits = normalized[len(PREFIX) :]
    if int(digits[0]) != corporate_check_digit(digits[1:]):
        return InvoiceNumberCheck(
            status="warning", normalized=normalized, message=_check_digit_warning(normalized)
        )
    return InvoiceNumberCheck(status="ok", normalized=normalized, message=None)


_EXPECTED = LocalText(
    ja="登録番号は T + 13桁の数字です（例: T1234567890123）。",
    en="A registration number is T followed by 13 digits (e.g. T1234567890123).",
)


def _format_problem(normalized: str) -> LocalText:
    """Name the most likely slip, then what is expected, so the filer can fix it without guessing."""
    if not normalized:
        detail = LocalText(ja="登録番号が入力されていません。", en="The registration number is empty.")
    elif re.fullmatch(rf"[0-9]{{{DIGITS}}}", normalized):
        detail = LocalText(ja="先頭の T が抜けています。", en="The leading T is missing.")
    elif re.fullmatch(rf"{PREFIX}[0-9]*", normalized):
        count = len(normalized) - len(PREFIX)
        detail = LocalText(ja=f"数字が {count} 桁あります。", en=f"It has {count} digits.")
    else:
        detail = LocalText(
            ja="使えない文字が含まれています。", en="It contains characters that cannot be used."
        )
    return LocalText(ja=detail.ja + _EXPECTED.ja, en=f"{detail.en} {_EXPECTED.en}")


def _check_digit_warning(normalized: str) -> LocalText:
    return LocalText(
        ja=(
            f"登録番号 {normalized} の検査用数字（先頭の数字）が法人番号の計算と合いません。"
            "請求書に記載の番号と照らし合わせてください（個人事業者の番号であればそのままで構いません）。"
        ),
        en=(
            f"The check digit (first digit) of registration number {normalized} does not match a corporate "
            "number. Please compare it with the number on the invoice (a sole proprietor's number may be "
            "correct as it is)."
        ),
    )
