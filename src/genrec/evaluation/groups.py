"""Metrics per group of users (gender, age, any attribute) and the largest gap between groups.

by_group = evaluate_groups(model.score, ds.test, labels)   # labels[b]: the group of row b, or None
by_group["groups"]["F"]["ndcg@10"], by_group["gaps"]["ndcg@10"]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from genrec.data.dataset import EvalSet, Histories
from genrec.evaluation.metrics import evaluate


def evaluate_groups(
    score_fn: Callable[[Histories], torch.Tensor],
    evalset: EvalSet,
    labels: Sequence[str | None],
    ks: Sequence[int] = (10,),
    exclude_seen: bool = True,
    item_popularity: np.ndarray | None = None,
    min_users: int = 1,
) -> dict:
    """Full-ranking metrics of each group (rows with label None belong to none), and per metric the
    largest gap: the best and worst group, their difference and worst / best. Groups with fewer than
    `min_users` users are reported but left out of the gaps (too few to compare)."""
    labels_a = np.asarray([None if x is None else str(x) for x in labels], dtype=object)
    if len(labels_a) != len(evalset):
        raise ValueError(f"{len(labels_a)} labels for {len(evalset)} evaluated users")
    groups: dict[str, dict[str, float]] = {}
    for g in sorted({x for x in labels_a if x is not None}):
        rows = np.flatnonzero(labels_a == g)
        sub = EvalSet(evalset.history.take(rows), evalset.targets.take(rows))
        groups[g] = evaluate(score_fn, sub, ks, exclude_seen, item_popularity=item_popularity)
    compared = {g: m for g, m in groups.items() if m["n_users"] >= min_users}
    gaps = {}
    for key in [f"{m}@{k}" for m in ("ndcg", "hr") for k in sorted(set(ks))]:
        if len(compared) < 2:
            break
        best = max(compared, key=lambda g: compared[g][key])
        worst = min(compared, key=lambda g: compared[g][key])
        hi, lo = compared[best][key], compared[worst][key]
        gaps[key] = {"best": best, "worst": worst, "difference": hi - lo, "ratio": lo / hi if hi else 1.0}
    return {"groups": groups, "gaps": gaps, "unlabelled_users": int(sum(x is None for x in labels_a))}
