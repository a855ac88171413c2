"""Sparse user-vector inputs for the autoencoder-style models (Mult-VAE/DAE, CFGAN).

A batch of histories is a binary (B, n_items + 1) matrix that is never materialised: the first
layer is an `EmbeddingBag(mode="sum")` over the CSR rows, i.e. `x @ W` computed from the non-zeros
only, so memory and time scale with the batch's interactions, not with users x items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from genrec.data.dataset import Dataset, Histories


@dataclass
class SparseRows:
    """A binary batch in CSR form: each (row, item) pair once, ready for `SparseLinear`."""

    items: torch.Tensor  # (nnz,) int64 item ids
    offsets: torch.Tensor  # (B,) int64 start of each row in `items`
    rows: torch.Tensor  # (nnz,) int64 row of each entry
    lengths: torch.Tensor  # (B,) number of distinct items per row
    n_rows: int

    @staticmethod
    def from_histories(h: Histories, n_items: int) -> SparseRows:
        """Distinct items per row (a repeated item counts once); ids > n_items are an error."""
        items = h.items
        if len(items) and (items.max() > n_items or items.min() < 1):
            raise ValueError(f"history item ids must be in 1..{n_items}; got {items.min()}..{items.max()}")
        key = np.unique(h.row_ids() * (n_items + 1) + items)  # sorted by row, then item
        rows, items = key // (n_items + 1), key % (n_items + 1)
        lengths = np.bincount(rows, minlength=len(h))
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        return SparseRows(
            torch.from_numpy(items),
            torch.from_numpy(offsets),
            torch.from_numpy(rows),
            torch.from_numpy(lengths),
            len(h),
        )

    def to(self, device: torch.device) -> SparseRows:
        return SparseRows(
            self.items.to(device),
            self.offsets.to(device),
            self.rows.to(device),
            self.lengths.to(device),
            self.n_rows,
        )

    def dense(self, n_items: int) -> torch.Tensor:
        """(B, n_items + 1) binary matrix; for tests and small batches only."""
        x = torch.zeros(self.n_rows, n_items + 1, device=self.items.device)
        x[self.rows, self.items] = 1.0
        return x


class SparseLinear(nn.Module):
    """y = x @ W + b for a sparse non-negative x given as (items, offsets, per-entry weights)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(n_in, n_out, mode="sum")  # weight (n_in, n_out) = W
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, items: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.bag(items, offsets, per_sample_weights=weights) + self.bias  # (B, n_out)

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        """The same layer on a dense (B, n_in) input: the reference the sparse path must match."""
        return x @ self.bag.weight + self.bias


def training_users(data: Dataset, model: str) -> np.ndarray:
    """Internal ids of the users with training interactions: the rows an autoencoder-style model fits."""
    users = np.flatnonzero(data.train.lengths > 0)
    if len(users) == 0:
        raise ValueError(f"{data.name}: no training interactions to fit {model} on")
    return users
