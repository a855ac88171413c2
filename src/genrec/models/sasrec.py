"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

Causal self-attention over the item sequence, learned absolute positions, output scores are dot
products with the (shared) input item embeddings. Differences from the paper, on purpose:
- pre-LN blocks (LayerNorm before attention / MLP, one final LayerNorm): trains stably at every size
  without warmup tricks, and the residual stream is what the KV cache stores (GPT-2 style);
- trained with full softmax cross-entropy at every position (genrec.models.next_item) instead of
  one sampled negative with BCE, which is what makes it accurate (cf. Klenitskiy & Vasilev 2023).

Positions count from the start of the (truncated) sequence, so a prefix is encoded exactly as during
training and the KV cache can append positions. Beyond `max_len` an appended item reuses the last
position embedding (the model never saw longer sequences).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from genrec.models.sequential import (
    SeqNet,
    SequentialConfig,
    SequentialRecommender,
    init_weights,
    pad_positions,
)


@dataclass
class SASRecConfig(SequentialConfig):
    SIZES: ClassVar[dict[str, dict[str, float]]] = {
        "tiny": {"dim": 32, "n_layers": 1, "n_heads": 1, "lr": 2e-3},
        "small": {"dim": 64, "n_layers": 2, "n_heads": 2, "lr": 2e-3},
        "base": {"dim": 128, "n_layers": 2, "n_heads": 2, "lr": 2e-3},
        "large": {"dim": 256, "n_layers": 4, "n_heads": 4, "lr": 2e-3},
    }
    ffn_mult: int = 4  # MLP hidden = ffn_mult * dim

    def validate(self) -> None:
        super().validate()
        if self.ffn_mult < 1:
            raise ValueError(f"SASRecConfig.ffn_mult must be >= 1, got {self.ffn_mult!r}")


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, past: tuple | None):
        B, T, D = x.shape  # T new positions
        q, k, v = (
            t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2) for t in self.qkv(x).split(D, dim=2)
        )  # (B, H, T, Dh)
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)  # (B, H, Tk, Dh)
        # mask None = plain causal (right-padded training batches: pads sit after every real item)
        # no dropout on attention probabilities: it forces the slow materialised attention path on
        # CPU; dropout on embeddings and residual branches regularises enough
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        return self.proj(y.transpose(1, 2).reshape(B, T, D)), (k, v)


class MLP(nn.Module):
    def __init__(self, dim: int, mult: int, dropout: float) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, mult * dim)
        self.out = nn.Linear(mult * dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.out(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        dim = cfg.resolved("dim")
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, cfg.resolved("n_heads"))
        self.mlp = MLP(dim, cfg.ffn_mult, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, past: tuple | None = None):
        a, kv = self.attn(self.ln1(x), mask, past)
        x = x + self.drop(a)
        return x + self.mlp(self.ln2(x)), kv


class SASRecNet(SeqNet):
    def __init__(self, cfg: SASRecConfig, n_items: int) -> None:
        super().__init__()
        self.dim, self.max_len = cfg.resolved("dim"), cfg.max_len
        self.item_emb = nn.Embedding(n_items + 1, self.dim, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_len, self.dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.resolved("n_layers")))
        self.ln_f = nn.LayerNorm(self.dim)
        init_weights(self, self.dim)

    def embed(self, items: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return self.drop(self.item_input(items) * math.sqrt(self.dim) + self.pos_emb(pos))

    def forward(self, items: torch.Tensor, ts: torch.Tensor | None, left_pad: bool, want_cache: bool = False):
        """items (B, T) -> hidden (B, T, D). Right-padded (training) or left-padded (inference)."""
        B, T = items.shape
        ar = torch.arange(T, device=items.device)
        if left_pad:
            n_pad = pad_positions(items)  # (B,)
            pos = (ar[None, :] - n_pad[:, None]).clamp(min=0)  # (B, T): 0 at the first real item
            valid = items != 0
            # causal, real keys only; a pad query attends to itself so no softmax row is empty
            mask = torch.ones(T, T, dtype=torch.bool, device=items.device).tril()[None] & (
                valid[:, None, :] | torch.eye(T, dtype=torch.bool, device=items.device)[None]
            )
            mask = mask[:, None]  # (B, 1, T, T)
        else:
            pos, mask, n_pad, valid = ar[None, :].expand(B, T), None, None, None
        x = self.embed(items, pos)
        kvs = []
        for block in self.blocks:
            x, kv = block(x, mask)
            kvs.append(kv)
        x = self.ln_f(x)
        if not want_cache:
            return x, None
        return x, {"layers": kvs, "valid": valid, "length": T - n_pad}

    def step(self, cache: dict, items: torch.Tensor, ts: torch.Tensor | None):
        """One new item per row (B,) attending to the cache -> hidden (B, D) and the grown cache."""
        pos = cache["length"].clamp(max=self.max_len - 1)
        x = self.embed(items[:, None], pos[:, None])  # (B, 1, D)
        valid = torch.cat([cache["valid"], torch.ones_like(cache["valid"][:, :1])], 1)  # (B, Tk)
        mask = valid[:, None, None, :]  # (B, 1, 1, Tk)
        kvs = []
        for block, past in zip(self.blocks, cache["layers"]):
            x, kv = block(x, mask, past)
            kvs.append(kv)
        return self.ln_f(x)[:, 0], {"layers": kvs, "valid": valid, "length": cache["length"] + 1}


class SASRec(SequentialRecommender):
    """SASRec (Kang & McAuley 2018): causal self-attention, full-softmax next-item training."""

    name = "sasrec"
    config_cls = SASRecConfig

    def build_net(self, n_items: int) -> SASRecNet:
        return SASRecNet(self.config, n_items)
