"""Text in Japanese and English: the one shape every user-facing string takes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

SUPPORTED_LOCALES = ("ja", "en")


def normalize_locale(locale: str | None, default: str = "ja") -> str:
    """Map a platform locale such as 'ja-JP' or 'en_US' to 'ja' or 'en'."""
    if locale == "ja" or locale == "en":  # what callers pass nearly always (a card asks about a hundred times)
        return locale
    if not locale:
        return default
    head = locale.replace("_", "-").split("-", 1)[0].lower()
    return head if head in SUPPORTED_LOCALES else default


class LocalText(BaseModel):
    """A string in both languages; call it with a locale to get one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ja: str
    en: str

    def __call__(self, locale: str | None = "ja") -> str:
        return self.en if normalize_locale(locale) == "en" else self.ja

    @classmethod
    def of(cls, ja: str, en: str) -> LocalText:
        return cls(ja=ja, en=en)
