"""Linear softmax heads trained on gallery embeddings each time the index is built.

The landmark head generalises across views where a single nearest neighbour can be
fooled; the category head still names the kind of place when no landmark matches.
Training takes milliseconds on a gallery of thousands, so it is redone with every index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class LinearHead:
    weight: np.ndarray  # [d, c]
    bias: np.ndarray  # [c]
    classes: list[str]

    def log_proba(self, vectors: np.ndarray) -> np.ndarray:
        logits = vectors @ self.weight + self.bias
        logits = logits - logits.max(axis=-1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))

    def proba(self, vectors: np.ndarray) -> np.ndarray:
        return np.exp(self.log_proba(vectors))


def train_linear_head(
    vectors: np.ndarray, labels: list[str], *, weight_decay: float = 1e-3, steps: int = 200, scale: float = 16.0
) -> LinearHead:
    """Multinomial logistic regression (full batch, L-BFGS) on L2-normalised vectors.

    `scale` multiplies the inputs, as cosine-softmax heads do, so a small weight norm can
    still express confident classes; weight decay keeps it from memorising single photos.
    """
    classes = sorted(set(labels))
    if len(classes) == 1:
        return LinearHead(np.zeros((vectors.shape[1], 1), np.float32), np.zeros(1, np.float32), classes)
    index = {name: i for i, name in enumerate(classes)}
    x = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)) * scale
    y = torch.tensor([index[name] for name in labels])
    generator = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(x.shape[1], len(classes))
    with torch.no_grad():
        linear.weight.normal_(0, 0.01, generator=generator)
        linear.bias.zero_()
    optimizer = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(x), y) + weight_decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    weight = (linear.weight.detach().numpy().T * scale).astype(np.float32)
    return LinearHead(weight, linear.bias.detach().numpy().astype(np.float32), classes)


def out_of_fold_log_proba(
    vectors: np.ndarray, labels: list[str], classes: list[str], folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Head log-probabilities for each gallery photo from a head that never saw it.

    The fusion weights are fitted on these, so they reflect how the head behaves on new
    photos, not on the photos it memorised.
    """
    n = len(labels)
    out = np.full((n, len(classes)), np.log(1.0 / max(1, len(classes))), dtype=np.float32)
    order = np.random.default_rng(seed).permutation(n)
    column = {name: i for i, name in enumerate(classes)}
    for fold in range(min(folds, n)):
        held = order[fold::folds]
        kept = np.setdiff1d(order, held)
        if len(set(labels[i] for i in kept)) < 2:
            continue
        head = train_linear_head(vectors[kept], [labels[i] for i in kept])
        logp = head.log_proba(vectors[held])
        filled = np.full((len(held), len(classes)), -30.0, dtype=np.float32)
        for j, name in enumerate(head.classes):
            filled[:, column[name]] = logp[:, j]
        out[held] = filled
    return out


def without_class(log_proba: np.ndarray, column: int) -> np.ndarray:
    """A head's answer had it never heard of one class: drop it and renormalise (the class keeps its column,
    at a log-probability of -30, so columns still line up with the index's landmarks)."""
    rest = np.delete(log_proba, column)
    rest = rest - np.log(np.exp(rest - rest.max()).sum()) - rest.max()
    return np.insert(rest, column, -30.0)
