"""Embeddings of gallery photos kept on disk by content hash and model, so a reindex re-embeds
only photos it has not seen with this model (the two forward passes are most of its cost).

One small `.npz` per photo under `DATA_DIR/embeddings/<model signature>/<sha[:2]>/<sha>.npz`:
a new model gets a new folder, and a photo whose bytes changed has a new hash, so an entry
is never stale. Writes go to a temporary name and are renamed into place.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ml.models.local_features import LocalFeatures


class EmbeddingCache:
    def __init__(self, root: Path, signature: str) -> None:
        self.folder = Path(root) / re.sub(r"[^A-Za-z0-9_.+-]", "_", signature)

    def _path(self, sha256: str) -> Path:
        return self.folder / sha256[:2] / f"{sha256}.npz"

    def get(self, sha256: str) -> tuple[np.ndarray, LocalFeatures] | None:
        path = self._path(sha256)
        try:
            with np.load(path) as stored:
                return stored["vector"], LocalFeatures(stored["keypoints"], stored["descriptors"].astype(np.float32))
        except (OSError, KeyError, ValueError):  # missing, or a torn file from a killed writer: embed again
            return None

    def put(self, sha256: str, vector: np.ndarray, local: LocalFeatures) -> None:
        path = self._path(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            np.savez(handle, vector=vector.astype(np.float32), keypoints=local.keypoints,
                     descriptors=local.descriptors.astype(np.float16))
        os.replace(tmp, path)
