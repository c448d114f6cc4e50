"""Turns retrieval, geometric verification and the head into calibrated probabilities.

Each candidate landmark gets three pieces of evidence: its best cosine similarity, the
log of its best inlier count, and the head's log-probability. A softmax over
`w · evidence` for every landmark plus one "unknown" outcome with a constant logit gives
probabilities that sum to one with the unknown mass included, so the top five never add
up to more than 100 %. The weights and the unknown logit are fitted by maximum likelihood
on the gallery alone (each gallery photo queried against the rest, gallery distractors
labelled unknown), so they mean the same thing on photos nobody has seen.

A temperature then divides every logit, and the unknown logit moves by a shift. Both are
fitted on the gallery too, but out of sample: the samples are split by landmark, the weights
refitted without each part and that part's logits kept, and the temperature and the shift are
the ones under which those held-out top-1 probabilities best say whether the top-1 landmark is
right: the figure the bot shows and the evaluation's calibration error reads, scored by the Brier
score ((p - right)², bounded by 1 a sample). A Gaussian prior on log T keeps the fit from sharpening
without limit where the held-out answers happen to split right from wrong; its strength is chosen
per gallery, by folds of the held-out answers themselves (`TEMPERATURE_PRIORS`).

The held-out top-1 was first scored by its log-likelihood, with a prior worth one sample. There a
wrong answer at p costs -log(1 - p), without bound, against p² under Brier, so the few held-out
answers that are wrong with confidence (a left-out landmark's photo that finds a look-alike with many
inliers) hold the temperature up for all the others. Pooled over the dev split and 7 re-splits the
top-1 said too little: ECE 0.043 over 528 answers, 0.047 over 896 with each landmark query asked
again with its landmark left out (0.022 by chance on the first). Scored by Brier with the prior
chosen per gallery, the same runs give 0.033 and 0.030; the dev split 0.070 -> 0.041; P@1, GAP,
distractor and false rejection are the same on every split. Split by split, the ECE of a few dozen
answers is mostly luck (0.061 by chance on the dev split's confidences): it fell on 3 of the 8
splits and rose on 5, mean 0.059 -> 0.058 (over the 7 re-splits alone 0.058 -> 0.060). The same five
hard pairs of single-photo landmarks lead the error on every split (right answers on 5-41 inliers,
where a distractor's best reaches 9 and a look-alike's 18), so the splits do not average them out. The
log-likelihood with a prior chosen the same way barely moves (mean temperature 0.79 -> 0.77, pooled
ECE 0.043 -> 0.042).

The fit once also maximised the true outcome's probability (the likelihood the weights are fitted
by). That held the temperature near 1, and the top-1 stayed too modest: pooled over the dev split and
7 re-splits (528 answers), answers at 0.2-0.9 were right 85-100 % of the time, for an ECE of 0.064
where a calibrated model would show 0.022 by chance. On the top-1 alone, the same runs gave ECE
0.097 -> 0.072 on the dev split, 0.074 -> 0.063 on average over the 8, 0.064 -> 0.049 pooled, with
P@1, GAP, distractor rejection and false rejection the same on each split (a temperature and a shift
keep every answer's order, and the threshold is chosen after them). The middle range is still too
modest: in the gallery it also holds the look-alikes that photos of a left-out landmark find, wrong
every time, and the dev queries bring no unknown landmark.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

N_FEATURES = 3
# Gaussian priors on the log of the temperature, each worth that many samples of the held-out fit, strongest
# first. Where the held-out top-1 answers happen to split right from wrong by their probability, the fit alone
# sharpens without limit (a temperature of 0.005 on one re-split of the dev set), so some prior is needed; how
# strong depends on how much the gallery's held-out answers overlap, which differs from gallery to gallery. Each
# build asks its own gallery: the prior whose temperature, fitted on the other folds, scores the held-out fold
# best (`_choose_prior`). Over the dev split and 7 re-splits it chose 1 on four, 0.03 on three and 0.01 on one.
TEMPERATURE_PRIORS = (1.0, 0.3, 0.1, 0.03, 0.01)


@dataclass
class FusionParams:
    weights: list[float]
    unknown_logit: float
    threshold: float  # minimum top-1 probability to call a photo recognised
    temperature: float = 1.0  # divides every logit; fitted out of sample on the gallery (unknown_logit's shift too)

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
    logits = np.append(logits, params.unknown_logit) / params.temperature
    logits -= logits.max()
    p = np.exp(logits)
    p /= p.sum()
    return p[:-1], float(p[-1])


def fit_fusion(samples: list[tuple[np.ndarray, int]], l2: float = 1e-3, false_accept_rate: float = 0.05,
               groups: list[str] | None = None, folds: int = 5,
               sample_weights: list[float] | None = None, fits_weights: list[bool] | None = None) -> FusionParams:
    """Maximum likelihood of the true outcome (landmark index, or -1 for unknown), then the temperature.

    `samples` come from the gallery only; `groups` names where each came from (its landmark,
    or its distractor photo) so the temperature is fitted on samples whose group the weights
    never saw. `sample_weights` say how much each sample counts in the likelihoods and in the
    threshold (all 1 when not given). The decision threshold on the top-1 probability is then
    set so that at most `false_accept_rate` of the unknown samples' weight would be answered as
    a landmark (a Neyman–Pearson choice: bound the wrong answers, accept as many true ones as
    that allows).

    A sample with `fits_weights` False is one the temperature and the shift learn from but the weights and
    the threshold do not (all True when not given): it describes a situation the top-1 probability must be
    honest about, asked in a way that would skew the weights if they learned from it too.
    """
    if not samples:
        return FusionParams.default()
    evidence, mask, targets = _padded(samples)
    weight = torch.tensor([1.0] * len(samples) if sample_weights is None else sample_weights, dtype=torch.float64)
    learns = torch.tensor([True] * len(samples) if fits_weights is None else fits_weights)
    weights, unknown_logit = _fit_weights(evidence[learns], mask[learns], targets[learns], l2, weight[learns])
    params = FusionParams(weights=weights, unknown_logit=unknown_logit, threshold=0.5)
    if groups is not None:
        params.temperature, shift = _fit_out_of_sample(evidence, mask, targets, groups, l2, folds, weight, learns)
        params.unknown_logit += shift
    kept = [i for i in range(len(samples)) if learns[i]]
    params.threshold = choose_threshold([samples[i] for i in kept], params, false_accept_rate,
                                        None if sample_weights is None else [sample_weights[i] for i in kept])
    return params


def _logits(evidence: torch.Tensor, mask: torch.Tensor, w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    logits = (evidence @ w).masked_fill(~mask, -torch.inf)
    return torch.cat([logits, t.expand(len(logits), 1)], dim=1)


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ w·v / Σ w: the likelihood per unit of weight, so the L2 penalty keeps its strength whatever the weights'
    scale, in the full fit and in every fold of the temperature's (whose parts have other mean weights)."""
    return (values * weights).sum() / weights.sum()


def _fit_weights(evidence: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor,
                 l2: float, sample_weights: torch.Tensor) -> tuple[list[float], float]:
    default = FusionParams.default()
    w = torch.tensor(default.weights, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([default.unknown_logit], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, t], lr=0.5, max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        nll = torch.nn.functional.cross_entropy(_logits(evidence, mask, w, t), targets, reduction="none")
        loss = _weighted_mean(nll, sample_weights) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return [float(v) for v in w.detach()], float(t.detach()[0])


def _fit_out_of_sample(evidence: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor, groups: list[str],
                       l2: float, folds: int, sample_weights: torch.Tensor,
                       fits_weights: torch.Tensor) -> tuple[float, float]:
    """(temperature, shift of the unknown logit) under which the held-out groups' top-1 probabilities best say
    whether their top-1 landmark is right, with log T held near 0 by the prior the gallery's folds choose ((1, 0)
    when there is too little to split)."""
    names = sorted(set(groups))
    if len(names) < 2:
        return 1.0, 0.0
    fold_of = {name: i % folds for i, name in enumerate(np.random.default_rng(0).permutation(names))}
    fold = torch.tensor([fold_of[g] for g in groups])
    held_out = torch.zeros(evidence.shape[0], evidence.shape[1] + 1, dtype=torch.float64)
    for k in range(min(folds, len(names))):
        part = fold == k
        if part.all() or not part.any():
            return 1.0, 0.0
        rest = ~part & fits_weights
        weights, unknown_logit = _fit_weights(evidence[rest], mask[rest], targets[rest], l2, sample_weights[rest])
        held_out[part] = _logits(evidence[part], mask[part], torch.tensor(weights, dtype=torch.float64),
                                 torch.tensor([unknown_logit], dtype=torch.float64))
    top_1 = _HeldOutTop1(held_out, mask, targets, sample_weights)
    prior = _choose_prior(top_1, fold, min(folds, len(names)))
    log_t, shift = top_1.fit(torch.ones(len(targets), dtype=torch.bool), prior)
    return float(log_t.exp()[0]), float(shift[0])


class _HeldOutTop1:
    """The held-out logits' top-1 answers, whether each is right, and the Brier score of its probability under a
    temperature and an unknown shift."""

    def __init__(self, held_out: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor,
                 sample_weights: torch.Tensor) -> None:
        self.present = torch.cat([mask, torch.ones(len(mask), 1, dtype=torch.bool)], dim=1)  # padding stays out
        self.logits = held_out.nan_to_num(neginf=0.0)
        self.top = held_out[:, :-1].argmax(dim=1)  # the held-out answer's landmark
        self.right = (self.top == targets).to(torch.float64)
        self.weights = sample_weights
        self.unknown_column = torch.zeros(held_out.shape[1], dtype=torch.float64)
        self.unknown_column[-1] = 1.0

    def brier(self, rows: torch.Tensor, log_t: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """(top-1 probability - whether it is right)² per sample of `rows`."""
        scaled = ((self.logits[rows] + shift * self.unknown_column) / log_t.exp()).masked_fill(~self.present[rows],
                                                                                               -torch.inf)
        top_p = torch.softmax(scaled, dim=1).gather(1, self.top[rows][:, None])[:, 0]
        return (top_p - self.right[rows]).pow(2)

    def fit(self, rows: torch.Tensor, prior: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(log T, shift) of least weighted Brier score on `rows`, with a Gaussian prior on log T worth `prior`
        samples."""
        log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        shift = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([log_t, shift], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")
        weights = self.weights[rows]

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = _weighted_mean(self.brier(rows, log_t, shift), weights) + prior * log_t.pow(2).sum() / weights.sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            optimizer.step(closure)
        return log_t.detach(), shift.detach()


def _choose_prior(top_1: _HeldOutTop1, fold: torch.Tensor, folds: int) -> float:
    """The prior on log T whose temperature, fitted on the other folds' held-out answers, scores each fold's best
    (the weighted Brier score summed over the folds): how far this gallery's evidence can be trusted to sharpen
    the top-1, asked of the gallery alone."""
    scores = []
    for prior in TEMPERATURE_PRIORS:
        total = 0.0
        for k in range(folds):
            part = fold == k
            log_t, shift = top_1.fit(~part, prior)
            total += float((top_1.brier(part, log_t, shift) * top_1.weights[part]).sum())
        scores.append(total)
    return TEMPERATURE_PRIORS[int(np.argmin(scores))]  # the strongest prior among equal scores


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


def choose_threshold(samples: list[tuple[np.ndarray, int]], params: FusionParams, false_accept_rate: float,
                     sample_weights: list[float] | None = None) -> float:
    """The top-1 probability above which no more than `false_accept_rate` of the unknowns' weight falls."""
    negatives, weights = [], []
    for i, (ev, label) in enumerate(samples):
        if label < 0:
            p, _ = probabilities(ev, params)
            negatives.append(float(p.max()) if len(p) else 0.0)
            weights.append(1.0 if sample_weights is None else sample_weights[i])
    if not negatives:
        return 0.5
    order = np.argsort(negatives, kind="stable")
    share_at_or_below = np.cumsum(np.asarray(weights)[order]) / sum(weights)
    first_enough = min(int(np.searchsorted(share_at_or_below, 1.0 - false_accept_rate - 1e-9)), len(order) - 1)
    return float(np.nextafter(negatives[order[first_enough]], 1.0))
