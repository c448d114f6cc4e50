"""Spellings a person might type for the same name: case, accents and script folded away.

"Notre-Dame", "notre dame", "нотр дам" and "Нотр-Дам" should meet. Transliteration uses the
`transliterate` package (GOST-like Russian tables), in both directions.
"""

from __future__ import annotations

import re
import unicodedata

from transliterate import translit

_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
_LATIN = re.compile(r"[a-z]", re.IGNORECASE)
_NOT_WORD = re.compile(r"[^\w]+", re.UNICODE)


def fold(text: str) -> str:
    """Lower case, no accents (é→e, but й and ё kept apart from и/е only via NFKD rules), no punctuation."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.replace("'", "").replace("’", "")
    return " ".join(_NOT_WORD.sub(" ", text).split())


def variants(text: str) -> set[str]:
    """The folded text plus its transliteration into the other script."""
    folded = fold(text)
    out = {folded} if folded else set()
    if _CYRILLIC.search(folded):
        out.add(fold(translit(folded, "ru", reversed=True)))
    if _LATIN.search(folded):
        out.add(fold(translit(folded, "ru")))
    return {v for v in out if v}
