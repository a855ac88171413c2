"""Approximate candidate retrieval over item embeddings, then exact re-scoring.

For a model whose scores are user vector . item vector (`DotProductScores`: SASRec, HSTU), a top-k list
over a huge catalogue need not score every item: an HNSW graph over the item vectors (faiss,
inner-product metric) proposes `candidates` items per user in O(log n), and the model's own scores of
just those rank them, with the history excluded and the other constraints applied. What it can miss is
only what the graph search misses; `recall_at_k` measures that against the exact list.

faiss is optional (`pip install faiss-cpu`, in the `large` extra).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from genrec.data.dataset import Histories
from genrec.generation.constraints import Constraints
from genrec.generation.search import Slates, _check_k
from genrec.models.base import DotProductScores
from genrec.ranking import RowSets, top_k


def _faiss():
    try:
        import faiss
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "approximate retrieval needs faiss: pip install faiss-cpu (or genrec[large])"
        ) from e
    return faiss


@dataclass
class ItemIndex:
    """An HNSW graph over item vectors 1..n (row 0, padding, is left out). `m`: links per node;
    `ef_search`: how wide a query searches (recall against speed; settable after the build)."""

    index: object
    n_items: int
    build_seconds: float
    candidates: int = 0  # per list, before re-scoring (0: 10 x k)

    @staticmethod
    def build(
        items: torch.Tensor | np.ndarray, m: int = 32, ef_construction: int = 128, candidates: int = 0
    ) -> ItemIndex:
        faiss = _faiss()
        vecs = np.ascontiguousarray(np.asarray(items, dtype=np.float32)[1:])  # (n, D)
        t0 = time.time()
        index = faiss.IndexHNSWFlat(vecs.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.add(vecs)
        return ItemIndex(index, len(vecs), time.time() - t0, candidates)

    def set_ef_search(self, ef: int) -> None:
        self.index.hnsw.efSearch = ef

    def search(self, users: torch.Tensor | np.ndarray, n: int) -> np.ndarray:
        """(B, n) internal item ids of the best inner products found, best first; 0 where none."""
        q = np.ascontiguousarray(np.asarray(users, dtype=np.float32))
        n = min(n, self.n_items)
        if self.index.hnsw.efSearch < n:  # the search keeps at most efSearch results
            self.index.hnsw.efSearch = n
        _, ids = self.index.search(q, n)
        return ids.astype(np.int64) + 1  # faiss -1 (not found) becomes 0 (padding)


def ann_top_k_slates(
    model: DotProductScores,
    histories: Histories,
    k: int,
    index: ItemIndex,
    constraints: Constraints | None = None,
    candidates: int = 0,
    users: torch.Tensor | None = None,
) -> Slates:
    """The k best eligible items among the index's candidates, ranked by the model's exact scores.
    `candidates` per user (default 10 k) plus the most items a row excludes, so excluded items cannot
    use up the candidates. `users`: the histories' (B, D) vectors when the caller has them (a cache)."""
    _check_k(k)
    c = constraints or Constraints()
    if c.category_cap is not None:
        raise ValueError("category_cap needs the full ranking: use top_k_slates (no approximate retrieval)")
    n_all = index.n_items + 1
    # (row, item) keys of everything a row may not get, matched without a (B, n_items) mask
    keys, extra = [], 0
    if c.exclude_seen:
        keys.append(histories.row_ids() * n_all + histories.items)
        extra += int(histories.lengths.max(initial=0))
    if isinstance(c.blocked, RowSets):
        keys.append(c.blocked.row_ids() * n_all + c.blocked.items)
        extra += int(np.diff(c.blocked.indptr).max(initial=0))
    elif c.blocked is not None:
        blocked = np.asarray(c.blocked, dtype=np.int64)
        keys.append((np.arange(len(histories))[:, None] * n_all + blocked[None, :]).ravel())
        extra += len(blocked)
    if users is None:
        users = model.user_embeddings(histories)
    users = users.float().cpu()  # (B, D)
    cand = torch.from_numpy(index.search(users.numpy(), max(candidates or 10 * k, k) + extra))  # (B, C)
    items = model.item_embeddings().float().cpu()
    scores = torch.einsum("bd,bcd->bc", users, items[cand])  # exact dot products of the candidates
    banned = cand == 0
    if keys:
        banned |= torch.isin(
            torch.arange(len(cand))[:, None] * n_all + cand, torch.from_numpy(np.concatenate(keys))
        )
    if c.allowed is not None:  # rare with huge catalogues: a dense mask
        only = Constraints(exclude_seen=False, allowed=c.allowed)
        banned |= only.banned(histories, index.n_items).gather(1, cand)
    picked, vals = top_k(scores.masked_fill(banned, -torch.inf), k)
    out = torch.where(torch.isfinite(vals), cand.gather(1, picked), 0)
    return Slates(out.numpy().astype(np.int64), vals.numpy().astype(np.float32))


def recall_at_k(approx: Slates, exact: Slates) -> float:
    """Share of the exact lists' items (padding aside) that the approximate lists hold too."""
    a, e = torch.from_numpy(approx.items), torch.from_numpy(exact.items)
    hit = (e[:, :, None] == a[:, None, :]).any(-1) & (e > 0)
    return float(hit.sum() / max(int((e > 0).sum()), 1))
