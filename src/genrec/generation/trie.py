"""Beam search over a code trie (`CodeTrieModel`, e.g. tiger): the next item is decoded as its code
tuple, one trie level at a time, keeping the `max(beam_size, k)` most likely prefixes per level.

A prefix survives only while some eligible item (under the row's `Constraints`: history, allowed,
blocked) lies below it, so every output is a real, eligible, distinct item; the list holds the k most
likely complete tuples of the last level, each scored log p(item | history) = the sum of its codes'
log-probabilities.
"""

from __future__ import annotations

import numpy as np
import torch

from genrec.data.dataset import Histories
from genrec.generation.constraints import Constraints
from genrec.models.base import CodeTrieModel


@torch.no_grad()
def trie_beam_chunk(
    model: CodeTrieModel, hist: Histories, k: int, beam_size: int, c: Constraints
) -> tuple[np.ndarray, np.ndarray]:
    """(B, k) items and log-probabilities for one chunk of histories; item 0 / -inf where fewer than k
    eligible items exist."""
    if c.category_cap is not None:
        raise ValueError(
            "category_cap is not supported by beam search over a code trie (tiger): its beam "
            "ranks alternatives for the next item, not a list built item by item; use "
            "strategy topk or sample for a category cap"
        )
    trie = model.code_trie()
    B, depth = len(hist), len(trie.node_parent)
    eligible = ~c.banned(hist, len(trie.leaf_item))  # leaves are the items 1..n
    # which nodes have an eligible item below them, from the leaves up
    ok = [torch.empty(0)] * depth
    ok[-1] = eligible[:, trie.leaf_item]
    for lvl in range(depth - 1, 0, -1):
        n_par = len(trie.node_parent[lvl - 1])
        below = torch.zeros(B, n_par).scatter_reduce(
            1, trie.node_parent[lvl].expand(B, -1), ok[lvl].float(), "amax"
        )
        ok[lvl - 1] = below > 0
    logps = model.node_log_probs(hist)
    width = max(beam_size, k)
    cum = torch.zeros(B, 1)  # log-prob of each beam entry; level 0 expands the root
    beam_nodes = torch.zeros(B, 1, dtype=torch.long)
    for lvl in range(depth):
        parent = trie.node_parent[lvl]
        n_par = 1 if lvl == 0 else len(trie.node_parent[lvl - 1])
        # cumulative log-prob of each parent if it is in the beam, else -inf
        par_score = torch.full((B, n_par), -torch.inf).scatter_(1, beam_nodes, cum)
        cand = (par_score[:, parent] + logps[lvl]).masked_fill(~ok[lvl], -torch.inf)
        cum, beam_nodes = torch.topk(cand, min(k if lvl == depth - 1 else width, cand.shape[1]), dim=1)
    items = trie.leaf_item[beam_nodes]
    items[~torch.isfinite(cum)] = 0
    if cum.shape[1] < k:
        pad = k - cum.shape[1]
        items = torch.cat([items, torch.zeros(B, pad, dtype=items.dtype)], 1)
        cum = torch.cat([cum, torch.full((B, pad), -torch.inf)], 1)
    return items.numpy().astype(np.int64), cum.numpy().astype(np.float32)
