"""CPU cost of dropout masks in HSTU training: torch's `bernoulli_` masks against genrec's `rand >= p`.

Two measurements, each the median of `--repeats` timed calls after warm-up, on `--threads` torch threads:
- the attention-weight dropout alone, forward and backward on one (B, H, T, T) tensor: torch's
  `F.dropout(att * weight)` against genrec's `att * keep_mask(..., scale=weight)` (the mask folded into
  the weight multiply, as HSTULayer does);
- a whole HSTU training step (forward, full-softmax loss, backward, AdamW) with genrec's masks, with
  every dropout swapped for torch's, and without attention dropout, so the share of the step each
  costs is read from one run.

Prints a table and writes benchmarks/results/dropout_masks.json.

    python benchmarks/dropout_masks.py --size base --batch 10 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genrec.models.hstu import HSTUConfig, HSTULayer, HSTUNet
from genrec.models.sequential import keep_mask

RESULTS = Path(__file__).resolve().parent / "results" / "dropout_masks.json"
N_ITEMS = 3700


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def attention_masks(B: int, H: int, T: int, p: float, repeats: int) -> dict[str, float]:
    att = torch.rand(B, H, T, T, requires_grad=True)
    weight = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]  # (T, T) causal 1 / n
    grad = torch.rand(B, H, T, T)

    def torch_masks() -> None:
        F.dropout(att * weight, p, training=True).backward(grad)

    def genrec_masks() -> None:
        (att * keep_mask((B, H, T, T), p, att.device, scale=weight)).backward(grad)

    return {"torch": median_seconds(torch_masks, repeats), "genrec": median_seconds(genrec_masks, repeats)}


class TorchLayer(HSTULayer):
    """HSTULayer as it was with nn.Dropout on the attention weights and layer outputs."""

    def __init__(self, cfg: HSTUConfig) -> None:
        super().__init__(cfg)
        self.drop, self.torch_attn_drop = nn.Dropout(cfg.dropout), nn.Dropout(cfg.attn_dropout)
        self.attn_dropout = 0.0  # genrec's mask off; torch's is applied on the weights below

    def forward(self, x: torch.Tensor, rel: dict, past: tuple | None = None):
        if not self.training:
            return super().forward(x, rel, past)
        T = x.shape[1]
        # Dropout on `weight` (B|1, 1, T, Tk) broadcast to (B, H, T, Tk) drops the same entries a dropout
        # on `att` would, and costs the same (B, H, T, Tk) bernoulli_ draw.
        weight = self.torch_attn_drop(rel["weight"].expand(x.shape[0], self.n_heads, T, -1))
        return super().forward(x, {**rel, "weight": weight}, past)


def training_step(cfg: HSTUConfig, B: int, T: int, torch_dropout: bool, repeats: int) -> float:
    torch.manual_seed(0)
    net = HSTUNet(cfg, N_ITEMS)
    if torch_dropout:
        net.layers = nn.ModuleList(TorchLayer(cfg) for _ in net.layers)
        net.drop = nn.Dropout(cfg.dropout)
    net.train()
    items = torch.randint(1, N_ITEMS + 1, (B, T))
    ts = torch.cumsum(torch.randint(0, 10_000, (B, T)), 1)
    targets = torch.randint(1, N_ITEMS + 1, (B, T))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

    def step() -> None:
        h, _ = net(items, ts, left_pad=False)  # (B, T, D)
        loss = F.cross_entropy((h @ net.item_emb.weight.T).view(-1, N_ITEMS + 1), targets.view(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()

    return median_seconds(step, repeats)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="base", choices=sorted(HSTUConfig.SIZES))
    p.add_argument("--batch", type=int, default=10, help="sequences per step")
    p.add_argument("--max-len", type=int, default=200, help="tokens per sequence")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=10)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cfg = HSTUConfig(size=a.size, max_len=a.max_len)
    cfg.validate()
    heads, drop = cfg.resolved("n_heads"), cfg.attn_dropout
    masks = attention_masks(a.batch, heads, a.max_len, drop, a.repeats)
    no_attn = HSTUConfig(size=a.size, max_len=a.max_len, attn_dropout=0.0)
    steps = {
        "torch masks": training_step(cfg, a.batch, a.max_len, True, a.repeats),
        "genrec masks": training_step(cfg, a.batch, a.max_len, False, a.repeats),
        "no attention dropout": training_step(no_attn, a.batch, a.max_len, False, a.repeats),
    }
    out = {
        "size": a.size,
        "batch": a.batch,
        "max_len": a.max_len,
        "threads": a.threads,
        "dropout": cfg.dropout,
        "attn_dropout": drop,
        "attention_mask_seconds": masks,
        "step_seconds": steps,
        "step_ratio_torch_over_genrec": steps["torch masks"] / steps["genrec masks"],
        "load_average_at_end": os.getloadavg()[0],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    shape = f"({a.batch}, {heads}, {a.max_len}, {a.max_len})"
    print(f"attention-weight dropout {shape}, p = {drop}, forward + backward, {a.threads} thread(s)")
    print(f"  torch F.dropout        {masks['torch'] * 1e3:8.1f} ms")
    speedup = masks["torch"] / masks["genrec"]
    print(f"  genrec keep_mask       {masks['genrec'] * 1e3:8.1f} ms   (x{speedup:.2f})")
    print(f"HSTU {a.size} training step, {a.batch} x {a.max_len} tokens")
    for name, sec in steps.items():
        print(f"  {name:<22} {sec:8.3f} s    x{steps['torch masks'] / sec:.2f} of torch masks' speed")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
