"""The shared one-BLAS-thread span (overlapping users never undo each other's limit, the last one out restores),
the one-torch-thread pools, and the hand-over of a core from the forward pass that finishes first."""

from __future__ import annotations

import random
import sys
import threading
import time
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from threadpoolctl import threadpool_info, threadpool_limits

import ml.models.blas_threads as blas_threads
from ml.models.blas_threads import one_blas_thread, one_torch_thread_each, widened_once_set
from ml.models.image_embedder import Embedding, ImageEmbedder
from ml.models.local_features import LocalFeatureMatcher, LocalFeatures
from ml.recognize import extract_features, gather_evidence
from tests.unit.test_evidence import _bundle
from tests.unit.test_inference_precision import _real_photo

T = TypeVar("T")


def _blas_threads() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_overlapping_spans_keep_one_thread_until_the_last_leaves() -> None:
    with threadpool_limits(2, user_api="blas"):
        before = _blas_threads()
        first, second = one_blas_thread(), one_blas_thread()
        first.__enter__()
        second.__enter__()
        assert _blas_threads() == {1}
        first.__exit__(None, None, None)  # a plain threadpool_limits block would restore two threads here
        assert _blas_threads() == {1}
        second.__exit__(None, None, None)
        assert _blas_threads() == before


def test_libraries_are_looked_for_again_after_more_modules_are_imported(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A module imported after the first span may load a BLAS of its own (scipy's did, after the index tests):
    the next span must find and limit it, while spans with nothing new imported reuse what was found."""
    built = []

    class CountingController(blas_threads.ThreadpoolController):
        def __init__(self) -> None:
            super().__init__()
            built.append(self)

    monkeypatch.setattr(blas_threads, "ThreadpoolController", CountingController)
    monkeypatch.setattr(blas_threads, "_controller", None)
    with one_blas_thread():
        pass
    with one_blas_thread():
        pass
    assert len(built) == 1
    monkeypatch.setitem(sys.modules, "a_module_with_its_own_blas", types.ModuleType("a_module_with_its_own_blas"))
    with one_blas_thread():
        assert _blas_threads() == {1}
    assert len(built) == 2


class _SlowCounts:
    """Inliers that identify the gallery photo, answered after a random delay so that pairs finish out of order."""

    glue_candidates = 0  # no second opinion

    def inliers(self, query: LocalFeatures, gallery: LocalFeatures) -> int:
        time.sleep(random.uniform(0.0, 0.01))
        return int(gallery.keypoints[0, 0])

    def glue_inliers(self, query: LocalFeatures, gallery: LocalFeatures) -> int:
        raise AssertionError("no landmark is asked a second time")


def test_pairs_verified_side_by_side_count_as_one_after_the_other() -> None:
    bundle = _bundle()
    bundle.local = [LocalFeatures(np.full((1, 2), 10 * (row + 1), np.float32), np.zeros((1, 64), np.float32))
                    for row in range(len(bundle.row_landmarks))]
    query = bundle.gallery_matrix[0]
    one_by_one = gather_evidence(bundle, _SlowCounts(), query, bundle.local[0])
    with ThreadPoolExecutor(2) as pool:
        side_by_side = gather_evidence(bundle, _SlowCounts(), query, bundle.local[0], verify_pool=pool)
    assert one_by_one.inliers.tolist() == side_by_side.inliers.tolist()
    by_landmark = dict(zip(side_by_side.classes, side_by_side.inliers.tolist()))
    assert by_landmark == {"many": 30, "pair": 50, "single": 60}  # each landmark's best row: rows 0-2, 3-4, 5


def test_a_one_torch_thread_pool_leaves_the_callers_count_alone() -> None:
    """The caller here has run torch before the pool starts: a thread that has not takes one thread too."""
    before = torch.get_num_threads()
    pool = one_torch_thread_each(2, "test")
    try:
        assert set(pool.map(lambda _: torch.get_num_threads(), range(8))) == {1}
    finally:
        pool.shutdown()
    assert torch.get_num_threads() == before


class _ThreadProbe(torch.nn.Module):
    def __init__(self, seen: list[int]) -> None:
        super().__init__()
        self.seen = seen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.get_num_threads())
        return x


class _FreedMidway(torch.nn.Module):
    """Four layers; the core is freed (as the embedding finishing does) before the third starts."""

    def __init__(self, free: threading.Event, seen: list[int]) -> None:
        super().__init__()
        self.free = free
        self.layers = torch.nn.ModuleList(_ThreadProbe(seen) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            if i == 2:
                self.free.set()
            x = layer(x)
        return x


def test_a_network_takes_the_freed_core_from_its_next_layer_on_and_gives_it_back() -> None:
    free, seen = threading.Event(), []
    network = _FreedMidway(free, seen)

    def run() -> int:
        with widened_once_set(free, network, 2):
            network(torch.zeros(1))
        return torch.get_num_threads()

    pool = one_torch_thread_each(1, "test")
    try:
        after = pool.submit(run).result()
    finally:
        pool.shutdown()
    assert seen == [1, 1, 2, 2]
    assert after == 1
    assert not any(module._forward_pre_hooks for module in network.modules())  # nothing widens outside the span


def _alone_and_widened(forward: Callable[..., T]) -> tuple[T, T]:
    """`forward` on a real photo in a one-torch-thread pool: on its own thread, then on two from the first layer."""
    photo, free = _real_photo(), threading.Event()
    free.set()
    pool = one_torch_thread_each(1, "test")
    try:
        return pool.submit(forward, photo).result(), pool.submit(forward, photo, spare_core=free).result()
    finally:
        pool.shutdown()


def test_xfeat_finds_the_same_keypoints_when_it_takes_the_second_core() -> None:
    alone, widened = _alone_and_widened(LocalFeatureMatcher().extract)
    assert len(alone.keypoints) == len(widened.keypoints) > 1000
    assert {tuple(p) for p in alone.keypoints.round(2)} == {tuple(p) for p in widened.keypoints.round(2)}
    assert float(np.mean(np.all(alone.keypoints == widened.keypoints, axis=1))) > 0.95


def test_the_embedding_is_the_same_when_it_takes_the_second_core() -> None:
    alone, widened = _alone_and_widened(ImageEmbedder().embed_one)
    assert float(alone.vector @ widened.vector) > 0.9999
    assert int(alone.imagenet_logits.argmax()) == int(widened.imagenet_logits.argmax())


class _QuickEmbedder:
    def embed_one(self, image: object, spare_core: threading.Event) -> Embedding:
        return Embedding(np.ones(4, np.float32) / 2, np.zeros(1000, np.float32))


class _SlowMatcher:
    """Waits for the core the embedding frees: a photo's features only arrive once it has been handed over."""

    def __init__(self) -> None:
        self.handed_over = False

    def extract(self, image: object, spare_core: threading.Event) -> LocalFeatures:
        self.handed_over = spare_core.wait(timeout=10)
        return LocalFeatures(np.zeros((8, 2), np.float32), np.zeros((8, 64), np.float32))


def test_the_pass_that_finishes_first_hands_its_core_to_the_other() -> None:
    matcher = _SlowMatcher()
    extract_features(_QuickEmbedder(), matcher, Image.new("RGB", (32, 32)))  # type: ignore[arg-type]
    assert matcher.handed_over
