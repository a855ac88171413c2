"""Full-ranking evaluation: every item of the catalogue is ranked for every evaluated user.

Protocol (documented in docs/benchmarks.md):
- items of the user's input history are excluded from the ranking by default (as in HSTU's and
  RecBole's full-ranking evaluation); the targets always stay rankable, even if seen before;
- ties count against the model: a target's rank is 1 + the number of *other* items whose score
  is greater than or equal to its own;
- with several targets per user (fold-in protocols), Recall@K = hits / min(K, #targets) and
  NDCG@K is normalised by the ideal DCG of min(K, #targets) hits (Liang et al. 2018).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from genrec.data.dataset import EvalSet, Histories
from genrec.generation.topk import mask_scores


def target_ranks(scores: torch.Tensor, history: Histories, targets: Histories, exclude_seen: bool = True):
    """Pessimistic 1-based ranks of each target: (B, T) float tensor, +inf where no target (padding)."""
    B = scores.shape[0]
    t_rows = torch.from_numpy(targets.row_ids())
    t_items = torch.from_numpy(targets.items)
    t_scores = scores[t_rows, t_items].float()
    scores = mask_scores(scores.float(), history, exclude_seen)
    scores[t_rows, t_items] = t_scores  # targets stay rankable even when seen before
    T = int(targets.lengths.max(initial=1))
    col = torch.from_numpy(np.arange(len(targets.items)) - np.repeat(targets.indptr[:-1], targets.lengths))
    tgt = torch.full((B, T), torch.nan)
    tgt[t_rows, col] = t_scores
    if T == 1:
        # count of items with score >= target (the target itself included) = pessimistic rank
        ranks = (scores >= tgt).sum(1, keepdim=True).float()
    else:
        sorted_scores, _ = torch.sort(scores, dim=1)  # ascending
        n = scores.shape[1]
        ranks = (n - torch.searchsorted(sorted_scores, tgt.nan_to_num(torch.inf), side="left")).float()
    ranks[tgt.isnan()] = torch.inf
    # a -inf target score (model put it out of reach) is ranked last among all items
    ranks[tgt == -torch.inf] = float(scores.shape[1])
    return ranks


def metrics_from_ranks(ranks: torch.Tensor, n_targets: torch.Tensor, ks: Sequence[int]) -> dict[str, torch.Tensor]:
    """Per-user metric values (B,) from (B, T) ranks."""
    out: dict[str, torch.Tensor] = {}
    gains = torch.where(torch.isfinite(ranks), 1.0 / torch.log2(ranks + 1.0), torch.zeros_like(ranks))
    out["mrr"] = (1.0 / ranks.min(1).values).nan_to_num(0.0)
    for k in ks:
        hit = ranks <= k
        n_hit = hit.sum(1).float()
        denom = torch.clamp(n_targets, max=k).float()
        out[f"hr@{k}"] = (n_hit > 0).float()
        out[f"recall@{k}"] = n_hit / denom
        dcg = (gains * hit).sum(1)
        # ideal DCG for min(k, #targets) hits at ranks 1..m
        disc = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float32))
        idcg = torch.cumsum(disc, 0)[(denom - 1).long()]
        out[f"ndcg@{k}"] = dcg / idcg
    return out


def evaluate(
    score_fn: Callable[[Histories], torch.Tensor],
    evalset: EvalSet,
    ks: Sequence[int] = (10, 20, 50),
    exclude_seen: bool = True,
    batch_size: int = 1024,
    item_popularity: np.ndarray | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Mean full-ranking metrics over `evalset`, plus coverage@K and popularity of top-K lists.

    `score_fn` maps a batch of histories to (B, n_items + 1) scores, e.g. `model.score`.
    """
    ks = sorted(set(int(k) for k in ks))
    n = len(evalset)
    if n == 0:
        raise ValueError("the evaluation set is empty: no users to evaluate")
    sums: dict[str, float] = {}
    kmax = max(ks)
    recommended: list[torch.Tensor] = []
    starts = range(0, n, batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="evaluate", unit="batch", leave=False)
    with torch.no_grad():
        for s in starts:
            rows = slice(s, min(s + batch_size, n))
            hist, tgt = evalset.history.take(rows), evalset.targets.take(rows)
            scores = score_fn(hist).float()
            ranks = target_ranks(scores.clone(), hist, tgt, exclude_seen)
            per_user = metrics_from_ranks(ranks, torch.from_numpy(tgt.lengths), ks)
            for key, v in per_user.items():
                sums[key] = sums.get(key, 0.0) + float(v.sum())
            masked = mask_scores(scores, hist, exclude_seen)
            recommended.append(torch.topk(masked, min(kmax, masked.shape[1] - 1), dim=1).indices)
    out = {key: v / n for key, v in sums.items()}
    top = torch.cat(recommended)
    n_items = scores.shape[1] - 1
    for k in ks:
        out[f"coverage@{k}"] = torch.unique(top[:, :k]).numel() / n_items
        if item_popularity is not None:
            pop = torch.as_tensor(item_popularity, dtype=torch.float64)
            # mean training popularity of recommended items, relative to the catalogue mean
            out[f"avg_pop@{k}"] = float(pop[top[:, :k]].mean() / pop[1:].mean())
    out["n_users"] = n
    return dict(sorted(out.items()))
