"""Expense claims: totals per tax rate, and invoice registration numbers checked at filing time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from config.i18n import LocalText
from workflow.invoice import check_invoice_number


@dataclass
class Summary:
    total: int = 0
    by_rate: dict[str, int] = field(default_factory=dict)  # tax-inclusive amounts per rate ("10", "8")
    errors: dict[str, LocalText] = field(default_factory=dict)
    warnings: list[LocalText] = field(default_factory=list)


def tax_included(amount: int, rate: int) -> int:
    """The consumption tax inside a tax-inclusive amount, rounded down (the usual rule on an invoice)."""
    return amount * rate // (100 + rate)


def summarize(payload: dict[str, Any]) -> Summary:
    """Totals and invoice-number checks; normalizes the numbers in the payload in place (T + 13 digits)."""
    summary = Summary()
    for i, item in enumerate(payload.get("items", [])):
        amount = int(item["amount"])
        summary.total += amount
        rate = str(item.get("tax_rate", "10"))
        summary.by_rate[rate] = summary.by_rate.get(rate, 0) + amount
        raw = item.get("invoice_number")
        if not raw:
            continue
        check = check_invoice_number(raw)
        if check.status == "error" and check.message:
            summary.errors[f"items[{i}].invoice_number"] = check.message
        elif check.normalized:
            item["invoice_number"] = check.normalized
            if check.status == "warning" and check.message:
                summary.warnings.append(LocalText(ja=f"明細{i + 1}: {check.message.ja}",
                                                  en=f"Item {i + 1}: {check.message.en}"))
    return summary
