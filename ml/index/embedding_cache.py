"""Embeddings of gallery photos kept on disk by content hash and model, so a reindex re-embeds
only photos it has not seen with this model (the two forward passes are most of its cost).

One small `.npz` per photo under `DATA_DIR/embeddings/<model signature>/<sha[:2]>/<sha>.npz`:
a new model gets a new folder, and a photo whose bytes changed has a new hash, so an entry
is never stale. Writes go to a temporary name and are renamed into place.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.models.local_features import LocalFeatures


@dataclass
class PhotoEmbedding:
    """Everything the index keeps of one photo's forward passes."""

    vector: np.ndarray  # global descriptor
    imagenet_logits: np.ndarray  # [1000], evidence for the kind of place
    local: LocalFeatures


class EmbeddingCache:
    def __init__(self, root: Path, signature: str) -> None:
        self.folder = Path(root) / re.sub(r"[^A-Za-z0-9_.+-]", "_", signature)

    def _path(self, sha256: str) -> Path:
        return self.folder / sha256[:2] / f"{sha256}.npz"

    def get(self, sha256: str) -> PhotoEmbedding | None:
        path = self._path(sha256)
        try:
            with np.load(path) as stored:
                return PhotoEmbedding(stored["vector"], stored["imagenet_logits"].astype(np.float32),
                                      LocalFeatures(stored["keypoints"], stored["descriptors"].astype(np.float32)))
        except (OSError, KeyError, ValueError):  # missing, torn by a killed writer, or older: embed again
            return None

    def put(self, sha256: str, embedding: PhotoEmbedding) -> None:
        path = self._path(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            np.savez(handle, vector=embedding.vector.astype(np.float32),
                     imagenet_logits=embedding.imagenet_logits.astype(np.float16),
                     keypoints=embedding.local.keypoints, descriptors=embedding.local.descriptors.astype(np.float16))
        os.replace(tmp, path)
