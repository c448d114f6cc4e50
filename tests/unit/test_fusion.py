"""Fusion of evidence into probabilities, the maximum-likelihood fit and the gallery-chosen threshold."""

from __future__ import annotations

import numpy as np
import pytest

from ml import fusion
from ml.fusion import (
    FusionParams,
    choose_threshold,
    fit_fusion,
    landmark_evidence,
    probabilities,
)
from ml.metrics import expected_calibration_error


def _evidence(similarity: list[float], inliers: list[int]) -> np.ndarray:
    n = len(similarity)
    return landmark_evidence(np.array(similarity), np.array(inliers), np.full(n, np.log(1 / n)))


def test_probabilities_include_the_unknown_outcome() -> None:
    p, unknown = probabilities(_evidence([0.9, 0.5, 0.4], [300, 5, 0]), FusionParams.default())
    assert abs(p.sum() + unknown - 1.0) < 1e-6
    assert p.argmax() == 0 and p.sum() < 1.0


def test_more_inliers_means_more_probability() -> None:
    params = FusionParams.default()
    weak, _ = probabilities(_evidence([0.7, 0.6], [10, 5]), params)
    strong, _ = probabilities(_evidence([0.7, 0.6], [200, 5]), params)
    assert strong[0] > weak[0]


def _samples(rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    samples = []
    for _ in range(60):  # known landmark: its column wins on both similarity and inliers
        sim = rng.uniform(0.4, 0.6, 5)
        inl = rng.integers(0, 15, 5)
        sim[2], inl[2] = rng.uniform(0.7, 0.95), rng.integers(60, 600)
        samples.append((_evidence(list(sim), list(inl)), 2))
    for _ in range(60):  # unknown: nothing stands out
        samples.append((_evidence(list(rng.uniform(0.4, 0.65, 5)), list(rng.integers(0, 18, 5))), -1))
    return samples


def test_fit_separates_known_from_unknown_and_bounds_false_accepts() -> None:
    samples = _samples(np.random.default_rng(0))
    params = fit_fusion(samples, false_accept_rate=0.05)
    tops = {True: [], False: []}
    for evidence, label in samples:
        p, _ = probabilities(evidence, params)
        tops[label >= 0].append(p.max())
    accepted_unknown = np.mean(np.array(tops[False]) >= params.threshold)
    accepted_known = np.mean(np.array(tops[True]) >= params.threshold)
    assert accepted_unknown <= 0.05
    assert accepted_known >= 0.9


def test_threshold_follows_the_false_accept_rate() -> None:
    samples = _samples(np.random.default_rng(1))
    params = fit_fusion(samples)
    strict = choose_threshold(samples, params, 0.0)
    loose = choose_threshold(samples, params, 0.5)
    assert strict > loose


def test_temperature_softens_without_reordering() -> None:
    evidence = _evidence([0.8, 0.6, 0.5], [120, 12, 3])
    sharp, sharp_unknown = probabilities(evidence, FusionParams.default())
    soft_params = FusionParams.default()
    soft_params.temperature = 2.0
    soft, soft_unknown = probabilities(evidence, soft_params)
    assert abs(soft.sum() + soft_unknown - 1) < 1e-6
    assert list(np.argsort(-soft)) == list(np.argsort(-sharp)) and soft.max() < sharp.max()


def _with_hard_cases(rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    samples = _samples(rng) + _samples(rng)
    for _ in range(30):  # known landmarks whose photos look like nothing: the hard cases of a real gallery
        samples.append((_evidence(list(rng.uniform(0.4, 0.65, 5)), list(rng.integers(0, 18, 5))), 2))
    return samples


def _top_1_calibration_error(samples: list[tuple[np.ndarray, int]], params: FusionParams) -> float:
    confidence, right = [], []
    for evidence, label in samples:
        p, _ = probabilities(evidence, params)
        confidence.append(float(p.max()))
        right.append(label >= 0 and int(p.argmax()) == label)
    return expected_calibration_error(confidence, right)


def test_temperature_is_fitted_on_held_out_groups() -> None:
    for seed in (3, 4, 5):
        rng = np.random.default_rng(seed)
        samples = _with_hard_cases(rng)
        groups = [f"g{i % 40}" for i in range(len(samples))]
        plain = fit_fusion(samples)
        scaled = fit_fusion(samples, groups=groups)
        assert plain.temperature == 1.0 and plain.weights == scaled.weights
        # The weights' likelihood leaves the top-1 too modest here (ECE 0.053-0.058 on new samples from the same
        # source); the held-out fit of the temperature and the unknown logit brings it to 0.006-0.016.
        new = [sample for _ in range(10) for sample in _with_hard_cases(rng)]
        assert _top_1_calibration_error(new, scaled) < min(0.035, _top_1_calibration_error(new, plain) - 0.02)
    tiny = fit_fusion(samples[:4] + samples[-4:], groups=["a", "a", "b", "b", "c", "c", "d", "d"])
    assert np.isfinite(tiny.temperature) and tiny.temperature > 0


def _gallery_like(rng: np.random.Generator, n: int) -> list[tuple[np.ndarray, int]]:
    """Samples the linear evidence cannot fit exactly: right answers easy or barely above the noise, unknowns
    plain noise or a look-alike of another building as strong as the hard right answers."""
    samples = []
    for _ in range(n):
        kind = rng.random()
        sim, inl = rng.uniform(0.1, 0.4, 6), rng.integers(0, 9, 6)
        if kind < 0.45:
            sim[2], inl[2] = rng.uniform(0.4, 0.9), rng.integers(30, 600)
        elif kind < 0.8:
            column = 2 if kind < 0.65 else 4
            sim[column], inl[column] = rng.uniform(0.3, 0.6), rng.integers(5, 20)
        samples.append((_evidence(list(sim), list(inl)), 2 if kind < 0.65 else -1))
    return samples


def test_the_top_1_probability_means_what_it_says_on_new_samples() -> None:
    for seed in range(3):
        rng = np.random.default_rng(seed)
        gallery, new = _gallery_like(rng, 300), _gallery_like(rng, 3000)
        params = fit_fusion(gallery, groups=[f"g{i % 40}" for i in range(len(gallery))])
        assert params.unknown_logit != fit_fusion(gallery).unknown_logit  # the held-out fit moved it
        # 0.045-0.064 seen (0.045-0.060 with the held-out top-1 scored by its likelihood, 0.046-0.058 with the true
        # outcome's likelihood in the temperature's fit too); a sanity bound; the comparison that chose the method
        # is the dev split and its re-splits (ml/fusion's docstring)
        assert _top_1_calibration_error(new, params) < 0.065


def test_the_gallery_chooses_how_far_its_top_1_may_be_sharpened(monkeypatch: pytest.MonkeyPatch) -> None:
    every_prior = fusion.TEMPERATURE_PRIORS
    for seed in range(3):
        rng = np.random.default_rng(seed)
        # Held-out answers that split cleanly (right answers strong, unknowns plain noise): the folds pick a weak
        # prior, and the sharper top-1 is better calibrated on new samples from the same source (0.0013 against
        # 0.007-0.009 with the strongest prior alone).
        clean, new_clean = _samples(rng), [sample for _ in range(10) for sample in _samples(rng)]
        # Held-out answers that overlap (look-alikes as strong as the weak right answers): no sharpening.
        overlapping = _gallery_like(rng, 300)
        fits = {}
        for priors in (every_prior, every_prior[:1]):
            monkeypatch.setattr(fusion, "TEMPERATURE_PRIORS", priors)
            fits[len(priors)] = [fit_fusion(samples, groups=[f"g{i % 40}" for i in range(len(samples))])
                                 for samples in (clean, overlapping)]
        (chosen_clean, chosen_overlapping), (strong_clean, _) = fits[len(every_prior)], fits[1]
        assert chosen_clean.temperature < strong_clean.temperature - 0.2
        assert _top_1_calibration_error(new_clean, chosen_clean) < _top_1_calibration_error(new_clean, strong_clean)
        assert chosen_overlapping.temperature > 1.0


def test_a_sample_weight_counts_as_that_many_copies() -> None:
    samples = _samples(np.random.default_rng(4))
    copied = fit_fusion(samples + samples[:10] + samples[-10:])
    weighted = fit_fusion(samples, sample_weights=[2.0] * 10 + [1.0] * (len(samples) - 20) + [2.0] * 10)
    assert np.allclose(copied.weights, weighted.weights, atol=1e-3)
    assert abs(copied.unknown_logit - weighted.unknown_logit) < 1e-3
    assert abs(copied.threshold - weighted.threshold) < 1e-6


def test_threshold_bounds_the_unknowns_weight_not_their_count() -> None:
    known = (_evidence([0.9, 0.5], [300, 3]), 0)
    confusing = (_evidence([0.8, 0.5], [60, 3]), -1)  # an unknown that looks known
    plain = [(_evidence([0.5, 0.5], [3, 3]), -1) for _ in range(39)]
    samples = [known, confusing, *plain]
    params = FusionParams.default()
    top_of_confusing = probabilities(confusing[0], params)[0].max()
    by_count = choose_threshold(samples, params, 0.05)  # 1 in 40 unknowns: may be accepted
    by_weight = choose_threshold(samples, params, 0.05, [1.0, 10.0] + [1.0] * 39)  # 10 in 49: may not
    assert by_count <= top_of_confusing < by_weight


def test_samples_for_the_temperature_alone_leave_the_weights_and_threshold_and_move_the_temperature() -> None:
    rng = np.random.default_rng(5)
    gallery = _gallery_like(rng, 300)
    groups = [f"g{i % 40}" for i in range(len(gallery))]
    # Right answers barely above the noise, as a landmark known by one photo gives: the held-out top-1 of such
    # answers is modest, so the temperature and the unknown shift learn that they are right nonetheless.
    weak = []
    for _ in range(60):
        sim, inl = rng.uniform(0.1, 0.4, 6), rng.integers(0, 9, 6)
        sim[2], inl[2] = rng.uniform(0.35, 0.55), rng.integers(8, 16)
        weak.append((_evidence(list(sim), list(inl)), 2))
    plain = fit_fusion(gallery, groups=groups)
    both = fit_fusion(gallery + weak, groups=groups + [f"g{i % 40}" for i in range(len(weak))],
                      fits_weights=[True] * len(gallery) + [False] * len(weak))
    assert both.weights == plain.weights
    assert (both.temperature, both.unknown_logit) != (plain.temperature, plain.unknown_logit)
    assert np.mean([probabilities(ev, both)[0][2] for ev, _ in weak]) > \
        np.mean([probabilities(ev, plain)[0][2] for ev, _ in weak])
    # The threshold is still the one that bounds the gallery's unknowns at the false-accept rate.
    assert both.threshold == choose_threshold(gallery, both, 0.05)
