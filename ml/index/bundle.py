"""A versioned index on disk: global vectors, local features, heads, fusion parameters, text vectors.

Everything a worker needs to answer lives in one folder `DATA_DIR/index/<version>/`,
written under a temporary name and renamed into place when complete, so a reader never
sees half an index. Which version serves is a row in the database (`index_versions`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ml.fusion import FusionParams
from ml.index.embedding_cache import STORED_DTYPE
from ml.index.expansion import ExpansionConfig
from ml.index.vector_index import VectorIndex
from ml.index.whitening import Whitening
from ml.models.heads import LinearHead
from ml.models.local_features import LocalFeatureConfig, LocalFeatures
from ml.models.place_categories import PlaceWeights
from ml.text.search import TextCorpus


@dataclass
class LandmarkInfo:
    id: str
    name_en: str
    name_ru: str | None
    city: str | None
    country: str | None
    category: str
    lat: float | None
    lon: float | None


@dataclass
class IndexBundle:
    version: str
    model_id: str
    local_model_id: str
    photo_ids: list[int]  # one per vector row
    row_landmarks: list[str]  # landmark id per vector row
    landmarks: dict[str, LandmarkInfo]
    vectors: VectorIndex
    local: list[LocalFeatures]  # one per vector row
    landmark_head: LinearHead
    category_head: LinearHead
    fusion: FusionParams
    place_weights: PlaceWeights = field(default_factory=PlaceWeights)  # category head vs ImageNet, unknown places
    expansion: ExpansionConfig = field(default_factory=ExpansionConfig)  # αQE / DBA, off unless chosen
    whitening: Whitening | None = None  # learned on the gallery; stored vectors and heads live in its space
    stats: dict = field(default_factory=dict)
    text: TextCorpus | None = None  # landmark names and their text vectors, for text search

    def to_index_space(self, vector: np.ndarray) -> np.ndarray:
        """A query's descriptor as the stored vectors and the heads expect it."""
        return vector if self.whitening is None else self.whitening.apply(vector)

    @cached_property
    def gallery_matrix(self) -> np.ndarray:
        """The stored vectors as one array (query expansion sums neighbours from it)."""
        return self.vectors.vectors()

    @cached_property
    def photos_per_landmark(self) -> np.ndarray:
        """How many gallery rows each landmark has, in the order of the landmark head's classes."""
        column = {name: i for i, name in enumerate(self.landmark_head.classes)}
        return np.bincount([column[label] for label in self.row_landmarks], minlength=len(column))

    @cached_property
    def rows_of_landmark(self) -> dict[str, frozenset[int]]:
        """The gallery rows of each landmark: what the calibration hides to make the gallery not know it."""
        rows: dict[str, set[int]] = {}
        for row, label in enumerate(self.row_landmarks):
            rows.setdefault(label, set()).add(row)
        return {label: frozenset(found) for label, found in rows.items()}

    def served_local_features(self) -> list[LocalFeatures]:
        """Each gallery photo's keypoints that matching against it reads (`gallery_top_k`, best first): all that
        a served index needs. The build keeps every keypoint in memory, since its calibration asks gallery
        photos as queries, and a query's keypoints all count. With 1024 of 2048 kept, an index's local features
        take half the disk and half of every worker's memory."""
        config = LocalFeatureConfig().with_model_id(self.local_model_id)
        return self.local if config is None else [config.gallery_side(features) for features in self.local]

    def save(self, root: Path) -> Path:
        """Write to `root/.<version>.tmp`, then rename to `root/<version>`: all or nothing."""
        final = root / self.version
        tmp = root / f".{self.version}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.vectors.save(tmp / "global.faiss")
        local = self.served_local_features()
        counts = np.array([len(f.keypoints) for f in local], dtype=np.int64)
        np.savez(
            tmp / "local.npz",
            counts=counts,
            keypoints=np.concatenate([f.keypoints for f in local]) if local else np.zeros((0, 2), np.float32),
            descriptors=(np.concatenate([f.descriptors for f in local]).astype(STORED_DTYPE) if local
                         else np.zeros((0, 64), STORED_DTYPE)),
        )
        np.savez(
            tmp / "heads.npz",
            landmark_w=self.landmark_head.weight, landmark_b=self.landmark_head.bias,
            category_w=self.category_head.weight, category_b=self.category_head.bias,
        )
        if self.whitening is not None:
            np.savez(tmp / "whitening.npz", mean=self.whitening.mean, projection=self.whitening.projection)
        meta = {
            "version": self.version,
            "model_id": self.model_id,
            "local_model_id": self.local_model_id,
            "photo_ids": self.photo_ids,
            "row_landmarks": self.row_landmarks,
            "landmarks": {k: vars(v) for k, v in self.landmarks.items()},
            "landmark_classes": self.landmark_head.classes,
            "category_classes": self.category_head.classes,
            "place_weights": asdict(self.place_weights),
            "expansion": self.expansion.to_dict(),
            "fusion": self.fusion.to_dict(),
            "stats": self.stats,
        }
        if self.text is not None:
            self.text.save(tmp)
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
        for path in tmp.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, final)
        return final

    @classmethod
    def load(cls, folder: Path) -> IndexBundle:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        local_npz = np.load(folder / "local.npz")
        offsets = np.concatenate([[0], np.cumsum(local_npz["counts"])])
        keypoints, descriptors = local_npz["keypoints"], local_npz["descriptors"].astype(np.float32)
        local = [LocalFeatures(keypoints[a:b], descriptors[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
        heads = np.load(folder / "heads.npz")
        whitening = None
        if (folder / "whitening.npz").exists():
            stored = np.load(folder / "whitening.npz")
            whitening = Whitening(stored["mean"], stored["projection"])
        return cls(
            version=meta["version"],
            model_id=meta["model_id"],
            local_model_id=meta["local_model_id"],
            photo_ids=meta["photo_ids"],
            row_landmarks=meta["row_landmarks"],
            landmarks={k: LandmarkInfo(**v) for k, v in meta["landmarks"].items()},
            vectors=VectorIndex.load(folder / "global.faiss"),
            local=local,
            landmark_head=LinearHead(heads["landmark_w"], heads["landmark_b"], meta["landmark_classes"]),
            category_head=LinearHead(heads["category_w"], heads["category_b"], meta["category_classes"]),
            fusion=FusionParams(**meta["fusion"]),
            place_weights=_place_weights(meta),
            expansion=ExpansionConfig(**meta.get("expansion", {})),
            whitening=whitening,
            stats=meta.get("stats", {}),
            text=TextCorpus.load(folder),
        )


def _place_weights(meta: dict) -> PlaceWeights:  # type: ignore[type-arg]
    """Indexes built before both weights were fitted kept the head at full weight and stored ImageNet's alone."""
    if "place_weights" in meta:
        return PlaceWeights(**meta["place_weights"])
    return PlaceWeights(head=1.0, imagenet=meta.get("imagenet_weight", meta.get("category_weights", [1.0, 0.0])[1]))
