"""Top-k selection with the business filters every generator shares."""

from __future__ import annotations

import numpy as np
import torch

from genrec.data.dataset import Histories


def mask_scores(
    scores: torch.Tensor,
    histories: Histories | None,
    exclude_seen: bool = True,
    allowed: np.ndarray | None = None,
    blocked: np.ndarray | None = None,
) -> torch.Tensor:
    """Set ineligible items to -inf in place: padding, seen items, blocked, not-allowed."""
    scores[:, 0] = -torch.inf
    if exclude_seen and histories is not None and len(histories.items):
        scores[torch.from_numpy(histories.row_ids()), torch.from_numpy(histories.items)] = -torch.inf
    if blocked is not None and len(blocked):
        scores[:, torch.as_tensor(np.asarray(blocked, dtype=np.int64))] = -torch.inf
    if allowed is not None:
        keep = torch.zeros(scores.shape[1], dtype=torch.bool)
        keep[torch.as_tensor(np.asarray(allowed, dtype=np.int64))] = True
        scores[:, ~keep] = -torch.inf
    return scores


def top_k(
    scores: torch.Tensor,
    histories: Histories | None,
    k: int,
    exclude_seen: bool = True,
    allowed: np.ndarray | None = None,
    blocked: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(B, k) item ids and scores; ineligible slots come back as item 0 with score -inf."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    scores = mask_scores(scores.float().clone(), histories, exclude_seen, allowed, blocked)
    kk = min(k, scores.shape[1])
    vals, idx = torch.topk(scores, kk, dim=1)
    idx[torch.isinf(vals)] = 0
    if kk < k:  # catalogue smaller than k: pad
        pad = k - kk
        idx = torch.cat([idx, torch.zeros(len(idx), pad, dtype=idx.dtype)], 1)
        vals = torch.cat([vals, torch.full((len(vals), pad), -torch.inf)], 1)
    return idx.numpy(), vals.numpy()
