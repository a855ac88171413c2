"""Diversity re-ranking: maximal marginal relevance (Carbonell & Goldstein 1998) over a top-k pool.

    vecs = item_vectors(dataset)                       # (n_items + 1, D), unit length, row 0 zero
    slates = mmr(generate(model, hist, k=100), k=10, diversity=0.3, vectors=vecs)

Each next item maximises (1 - diversity) * relevance - diversity * (its highest similarity to the
items already chosen), where relevance is the model's score rescaled to [0, 1] within the user's pool
and similarity the cosine of two items' co-consumption vectors. `diversity=0` keeps the model's order.

The vectors come from the data, not from the model (a truncated SVD of the training user-item matrix),
so every model is re-ranked with the same notion of "similar" and their trade-off curves compare.
"""

from __future__ import annotations

import numpy as np
import torch

from genrec.data.dataset import Dataset, Histories
from genrec.generation.search import Slates

POOL = 100  # candidates re-ranked per list
DIM = 32


def item_vectors(data: Dataset, dim: int = DIM) -> torch.Tensor:
    """(n_items + 1, dim) unit-length item vectors from a truncated SVD of the binary training matrix."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.linalg import svds

    h = data.train
    x = csr_matrix((np.ones(len(h.items)), (h.row_ids(), h.items)), shape=(len(h), data.n_items + 1))
    x.data[:] = 1.0  # repeats count once
    k = max(1, min(dim, min(x.shape) - 2))
    _, s, vt = svds(x.astype(np.float64), k=k, random_state=0)
    v = torch.from_numpy((vt.T * s).astype(np.float32))  # (n_items + 1, k)
    return torch.nn.functional.normalize(v, dim=1)  # items never seen stay at zero


def mmr(pool: Slates, k: int, diversity: float, vectors: torch.Tensor) -> Slates:
    """Re-rank each row of `pool` (a list longer than k, best first) into k items; scores kept."""
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be between 0 and 1, got {diversity}")
    items = torch.from_numpy(pool.items)
    scores = torch.from_numpy(pool.scores).float()
    B, P = items.shape
    real = items > 0
    lo = torch.where(real, scores, torch.inf).min(1, keepdim=True).values
    hi = torch.where(real, scores, -torch.inf).max(1, keepdim=True).values
    rel = torch.where(real, (scores - lo) / (hi - lo).clamp(min=1e-12), -torch.inf)  # (B, P) in [0, 1]
    v = vectors[items]  # (B, P, D)
    sim = v @ v.transpose(1, 2)  # (B, P, P) cosine
    closest = torch.zeros(B, P)  # highest similarity to an item already chosen
    taken = ~real
    rows = torch.arange(B)
    out_items = torch.zeros(B, k, dtype=torch.long)
    out_scores = torch.full((B, k), -torch.inf)
    for j in range(min(k, P)):  # a loop over list positions, batched over users
        obj = (1 - diversity) * rel - diversity * closest
        obj = obj.masked_fill(taken, -torch.inf)
        pick = obj.argmax(1)
        ok = torch.isfinite(obj[rows, pick])
        out_items[:, j] = torch.where(ok, items[rows, pick], 0)
        out_scores[:, j] = torch.where(ok, scores[rows, pick], -torch.inf)
        taken[rows, pick] = True
        closest = torch.maximum(closest, sim[rows, pick])
    return Slates(out_items.numpy(), out_scores.numpy())


def intra_list_diversity(items: np.ndarray, vectors: torch.Tensor) -> float:
    """Mean over lists of 1 - the mean cosine between two different items of the list."""
    it = torch.from_numpy(items)
    v = vectors[it]  # (B, k, D)
    sim = v @ v.transpose(1, 2)
    real = (it > 0).float()
    pair = real[:, :, None] * real[:, None, :] * (1 - torch.eye(it.shape[1]))
    n = pair.sum((1, 2))
    per_list = 1 - (sim * pair).sum((1, 2)) / n.clamp(min=1)
    return float(per_list[n > 0].mean()) if bool((n > 0).any()) else 0.0


def list_metrics(items: np.ndarray, targets: Histories, k: int) -> dict[str, float]:
    """NDCG@k and HR@k of given lists (rank = position in the list), averaged over rows; several
    targets per row are normalised by the ideal DCG of min(k, #targets) hits."""
    top = np.asarray(items)[:, :k]
    width = int(max(top.max(initial=0), targets.items.max(initial=0))) + 1
    keys = np.arange(len(top))[:, None] * width + top  # (row, item) as one integer
    hits = np.isin(keys, targets.row_ids() * width + targets.items) & (top > 0)
    disc = 1 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(disc)[np.clip(targets.lengths, 1, k) - 1]
    ndcg = (hits * disc[: top.shape[1]]).sum(1) / ideal
    return {f"ndcg@{k}": float(ndcg.mean()), f"hr@{k}": float(hits.any(1).mean())}
