"""Turns retrieval, geometric verification and the head into calibrated probabilities.

Each candidate landmark gets three pieces of evidence: its best cosine similarity, the
log of its best inlier count, and the head's log-probability. A softmax over
`w · evidence` for every landmark plus one "unknown" outcome with a constant logit gives
probabilities that sum to one with the unknown mass included, so the top five never add
up to more than 100 %. The weights and the unknown logit are fitted by maximum likelihood
on the gallery alone (each gallery photo queried against the rest, gallery distractors
labelled unknown), so they mean the same thing on photos nobody has seen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

N_FEATURES = 3


@dataclass
class FusionParams:
    weights: list[float]
    unknown_logit: float
    threshold: float  # minimum top-1 probability to call a photo recognised

    @classmethod
    def default(cls) -> FusionParams:
        return cls(weights=[20.0, 1.0, 0.5], unknown_logit=14.0, threshold=0.5)

    def to_dict(self) -> dict:
        return asdict(self)


def landmark_evidence(
    similarity: np.ndarray, inliers: np.ndarray, head_log_proba: np.ndarray
) -> np.ndarray:
    """[L, 3] evidence per landmark, in the order the fusion weights expect."""
    return np.stack(
        [similarity.astype(np.float32), np.log1p(inliers.astype(np.float32)), head_log_proba.astype(np.float32)],
        axis=1,
    )


def probabilities(evidence: np.ndarray, params: FusionParams) -> tuple[np.ndarray, float]:
    """(p per landmark [L], p unknown)."""
    logits = evidence @ np.asarray(params.weights, dtype=np.float32)
    logits = np.append(logits, params.unknown_logit)
    logits -= logits.max()
    p = np.exp(logits)
    p /= p.sum()
    return p[:-1], float(p[-1])


def fit_fusion(samples: list[tuple[np.ndarray, int]], l2: float = 1e-3,
               false_accept_rate: float = 0.05) -> FusionParams:
    """Maximum likelihood of the true outcome (landmark index, or -1 for unknown).

    `samples` come from the gallery only. The decision threshold on the top-1 probability
    is then set so that at most `false_accept_rate` of the unknown samples would be
    answered as a landmark (a Neyman–Pearson choice: bound the wrong answers, accept
    as many true ones as that allows).
    """
    if not samples:
        return FusionParams.default()
    default = FusionParams.default()
    w = torch.tensor(default.weights, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([default.unknown_logit], dtype=torch.float64, requires_grad=True)
    evidence, mask, targets = _padded(samples)
    optimizer = torch.optim.LBFGS([w, t], lr=0.5, max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = (evidence @ w).masked_fill(~mask, -torch.inf)
        logits = torch.cat([logits, t.expand(len(logits), 1)], dim=1)
        loss = torch.nn.functional.cross_entropy(logits, targets) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    params = FusionParams(weights=[float(v) for v in w.detach()], unknown_logit=float(t.detach()[0]), threshold=0.5)
    params.threshold = choose_threshold(samples, params, false_accept_rate)
    return params


def _padded(samples: list[tuple[np.ndarray, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Samples have different numbers of candidates (a left-out landmark is missing): pad to one batch.

    Returns evidence [N, L, F], which candidates are real [N, L], and the target column, L for unknown."""
    width = max(len(ev) for ev, _ in samples)
    evidence = torch.zeros((len(samples), width, N_FEATURES), dtype=torch.float64)
    mask = torch.zeros((len(samples), width), dtype=torch.bool)
    for i, (ev, _) in enumerate(samples):
        evidence[i, : len(ev)] = torch.from_numpy(ev.astype(np.float64))
        mask[i, : len(ev)] = True
    targets = torch.tensor([width if label < 0 else label for _, label in samples])
    return evidence, mask, targets


def choose_threshold(samples: list[tuple[np.ndarray, int]], params: FusionParams, false_accept_rate: float) -> float:
    """The top-1 probability above which no more than `false_accept_rate` of unknowns fall."""
    negatives = []
    for ev, label in samples:
        if label < 0:
            p, _ = probabilities(ev, params)
            negatives.append(float(p.max()) if len(p) else 0.0)
    if not negatives:
        return 0.5
    cut = float(np.quantile(np.asarray(negatives), 1.0 - false_accept_rate, method="higher"))
    return float(np.nextafter(cut, 1.0))
