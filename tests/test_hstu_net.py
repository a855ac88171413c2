"""HSTU's network: the training layout (right-padded, one mask for the batch) reads sequences exactly as
the inference layout (left-padded, a mask per row) does."""

from __future__ import annotations

import torch

from genrec.models.hstu import HSTUConfig, HSTUNet

N_ITEMS = 50


def net(**kw) -> HSTUNet:
    torch.manual_seed(0)
    cfg = HSTUConfig(size="tiny", n_layers=2, n_heads=2, dim=16, max_len=12, **kw)
    cfg.validate()
    return HSTUNet(cfg, N_ITEMS)


def batch(lens=(12, 5, 1, 9)) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded items and timestamps (B, T) for rows of the given lengths."""
    g = torch.Generator().manual_seed(1)
    T = max(lens)
    items = torch.zeros(len(lens), T, dtype=torch.long)
    ts = torch.zeros(len(lens), T, dtype=torch.long)
    for b, n in enumerate(lens):
        items[b, :n] = torch.randint(1, N_ITEMS + 1, (n,), generator=g)
        ts[b, :n] = torch.cumsum(torch.randint(0, 100_000, (n,), generator=g), 0)
    return items, ts


def right_to_left(x: torch.Tensor, lens) -> torch.Tensor:
    """Move each row's first n entries to the end (right-padded -> left-padded)."""
    out = torch.zeros_like(x)
    for b, n in enumerate(lens):
        out[b, x.shape[1] - n :] = x[b, :n]
    return out


def test_training_and_inference_layouts_give_the_same_hidden_states():
    lens = (12, 5, 1, 9)
    items, ts = batch(lens)
    model = net().eval()
    with torch.no_grad():
        right, _ = model(items, ts, left_pad=False)
        left, _ = model(right_to_left(items, lens), right_to_left(ts, lens), left_pad=True)
    for b, n in enumerate(lens):  # every real position, not only the last
        torch.testing.assert_close(right[b, :n], left[b, -n:], atol=1e-5, rtol=1e-5)
