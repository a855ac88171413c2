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
from genrec.ranking import mask_scores, top_k

MAX_CELLS = 1 << 25  # scores held at once while evaluating: 128 MB of float32 (1024 users x 32k items)


def target_ranks(scores: torch.Tensor, history: Histories, targets: Histories, exclude_seen: bool = True):
    """Pessimistic 1-based ranks of each target: (B, T) float tensor, +inf where no target (padding).

    `scores` is modified in place (ineligible items set to -inf); pass a copy to keep it.
    """
    t_rows = torch.from_numpy(targets.row_ids())
    t_items = torch.from_numpy(targets.items)
    t_scores = scores[t_rows, t_items].float()
    scores = mask_scores(scores, history, exclude_seen)
    return _ranks(scores, targets, t_rows, t_items, t_scores)


def _ranks(
    masked: torch.Tensor,
    targets: Histories,
    t_rows: torch.Tensor,
    t_items: torch.Tensor,
    t_scores: torch.Tensor,
) -> torch.Tensor:
    """Ranks of the targets in `masked` (ineligible items already at -inf; modified in place)."""
    B, n_cols = masked.shape
    masked[t_rows, t_items] = t_scores  # targets stay rankable even when seen before
    T = int(targets.lengths.max(initial=1))
    col = torch.from_numpy(np.arange(len(targets.items)) - np.repeat(targets.indptr[:-1], targets.lengths))
    tgt = torch.full((B, T), torch.nan)
    tgt[t_rows, col] = t_scores
    if T == 1:
        # count of items with score >= target (the target itself included) = pessimistic rank
        ranks = (masked >= tgt).sum(1, keepdim=True, dtype=torch.int32).float()  # int32: 2x faster sum
    else:
        # bucket every item among the row's sorted target scores (O(N log T), not a full O(N log N)
        # sort): bucket[i] = #targets with score <= item i's score, so item i >= target j iff bucket > j
        s_sorted, order = torch.sort(tgt.nan_to_num(torch.inf), dim=1)  # padding slots last, at +inf
        bucket = torch.searchsorted(s_sorted, masked, side="right")  # (B, N) in 0..T
        counts = torch.zeros(B, T + 1).scatter_add_(1, bucket, torch.ones(B, n_cols))
        ge = counts.flip(1).cumsum(1).flip(1)[:, 1:]  # ge[:, j] = #items >= j-th smallest target
        ranks = torch.empty_like(ge).scatter_(1, order, ge)  # back to the targets' own order
    ranks[tgt.isnan()] = torch.inf
    # a -inf target score (model put it out of reach) is ranked last among the n_cols - 1 real items
    ranks[tgt == -torch.inf] = float(n_cols - 1)
    return ranks


def metrics_from_ranks(
    ranks: torch.Tensor, n_targets: torch.Tensor, ks: Sequence[int]
) -> dict[str, torch.Tensor]:
    """Per-user metric values (B,) from (B, T) ranks (+inf = no target in that slot)."""
    out: dict[str, torch.Tensor] = {}
    gains = torch.where(torch.isfinite(ranks), 1.0 / torch.log2(ranks + 1.0), torch.zeros_like(ranks))
    out["mrr"] = (1.0 / ranks.min(1).values).nan_to_num(0.0)
    n_targets = torch.as_tensor(n_targets).clamp(min=1)
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
    max_cells: int = MAX_CELLS,
) -> dict[str, float]:
    """Mean full-ranking metrics over `evalset`, plus coverage@K and popularity of top-K lists.

    `score_fn` maps a batch of histories to (B, n_items + 1) scores, e.g. `model.score`.
    coverage@K: share of the catalogue that appears in at least one top-K list.
    avg_pop@K: mean training popularity of recommended items divided by the catalogue's mean
    popularity (1 = no popularity bias; Pop scores far above 1).
    Only eligible items count for both: a user with fewer than K rankable items has a shorter list.
    gini@K: Gini coefficient of how often each catalogue item appears in the top-K lists (0: every item
    equally often, 1: one item takes every slot).
    With `item_popularity`, head_hr@K / tail_hr@K: share of the targets that are head items (the most
    popular items that together hold HEAD_SHARE, 20%, of the training interactions) / tail items
    ranked in the top K: whether the model finds what few people chose as well as what many did.
    Users are scored `batch_size` at a time, fewer when a batch would hold more than `max_cells`
    scores: memory stays bounded however large the catalogue (the metrics do not depend on it).
    """
    ks = sorted(set(int(k) for k in ks))
    if not ks or ks[0] < 1:
        raise ValueError(f"cut-offs must be >= 1, got {ks}")
    n = len(evalset)
    if n == 0:
        raise ValueError("the evaluation set is empty: no users to evaluate")
    sums: dict[str, float] = {}
    kmax = max(ks)
    head = None if item_popularity is None else torch.from_numpy(head_items(np.asarray(item_popularity)))
    side_hits = {f"{side}_hr@{k}": 0.0 for side in ("head", "tail") for k in ks}
    side_n = {"head": 0, "tail": 0}
    recommended: list[torch.Tensor] = []
    bar = None
    if progress:
        from tqdm import tqdm

        # a bar only when there is something to wait for, and only on a terminal (disable=None)
        bar = tqdm(
            total=n, desc="evaluate", unit="user", leave=False, disable=True if n <= batch_size else None
        )
    n_cols, s, step = 0, 0, 1  # a first batch of one user tells the catalogue's size
    with torch.no_grad():
        while s < n:
            rows = slice(s, min(s + step, n))
            hist, tgt = evalset.history.take(rows), evalset.targets.take(rows)
            scores = score_fn(hist)
            # one private float copy: the model may hand out a view of its own state
            scores = scores.float().clone() if scores.dtype == torch.float32 else scores.float()
            n_cols = scores.shape[1]
            t_rows, t_items = torch.from_numpy(tgt.row_ids()), torch.from_numpy(tgt.items)
            t_scores = scores[t_rows, t_items]
            masked = mask_scores(scores, hist, exclude_seen)
            # top-K lists (for coverage / popularity) are taken before targets are restored
            top, _ = top_k(masked, min(kmax, n_cols - 1))  # fewer eligible items than K: slot 0
            recommended.append(top)
            ranks = _ranks(masked, tgt, t_rows, t_items, t_scores)
            per_user = metrics_from_ranks(ranks, torch.from_numpy(tgt.lengths), ks)
            for key, v in per_user.items():
                sums[key] = sums.get(key, 0.0) + float(v.double().sum())  # exact for any batch size
            if head is not None:
                is_head = torch.zeros_like(ranks, dtype=torch.bool)
                col = torch.from_numpy(np.arange(len(tgt.items)) - np.repeat(tgt.indptr[:-1], tgt.lengths))
                is_head[t_rows, col] = head[t_items]
                real = torch.isfinite(ranks)
                for side, mask in (("head", is_head & real), ("tail", ~is_head & real)):
                    side_n[side] += int(mask.sum())
                    for k in ks:
                        side_hits[f"{side}_hr@{k}"] += float((ranks[mask] <= k).sum())
            if bar is not None:
                bar.update(rows.stop - rows.start)
            s, step = rows.stop, max(1, min(batch_size, max_cells // n_cols))
    if bar is not None:
        bar.close()
    out = {key: v / n for key, v in sums.items()}
    top = torch.cat(recommended)
    n_items = n_cols - 1
    if item_popularity is not None:
        pop = torch.as_tensor(item_popularity, dtype=torch.float64).clone()
        pop[0] = 0.0  # slot 0 = empty slot (fewer eligible items than K), never a recommendation
    for k in ks:
        items = top[:, :k].reshape(-1)
        # bincount, not unique: linear time instead of a sort of every recommended slot
        times = torch.bincount(items, minlength=n_cols)
        out[f"coverage@{k}"] = int(times[1:].count_nonzero()) / n_items
        out[f"gini@{k}"] = gini(times[1:].double())
        if item_popularity is not None:
            # mean training popularity of recommended items, relative to the catalogue mean
            n_rec = int(times[1:].sum())
            out[f"avg_pop@{k}"] = float(pop[items].sum() / n_rec / pop[1:].mean()) if n_rec else 0.0
    if head is not None:
        for key, hits in side_hits.items():
            side = key.split("_")[0]
            out[key] = hits / side_n[side] if side_n[side] else float("nan")
    out["n_users"] = n
    return dict(sorted(out.items()))


HEAD_SHARE = 0.2  # head items: the most popular ones, together at least this share of the interactions


def head_items(popularity: np.ndarray) -> np.ndarray:
    """(n_items + 1,) bool: the most popular items that together hold HEAD_SHARE of the training
    interactions (index 0, padding, is not an item)."""
    pop = np.asarray(popularity, dtype=np.float64).copy()
    pop[0] = 0.0
    order = np.argsort(-pop, kind="stable")
    cum = np.cumsum(pop[order])
    n_head = int(np.searchsorted(cum, HEAD_SHARE * cum[-1])) + 1 if cum[-1] > 0 else 0
    out = np.zeros(len(pop), dtype=bool)
    out[order[:n_head]] = True
    out[0] = False
    return out


def gini(counts: torch.Tensor) -> float:
    """Gini coefficient of non-negative `counts` (0 = equal; 1 = all in one)."""
    x = torch.sort(counts.double()).values
    n, total = len(x), float(x.sum())
    if n == 0 or total == 0:
        return 0.0
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return float(2 * (i * x).sum() / (n * total) - (n + 1) / n)
