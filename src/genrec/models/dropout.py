"""Inverted dropout with a cheaper random mask on CPU.

`torch.nn.functional.dropout` on CPU draws one Bernoulli sample per element from a Mersenne twister:
on an HSTU attention map (10 x 4 x 200 x 200) that is ~20x the cost of a multiplication, and it was
the largest single item in an HSTU training step on ML-1M (18% of the time). Here one 64-bit draw
gives four 16-bit numbers, each compared with a threshold: the keep probability is rounded to a
multiple of 1/65536 and the kept values are scaled by exactly its inverse, so the output is still
unbiased (E[dropout(x)] = x). ~3x faster than F.dropout on CPU; on other devices F.dropout (fused and
fast there) runs instead. Seeded by torch's global generator, like F.dropout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_LEVELS = 1 << 16  # a 16-bit draw is uniform over these many values


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Zero each element with probability ~p (to 1/65536), scale the rest by 1 / keep probability."""
    if not training or p == 0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    keep = round((1 - p) * _LEVELS)  # draws below keep - 32768 are kept (16-bit draws are signed)
    if keep == 0:
        return torch.zeros_like(x)
    n = x.numel()
    draws = torch.randint(-(1 << 63), (1 << 63) - 1, ((n + 3) // 4,), dtype=torch.int64)
    bits = draws.view(torch.int16)[:n].view(x.shape)
    return x * (bits < keep - _LEVELS // 2).to(x.dtype).mul_(_LEVELS / keep)


class Dropout(nn.Module):
    """`nn.Dropout` on top of `dropout` above (same `p`, same train/eval behaviour, no weights)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p!r}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
