"""A new index measured on the gallery's held-back photos before it serves: the figures an admin reads after /reindex.

Held-back photos (`landmarks import DIR --held-back` stores a split's query photos that way) are kept
but never indexed. After each build they are recognised with the new index by the same `Recognizer`
that answers users, so the figures mean what `landmarks eval` means, on the live gallery. Their
embeddings live in the gallery's embedding cache: a rebuild embeds none of them again.
"""

from __future__ import annotations

import numpy as np

from ml.index.bundle import IndexBundle
from ml.metrics import precision_at_k, rejected_share
from ml.models.image_embedder import Embedding, ImageEmbedder
from ml.models.local_features import LocalFeatureMatcher, LocalFeatures
from ml.recognize import Recognizer

FIGURES = ("held_back_photos", "held_back_p_at_1", "held_back_p_at_5", "held_back_distractor_rejection",
           "held_back_false_rejection")


def measure_held_back(bundle: IndexBundle, embedder: ImageEmbedder, matcher: LocalFeatureMatcher,
                      landmark_ids: list[str | None], vectors: np.ndarray, imagenet_logits: np.ndarray,
                      local: list[LocalFeatures]) -> dict[str, float | str | None]:
    """P@1 and P@5 on the held-back photos of landmarks, the share of held-back distractors rejected and of
    landmarks wrongly rejected (None where there is nothing to count)."""
    recognizer = Recognizer(embedder, matcher, bundle)
    ranked: list[list[str]] = []
    recognised: list[bool] = []
    for vector, logits, features in zip(vectors, imagenet_logits, local):
        result = recognizer.answer(*recognizer.evidence(Embedding(vector, logits), features))
        ranked.append([lm.landmark_id for lm in result.landmarks])
        recognised.append(result.recognized)
    known = [i for i, landmark in enumerate(landmark_ids) if landmark is not None]
    unknown = [i for i, landmark in enumerate(landmark_ids) if landmark is None]
    truth = [landmark_ids[i] for i in known]
    return {
        "held_back_photos": float(len(landmark_ids)),
        "held_back_p_at_1": precision_at_k([ranked[i] for i in known], truth, 1) if known else None,
        "held_back_p_at_5": precision_at_k([ranked[i] for i in known], truth, 5) if known else None,
        "held_back_distractor_rejection": rejected_share([recognised[i] for i in unknown]),
        "held_back_false_rejection": rejected_share([recognised[i] for i in known]),
        # a live /add or /remove copies these figures into its version; the next /reindex measures again
        "held_back_measured_on": bundle.version,
    }
