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

from ml.models.image_embedder import Embedding
from ml.models.local_features import LocalFeatures

# Local descriptors and ImageNet logits are kept at half precision, here and in an index's local.npz.
STORED_DTYPE = np.float16


def at_stored_precision(embedding: Embedding, local: LocalFeatures) -> tuple[Embedding, LocalFeatures]:
    """A photo's features rounded as the disk keeps them, back in float32 for the arithmetic.

    Every extraction goes through this, so a photo's features are the same just extracted, read back
    from this cache or from an index: a first build calibrates on the gallery that will serve (it
    used to fit on float32 descriptors and serve their float16 copies), equals a rebuild from the
    cache, and measures the held-back photos as the worker answers them. A tiny test gallery, whose
    answers all sat near the threshold, showed the held-back figures one photo off the worker's."""
    rounded = Embedding(embedding.vector, embedding.imagenet_logits.astype(STORED_DTYPE).astype(np.float32))
    return rounded, LocalFeatures(local.keypoints, local.descriptors.astype(STORED_DTYPE).astype(np.float32))


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
                     imagenet_logits=embedding.imagenet_logits.astype(STORED_DTYPE),
                     keypoints=embedding.local.keypoints, descriptors=embedding.local.descriptors.astype(STORED_DTYPE))
        os.replace(tmp, path)
