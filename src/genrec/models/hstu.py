"""HSTU: Hierarchical Sequential Transduction Units (Zhai et al., "Actions Speak Louder than Words",
ICML 2024), as a next-item generator.

One layer (eq. 1-3 of the paper), with X the residual stream (B, T, D):
    U, V, Q, K = split(SiLU(W_1 LayerNorm(X)))                       # no softmax anywhere
    A          = SiLU(Q K^T / sqrt(d) + rab_pos(i - j) + rab_time(bucket(t_i - t_j))) * causal / n_i
    X          = X + W_2 (LayerNorm(A V) * U)                        # U gates; no separate FFN
`n_i` is the number of positions query i may attend to (pointwise aggregated attention normalised by
sequence length, so long and short histories give comparable magnitudes). Relative biases are one
learned scalar per bucket, per layer: positions by distance (clipped at max_len - 1), time gaps by
log2 buckets of seconds. With `query_time=next` (as in the paper's code), query i measures its gaps
from t_{i+1}, the time of the action it predicts: in training the target's time, when scoring the time
of the request (`Histories.request_ts`: a served request's arrival; in evaluation the held-out
interaction's time, which a served request would know too; without one, right after the last action).
The item itself is never read. With `own`, query i measures from its own action's time t_i.
There is no absolute position embedding, so the KV cache can grow past max_len.

Side tokens (`side_tokens=rating`, off by default). The paper interleaves item and action tokens
(x_0, a_0, x_1, a_1, ...): the sequence doubles, attention costs 4x, and item positions predict actions.
Here the action of an interaction is instead a learned embedding *added to its item's embedding at the
same position* (the usual cheaper variant). Why: (1) length, cost and relative-position semantics are
unchanged; (2) the state after a history still reads every known action, the last one included, so
`score` needs nothing from the future; (3) when generating, the action on a generated item is unknown:
it gets the 'unknown' token 0 (a zero embedding), so a KV-cache step adds one position exactly as the
recompute path does (genrec.generation.decoders.extend_histories marks appended ratings NaN). Training
replaces a `side_dropout` share of the tokens by 'unknown', so the model has seen that case; histories
without ratings (ad-hoc users) are read as all-unknown. Ratings become tokens by nearest value among
the training set's distinct ratings (at most 32; quantile centres beyond that), saved with the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genrec.data.dataset import Dataset, Histories
from genrec.models.base import Phase
from genrec.models.sequential import (
    Dropout,
    SeqNet,
    SequentialConfig,
    SequentialRecommender,
    init_weights,
    keep_mask,
    pad_positions,
)


@dataclass
class HSTUConfig(SequentialConfig):
    # base's rate, 4e-3 (validation NDCG@10, ml-1m-u2999, 60 min, seeds 0 / 1 / 2): 0.2354 / 0.2334 /
    # 0.2344 against 0.2347 / 0.2315 / 0.2273 at 3e-3 and 0.2267 / 0.2263 / 0.2268 at 2e-3; the averaged
    # deep stack learns faster at a higher rate and ends no worse. Small keeps 2e-3: at 3e-3
    # amazon-beauty gave 0.0750 / 0.0731 / 0.0735 against 0.0741 / 0.0739 / 0.0740, ml-100k 0.1296 /
    # 0.1388 / 0.1412 against 0.1386 / 0.1413 / 0.1387. Large is untried above 2e-3
    SIZES: ClassVar[dict[str, dict[str, float]]] = {
        "tiny": {"dim": 32, "n_layers": 1, "n_heads": 1, "lr": 2e-3},
        "small": {"dim": 64, "n_layers": 2, "n_heads": 2, "lr": 2e-3},
        "base": {"dim": 128, "n_layers": 8, "n_heads": 4, "lr": 4e-3},
        "large": {"dim": 256, "n_layers": 8, "n_heads": 8, "lr": 2e-3},
    }
    # HSTU validates and keeps a moving average of its weights. ml-1m-u2999, 60 min, validation
    # NDCG@10 over seeds 0 / 1 / 2: base with 8 layers and the average 0.2267 / 0.2263 / 0.2268, with 4
    # layers and no average 0.2254 / 0.2236 / 0.2237 (8 layers alone: 0.2188 / 0.2257 on seeds 1 / 2).
    # Deeper stacks without the average gain little within the budget: the average smooths the
    # high-rate phase, where base needs its rate drops. Small with the average: amazon-beauty 0.0740
    # against 0.0717, ml-100k 0.1395 against 0.1383, ml-latest-small 0.0812 against 0.0826 (3-seed
    # means). SASRec gains nothing from it (ml-1m-u2999, seed 0: 0.2149 against 0.2148)
    average_decay: float = 0.999
    # dropout on the attention weights (B, H, T, Tk); `dropout` acts on the embeddings and layer outputs.
    # The weights are H * T / D times the size of a layer output (6x for base at T = 200), so their mask
    # is drawn the fast way (see `keep_mask`): a base step on one CPU thread takes 0.45 s with it, 0.52 s
    # with nn.Dropout's, 0.37 s without (benchmarks/dropout_masks.py). Without it, on ml-1m-u2999, base
    # overfits after 21 epochs (validation NDCG@10 0.2318, then 0.2245 at epoch 29); with 0.4 (and
    # dropout 0.4) it learns slower and peaks lower (0.2325 at epoch 33 against 0.2356 at 25)
    attn_dropout: float = 0.3
    # stochastic depth (Huang et al. 2016): while training, each layer's residual branch is skipped for a
    # whole sequence with probability drop_path * (l + 1) / n_layers (the deepest layer at drop_path),
    # the kept branches scaled by 1 / keep. 0 = off
    drop_path: float = 0.0
    time_buckets: int = 64  # log2-spaced buckets of the time gap (seconds); 0 = no time bias
    # the time a query position measures its gaps from. own: its own action's; next: the time of the
    # action it predicts (training: the target's; scoring: the request's, see Histories.request_ts),
    # as in the paper's code: at a request its time is known, the item is not. Validation NDCG@10, next
    # against own, 3-seed means: ml-1m-u2999 (base, 60 min) 0.2629 against 0.2371 (seeds 0 / 1);
    # amazon-beauty 0.0819 against 0.0740; ml-latest-small 0.0833 against 0.0812; ml-100k 0.1357
    # against 0.1395 (lower). Whether the user is back within the minute or the day tells what comes next
    query_time: Literal["own", "next"] = "next"
    side_tokens: Literal["none", "rating"] = "none"  # rating: add an embedding of each rating (see top)
    side_dropout: float = 0.1  # training: share of side tokens replaced by 'unknown'

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.attn_dropout < 1:
            raise ValueError(f"HSTUConfig.attn_dropout must be in [0, 1), got {self.attn_dropout!r}")
        if not 0 <= self.drop_path < 1:
            raise ValueError(f"HSTUConfig.drop_path must be in [0, 1), got {self.drop_path!r}")
        if self.time_buckets < 0:
            raise ValueError(f"HSTUConfig.time_buckets must be >= 0, got {self.time_buckets!r}")
        if self.query_time not in ("own", "next"):
            raise ValueError(f"HSTUConfig.query_time must be one of own, next, got {self.query_time!r}")
        if self.side_tokens not in SIDE_TOKENS:
            raise ValueError(
                f"HSTUConfig.side_tokens must be one of {', '.join(SIDE_TOKENS)}, got {self.side_tokens!r}"
            )
        if not 0 <= self.side_dropout < 1:
            raise ValueError(f"HSTUConfig.side_dropout must be in [0, 1), got {self.side_dropout!r}")


SIDE_TOKENS = ("none", "rating")
MAX_SIDE_VALUES = 32


def rating_values(data: Dataset) -> np.ndarray:
    """The rating values that become side tokens 1..n: the distinct training ratings (quantile centres
    when there are more than MAX_SIDE_VALUES)."""
    r = data.train.ratings
    if r is None or not np.isfinite(r).any():
        raise ValueError(
            f"hstu side_tokens='rating': dataset {data.name!r} has no ratings; use data with "
            "a rating column (MovieLens, Amazon reviews, a table with --columns rating=...) "
            "or side_tokens=none"
        )
    r = r[np.isfinite(r)]
    values = np.unique(r)
    if len(values) > MAX_SIDE_VALUES:
        values = np.unique(np.quantile(r, (np.arange(MAX_SIDE_VALUES) + 0.5) / MAX_SIDE_VALUES))
    return values.astype(np.float32)


def rating_tokens(ratings: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Token 1..len(values) of the nearest value; NaN (unknown) -> 0."""
    tokens = 1 + np.searchsorted((values[1:] + values[:-1]) / 2, ratings)
    tokens[~np.isfinite(ratings)] = 0
    return tokens.astype(np.int64)


def time_bucket(dt: torch.Tensor, n_buckets: int) -> torch.Tensor:
    """Seconds -> bucket 0..n_buckets-1, two buckets per doubling: log-spaced, saturating."""
    return (torch.log2(dt.clamp(min=0).float() + 1.0) * 2).long().clamp(max=n_buckets - 1)


class HSTULayer(nn.Module):
    def __init__(self, cfg: HSTUConfig, depth: int = 0) -> None:
        super().__init__()
        dim, self.n_heads = cfg.resolved("dim"), cfg.resolved("n_heads")
        self.drop_path = cfg.drop_path * (depth + 1) / cfg.resolved("n_layers")  # layer `depth`, from 0
        self.ln_in, self.ln_attn = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.uvqk = nn.Linear(dim, 4 * dim)
        self.out = nn.Linear(dim, dim)
        self.drop, self.attn_dropout = Dropout(cfg.dropout), cfg.attn_dropout
        self.pos_bias = nn.Parameter(torch.zeros(cfg.max_len))  # rab_pos by distance i - j
        self.time_bias = nn.Parameter(torch.zeros(max(cfg.time_buckets, 1)))  # rab_time by log gap

    def forward(self, x: torch.Tensor, rel: dict, past: tuple | None = None):
        """x (B, T, D) new positions; rel: dist (B|1, T, Tk), tbucket (B, T, Tk) | None,
        weight (B|1, 1, T, Tk): 1 / n_i on the keys query i may see, 0 elsewhere."""
        B, T, D = x.shape
        H = self.n_heads
        u, v, q, k = (
            t.view(B, T, H, D // H).transpose(1, 2) for t in F.silu(self.uvqk(self.ln_in(x))).split(D, dim=2)
        )  # (B, H, T, Dh)
        q = q / math.sqrt(D // H)  # scaled here, on (T, Dh), not on the (T, Tk) scores
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)  # (B, H, Tk, Dh)
        bias = self.pos_bias[rel["dist"]]  # (B|1, T, Tk)
        if rel["tbucket"] is not None:
            bias = bias + self.time_bias[rel["tbucket"]]
        weight = rel["weight"]  # (B|1, 1, T, Tk)
        if self.training and self.attn_dropout:
            # dropout on the attention weights, folded into the weight multiply: one (B, H, T, Tk) op less
            weight = keep_mask((B, H, T, weight.shape[-1]), self.attn_dropout, x.device, scale=weight)
        att = F.silu(q @ k.transpose(-1, -2) + bias[:, None]) * weight  # (B, H, T, Tk)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        u = u.transpose(1, 2).reshape(B, T, D)
        branch = self.drop(self.out(self.ln_attn(y) * u))  # (B, T, D)
        if self.training and self.drop_path:
            branch = branch * keep_mask((B, 1, 1), self.drop_path, x.device)  # whole rows skip the layer
        return x + branch, (k, v)


class HSTUNet(SeqNet):
    def __init__(self, cfg: HSTUConfig, n_items: int, n_side: int = 0) -> None:
        super().__init__()
        self.dim, self.max_len, self.time_buckets = cfg.resolved("dim"), cfg.max_len, cfg.time_buckets
        self.query_next = cfg.query_time == "next"
        self.item_emb = nn.Embedding(n_items + 1, self.dim, padding_idx=0)
        self.drop = Dropout(cfg.dropout)
        self.layers = nn.ModuleList(HSTULayer(cfg, i) for i in range(cfg.resolved("n_layers")))
        self.ln_f = nn.LayerNorm(self.dim)
        # side tokens 1..n_side, 0 = unknown (zero vector); created last, so that without side tokens
        # the initialisation draws (and the model) are exactly those of plain HSTU
        self.side_emb = nn.Embedding(n_side + 1, self.dim, padding_idx=0) if n_side else None
        self.side_dropout = cfg.side_dropout
        init_weights(self, self.dim)

    def embed(self, items: torch.Tensor, side: torch.Tensor | None) -> torch.Tensor:
        """Item (+ side token) embeddings of (B, T) ids -> (B, T, D)."""
        e = self.item_input(items)
        if side is not None and self.side_emb is not None:
            if self.training and self.side_dropout:
                side = side.masked_fill(torch.rand(side.shape, device=side.device) < self.side_dropout, 0)
            e = e + self.side_emb(side)
        return self.drop(e * math.sqrt(self.dim))

    def _rel(self, qpos, kpos, qts, kts, keep) -> dict:
        """Relative-bias indices and attention weights, computed once for all layers. pos: (B|1, T) query,
        (B|1, Tk) keys; ts: (B, T), (B, Tk); keep: bool (B|1, T, Tk). A batch dimension of 1 (training:
        every row has the same positions and mask) keeps the position gather and the mask B times
        smaller."""
        dist = (qpos[:, :, None] - kpos[:, None, :]).clamp(0, self.max_len - 1)
        tb = None
        if self.time_buckets:
            tb = time_bucket(qts[:, :, None] - kts[:, None, :], self.time_buckets)
        n = keep.sum(-1, keepdim=True).clamp(min=1)  # (B|1, T, 1) visible keys per query
        return {"dist": dist, "tbucket": tb, "weight": (keep / n)[:, None]}

    def forward(
        self,
        items: torch.Tensor,
        ts: torch.Tensor | None,
        left_pad: bool,
        want_cache: bool = False,
        side: torch.Tensor | None = None,
        next_ts: torch.Tensor | None = None,
    ):
        """items, ts, side, next_ts (B, T) -> hidden (B, T, D). Right-padded (training) or left-padded
        (inference). side: side tokens (0 = unknown) or None (all unknown). next_ts: the time of the
        action each position predicts (the last one's: the request's), or None (each action's own);
        query_time=next measures the queries' gaps from it, and generated items take its last column."""
        B, T = items.shape
        dev = items.device
        ts = torch.zeros_like(items) if ts is None else ts
        qts = next_ts if self.query_next and next_ts is not None else ts
        ar = torch.arange(T, device=dev)
        causal = torch.ones(T, T, dtype=torch.bool, device=dev).tril()[None]  # (1, T, T)
        if left_pad:
            n_pad = pad_positions(items)
            valid = items != 0
            pos = ar[None, :] - n_pad[:, None]  # (B, T), pads negative
            # real keys only; a pad query keeps itself so nothing divides by zero
            keep = causal & (valid[:, None, :] | torch.eye(T, dtype=torch.bool, device=dev)[None])
        else:  # right-padded: pads come after every real item, so causal alone suffices
            n_pad, valid, pos, keep = None, None, ar[None, :], causal  # (1, T), (1, T, T)
        rel = self._rel(pos, pos, qts, ts, keep)
        x = self.embed(items, side)
        kvs = []
        for layer in self.layers:
            x, kv = layer(x, rel)
            kvs.append(kv)
        x = self.ln_f(x)
        if not want_cache:
            return x, None
        length = T - n_pad
        last_ts = ts[:, -1] if next_ts is None else next_ts[:, -1]  # generated items: at the request
        return x, {"layers": kvs, "valid": valid, "pos": pos, "ts": ts, "length": length, "last_ts": last_ts}

    def step(self, cache: dict, items: torch.Tensor, ts: torch.Tensor | None):
        """One new item per row (B,); generated items take the request's time (else the last action's)."""
        B = items.shape[0]
        qts = cache["last_ts"] if ts is None else ts
        qpos = cache["length"]
        valid = torch.cat([cache["valid"], torch.ones(B, 1, dtype=torch.bool, device=items.device)], 1)
        kpos = torch.cat([cache["pos"], qpos[:, None]], 1)
        kts = torch.cat([cache["ts"], qts[:, None]], 1)
        rel = self._rel(qpos[:, None], kpos, qts[:, None], kts, valid[:, None, :])
        x = self.embed(items[:, None], None)  # (B, 1, D); a generated item's side token is unknown
        kvs = []
        for layer, past in zip(self.layers, cache["layers"]):
            x, kv = layer(x, rel, past)
            kvs.append(kv)
        new = {"layers": kvs, "valid": valid, "pos": kpos, "ts": kts, "length": qpos + 1, "last_ts": qts}
        return self.ln_f(x)[:, 0], new


class HSTU(SequentialRecommender):
    """HSTU (Zhai et al. 2024): pointwise SiLU attention with relative position/time bias, U gating."""

    name = "hstu"
    config_cls = HSTUConfig
    reads_next_times = True

    def __init__(self, config: HSTUConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.side_values_: np.ndarray | None = None  # rating of side token k at index k - 1

    def prepare_training(self, data: Dataset) -> list[Phase]:
        self.side_values_ = rating_values(data) if self.config.side_tokens == "rating" else None
        if self.side_values_ is not None:
            self.fit_info_["side_values"] = self.side_values_.tolist()
        return super().prepare_training(data)

    def build_net(self, n_items: int) -> HSTUNet:
        n_side = 0 if self.side_values_ is None else len(self.side_values_)
        return HSTUNet(self.config, n_items, n_side)

    @property
    def reads_request_time(self) -> bool:
        return self.config.query_time == "next"

    def side_tokens(self, histories: Histories) -> np.ndarray | None:
        if self.side_values_ is None or histories.ratings is None:
            return None
        return rating_tokens(histories.ratings, self.side_values_)

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "side_values": self.side_values_}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.side_values_ = state.get("side_values")
        super()._load_state(state)
