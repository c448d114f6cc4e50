"""Texts in the user's Telegram language: Russian or English, anything else falls back to English.

A catalogue per language keeps translators away from code; `Texts.get` formats with
named placeholders, and callers escape user-provided or gallery values before passing them.
"""

from __future__ import annotations

from bot.locales import en, ru

_CATALOGUES: dict[str, dict[str, str]] = {"en": en.MESSAGES, "ru": ru.MESSAGES}
LANGUAGES = tuple(_CATALOGUES)
DEFAULT_LANGUAGE = "en"


def pick_language(language_code: str | None) -> str:
    code = (language_code or "").split("-")[0].lower()
    return code if code in _CATALOGUES else DEFAULT_LANGUAGE


class Texts:
    def __init__(self, language: str) -> None:
        self.language = pick_language(language)
        self._catalogue = _CATALOGUES[self.language]

    def get(self, key: str, **values: object) -> str:
        template = self._catalogue.get(key) or _CATALOGUES[DEFAULT_LANGUAGE][key]
        return template.format(**values) if values else template

    __call__ = get
