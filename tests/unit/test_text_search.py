"""Text search: spelling folded across scripts, the ranking on the dev text queries, odd input."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from ml.text.encoders import (
    MultilingualEncoder,
    SentenceTransformerEncoder,
    default_encoders,
)
from ml.text.normalize import fold, variants
from ml.text.search import LandmarkText, TextCorpus, TextSearch
from storage.dataset_import import read_landmarks
from tests.conftest import FIGURES


def test_fold_drops_case_accents_and_punctuation() -> None:
    assert fold("Notre-Dame de Paris!") == "notre dame de paris"
    assert fold("Château de Sceaux") == "chateau de sceaux"
    assert fold("St. Peter's Basilica") == "st peters basilica"


def test_variants_cross_scripts() -> None:
    assert "sobor" in " ".join(variants("Собор"))
    assert any(any("а" <= ch <= "я" for ch in v) for v in variants("notre dame"))


@pytest.fixture(scope="module")
def dev_search(dataset: Path) -> TextSearch:
    return TextSearch([LandmarkText.from_row(fields) for fields in read_landmarks(dataset)])


def test_dev_text_queries_rank_the_right_landmark_first(dev_search: TextSearch, dataset: Path) -> None:
    with open(dataset / "text_queries.csv", encoding="utf-8") as handle:
        queries = list(csv.DictReader(handle))
    first = top5 = 0
    for row in queries:
        hits = [h.landmark_id for h in dev_search.search(row["query"], 5)]
        first += hits[:1] == [row["landmark_id"]]
        top5 += row["landmark_id"] in hits
    FIGURES.append(f"text search on dev text queries: hit@1 {first}/{len(queries)}, hit@5 {top5}/{len(queries)}")
    assert first / len(queries) >= 0.90
    assert top5 / len(queries) >= 0.97


@pytest.mark.parametrize("query", ["", "   ", "🙂🙂🙂", "\x00\x07\x1b[31m", "x" * 4096,
                                   "'; DROP TABLE landmarks; --", "<b>Notre</b> <script>", "Eiffel Башня"])
def test_odd_queries_never_raise(dev_search: TextSearch, query: str) -> None:
    hits = dev_search.search(query, 5)
    assert len(hits) <= 5
    assert all(0.0 <= h.score <= 1.0 + 1e-6 for h in hits)


def test_typos_and_transliterations(dev_search: TextSearch) -> None:
    assert dev_search.search("notr dam", 1)[0].landmark_id == "notre_dame"
    assert dev_search.search("мулен руж", 1)[0].landmark_id == "moulin_rouge"
    assert dev_search.search("дворец дожей", 1)[0].landmark_id == "piazza_san_marco"  # not "Епископский дворец"


def test_names_read_alone_rank_a_translated_name(dev_search: TextSearch, monkeypatch: pytest.MonkeyPatch) -> None:
    assert dev_search.search("sceaux castle", 1)[0].landmark_id == "chateau_de_sceaux"
    nobody = np.full(len(dev_search.landmarks), -1.0, dtype=np.float32)
    monkeypatch.setattr(TextSearch, "_closest_name", lambda self, model_id, vector: nobody)
    assert dev_search.search("sceaux castle", 1)[0].landmark_id != "chateau_de_sceaux"  # the documents alone


class _KnowsOneName:
    """A sentence encoder that finds the query in one name only, read alone."""

    model_id = "knows-one-name"
    multilingual = True
    votes_from = -1.0

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.array([[1.0, 0.0] if text in ("Château de Sceaux", "query") else [0.6, 0.8] for text in texts],
                        dtype=np.float32)


def test_closest_name_is_the_best_of_each_landmarks_names() -> None:
    landmarks = [LandmarkText(id="strecha", name_en="Castle courtyard"),
                 LandmarkText(id="sceaux", name_en="Sceaux Palace", name_ru="Замок Со", aliases=("Château de Sceaux",)),
                 LandmarkText(id="nameless", name_en="")]
    search = TextSearch(landmarks, [_KnowsOneName()])
    closest = search._closest_name("knows-one-name", _KnowsOneName().encode(["query"]))
    assert closest.tolist() == pytest.approx([0.6, 1.0, -1.0])  # a landmark without names has no say


class _LikesShortDocuments:
    """A sentence encoder that, like the real ones on "дворец дожей", finds a short query closest to short texts
    (here the Doge's Palace is the one landmark whose name is long)."""

    model_id = "likes-short-documents"
    multilingual = True
    votes_from = -1.0

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.array([[1.0, 0.0] if len(text) < 30 else [0.6, 0.8] for text in texts], dtype=np.float32)


def test_a_name_holding_every_word_of_the_query_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    landmarks = [LandmarkText(id="episcopal", name_en="Episcopal Palace", city="Astorga"),
                 LandmarkText(id="winter", name_en="Winter Palace", city="Saint Petersburg"),
                 LandmarkText(id="doge", name_en="Piazza San Marco and Doge's Palace", city="Venice", country="Italy")]
    search = TextSearch(landmarks, [_LikesShortDocuments()])
    assert [hit.landmark_id for hit in search.search("doges palase", 3)][0] == "doge"  # a typo still counts
    assert search.search("palace of venice", 1)[0].landmark_id == "doge"  # the city counts, "of" is too short
    monkeypatch.setattr(TextSearch, "_holding_every_word", lambda self, query: np.zeros(len(landmarks), bool))
    assert search.search("doges palase", 1)[0].landmark_id != "doge"  # what the rank fusion alone answers


def test_paging_over_many_matches() -> None:
    landmarks = [LandmarkText(id=f"palace_{i}", name_en=f"Palace number {i}", city="Town") for i in range(12)]
    landmarks.append(LandmarkText(id="bridge", name_en="Old Bridge", city="Town"))
    search = TextSearch(landmarks, default_encoders())
    first = search.page("palace", limit=5, offset=0)
    second = search.page("palace", limit=5, offset=5)
    last = search.page("palace", limit=5, offset=10)
    assert first.matched and first.total == 12
    assert [len(p.hits) for p in (first, second, last)] == [5, 5, 2]
    seen = [h.landmark_id for p in (first, second, last) for h in p.hits]
    assert sorted(seen) == sorted(f"palace_{i}" for i in range(12))


def test_no_match_offers_suggestions(dev_search: TextSearch) -> None:
    page = dev_search.page("hello, what can you do?", limit=5)
    assert not page.matched and page.total == 0 and 0 < len(page.hits) <= 3


def test_search_keyboard_pages_and_photo_buttons() -> None:
    from bot.keyboards import (
        LandmarkPhotosCallback,
        SearchPageCallback,
        search_keyboard,
    )
    from bot.locales import Texts

    markup = search_keyboard(Texts("en"), "tok", offset=5, page_size=5, total=12,
                             landmarks=[("a", "Alpha"), ("b", "Beta")])
    data = [b.callback_data for row in markup.inline_keyboard for b in row]
    assert data[:2] == [LandmarkPhotosCallback(landmark_id="a").pack(), LandmarkPhotosCallback(landmark_id="b").pack()]
    assert SearchPageCallback(token="tok", offset=0).pack() in data
    assert SearchPageCallback(token="tok", offset=10).pack() in data
    assert all(len(d.encode()) <= 64 for d in data)


class CountingEncoder:
    """Wraps a real encoder and records what it was asked to encode."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.model_id, self.multilingual, self.votes_from = inner.model_id, inner.multilingual, inner.votes_from
        self.seen: list[str] = []

    def encode(self, texts: list[str]):  # type: ignore[no-untyped-def]
        self.seen.extend(texts)
        return self.inner.encode(texts)


def test_both_encoders_load_from_wheels_with_no_network() -> None:
    use, minilm = default_encoders()
    assert isinstance(use, MultilingualEncoder) and isinstance(minilm, SentenceTransformerEncoder)
    vectors = minilm.encode(["Eiffel Tower in Paris", "a tower in paris", "chocolate cake recipe"])
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_text_vectors_saved_with_the_index_are_reused(dataset: Path, tmp_path: Path) -> None:
    landmarks = [LandmarkText.from_row(fields) for fields in read_landmarks(dataset)]
    corpus = TextCorpus.build(landmarks, default_encoders())
    corpus.save(tmp_path)
    loaded = TextCorpus.load(tmp_path)
    assert [lm.id for lm in loaded.landmarks] == [lm.id for lm in landmarks]
    assert loaded.landmarks[0] == landmarks[0]
    encoders = [CountingEncoder(e) for e in default_encoders()]
    search = TextSearch(loaded, encoders)
    assert all(e.seen == [] for e in encoders)  # no document was encoded again
    assert search.search("sagrada familia", 1)[0].landmark_id == "sagrada_familia"
    (tmp_path / "text_names.npz").unlink()  # a version saved before names had vectors of their own
    encoders = [CountingEncoder(e) for e in default_encoders()]
    TextSearch(TextCorpus.load(tmp_path), encoders)
    assert all(e.seen == [n for lm in landmarks for n in lm.names()] for e in encoders)  # names only, once


def test_english_only_model_is_not_asked_about_cyrillic(dataset: Path) -> None:
    use, minilm = (CountingEncoder(e) for e in default_encoders())
    search = TextSearch([LandmarkText.from_row(fields) for fields in read_landmarks(dataset)], [use, minilm])
    use.seen.clear()
    minilm.seen.clear()
    assert search.search("саграда фамилия", 1)[0].landmark_id == "sagrada_familia"
    assert minilm.seen == [] and use.seen == ["саграда фамилия"]
    search.search("sagrada familia", 1)
    assert minilm.seen == ["sagrada familia"]
