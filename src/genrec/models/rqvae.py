"""RQ-VAE: content vectors -> semantic IDs (Zeghidour et al. 2021, as used by TIGER, Rajput et al. 2023).

    x (n, d_in) --encoder MLP--> z (n, latent) --L residual codebooks--> codes (n, L)
    r_0 = z;  c_l = argmin_k ||r_l - C_l[k]||;  r_{l+1} = r_l - C_l[c_l];  z_q = sum_l C_l[c_l]
    x_hat = decoder(z + sg(z_q - z))             (straight-through estimator)
    loss = ||x - x_hat||^2 + sum_l ||sg(r_l) - C_l[c_l]||^2 + beta ||r_l - sg(C_l[c_l])||^2

Codebooks are initialised by k-means on the first encoder outputs (level by level, on the
residuals), and codes no item used during an epoch are reset to random residuals (dead-code
reset). `add_collision_level` appends a final code that makes every item's tuple unique. Training
runs as tiger's first phase in genrec.training's loop.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger("genrec")
CACHE_FORMAT = 2  # part of the cache key: raised when the training or the saved report changes


@dataclass
class RQVAEConfig:
    levels: int = 3
    codebook_size: int = 256
    latent_dim: int = 32
    hidden: list[int] = field(default_factory=lambda: [256, 128])
    epochs: int = 200
    batch_size: int = 1024
    lr: float = 1e-3
    beta: float = 0.25  # commitment weight
    kmeans_iters: int = 20


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class ResidualQuantizer(nn.Module):
    def __init__(self, levels: int, size: int, dim: int) -> None:
        super().__init__()
        self.codebooks = nn.Parameter(torch.randn(levels, size, dim) * 0.1)  # (L, K, latent)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (n, latent) -> codes (n, L), z_q (n, latent), residuals (L, n, latent), chosen (L, n, latent)."""
        r = z
        codes, residuals, chosen = [], [], []
        for C in self.codebooks:  # (K, latent)
            c = torch.cdist(r.detach(), C.detach()).argmin(1)  # (n,)
            e = C[c]
            codes.append(c)
            residuals.append(r)
            chosen.append(e)
            r = r - e
        chosen_t = torch.stack(chosen)
        return torch.stack(codes, 1), chosen_t.sum(0), torch.stack(residuals), chosen_t


class RQVAE(nn.Module):
    def __init__(self, d_in: int, cfg: RQVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = mlp([d_in, *cfg.hidden, cfg.latent_dim])
        self.decoder = mlp([cfg.latent_dim, *reversed(cfg.hidden), d_in])
        self.quantizer = ResidualQuantizer(cfg.levels, cfg.codebook_size, cfg.latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction loss, quantisation loss (scalars), codes (n, L), residuals (L, n, latent)."""
        z = self.encoder(x)
        codes, z_q, residuals, chosen = self.quantizer(z)
        x_hat = self.decoder(z + (z_q - z).detach())
        recon = (x_hat - x).pow(2).sum(1).mean()
        codebook = (residuals.detach() - chosen).pow(2).sum(-1).mean()
        commit = (residuals - chosen.detach()).pow(2).sum(-1).mean()
        return recon, codebook + self.cfg.beta * commit, codes, residuals

    @torch.no_grad()
    def latent(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantizer(self.encoder(x))[0]

    @torch.no_grad()
    def kmeans_init(self, x: torch.Tensor, gen: torch.Generator) -> None:
        r = self.encoder(x)
        for C in self.quantizer.codebooks:
            C.copy_(kmeans(r, C.shape[0], self.cfg.kmeans_iters, gen))
            r = r - C[torch.cdist(r, C).argmin(1)]


def kmeans(x: torch.Tensor, k: int, iters: int, gen: torch.Generator) -> torch.Tensor:
    """Lloyd's k-means with random distinct data points as seeds; empty clusters keep their centre."""
    n = x.shape[0]
    idx = torch.randperm(n, generator=gen)[:k]
    if n < k:  # fewer points than codes: repeat points (with jitter) so every code starts near data
        idx = torch.randint(0, n, (k,), generator=gen)
    c = x[idx].clone() + 1e-4 * torch.randn(k, x.shape[1], generator=gen)
    for _ in range(iters):
        a = torch.cdist(x, c).argmin(1)
        sums = torch.zeros_like(c).index_add_(0, a, x)
        cnt = torch.bincount(a, minlength=k).float()
        nonempty = cnt > 0
        c[nonempty] = sums[nonempty] / cnt[nonempty, None]
    return c


def cache_path(x: np.ndarray, cfg: RQVAEConfig, seed: int, cache_dir: Path) -> Path:
    """Where the RQ-VAE trained on item vectors `x` with `cfg` and `seed` is kept: it sees only item text,
    so runs that differ in interactions alone (other models' settings, a cold-start variant) share it."""
    h = hashlib.sha256(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    h.update(json.dumps([dataclasses.asdict(cfg), x.shape, seed, CACHE_FORMAT], sort_keys=True).encode())
    return Path(cache_dir) / f"rqvae-{h.hexdigest()[:16]}.pt"


def load_cached(path: Path, d_in: int, cfg: RQVAEConfig) -> tuple[RQVAE, dict] | None:
    """The cached RQ-VAE and its training report, or None when there is none."""
    if not path.exists():
        return None
    saved = torch.load(path, weights_only=True)
    model = RQVAE(d_in, cfg)
    model.load_state_dict(saved["state"])
    log.info("rq-vae from cache %s", path)
    return model, dict(saved["report"], cached=True)


def save_cached(path: Path, model: RQVAE, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save({"state": model.state_dict(), "report": report}, tmp)
    os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file


@torch.no_grad()
def reset_dead_codes(model: RQVAE, used: torch.Tensor, residuals: torch.Tensor) -> int:
    """Codes no item picked this epoch move onto random residuals of the last batch (slightly jittered);
    returns how many moved."""
    n = 0
    for level, C in enumerate(model.quantizer.codebooks):
        dead = (~used[level]).nonzero().ravel()
        if len(dead):
            r = residuals[level]
            pick = torch.randint(0, r.shape[0], (len(dead),))
            C[dead] = r[pick] + 1e-3 * r.std() * torch.randn(len(dead), r.shape[1])
            n += len(dead)
    return n


@torch.no_grad()
def rqvae_report(model: RQVAE, X: torch.Tensor) -> dict:
    """Reconstruction loss, codebook usage per level and the collision rate of the L-level codes."""
    recon, quant, codes, _ = model(X)
    K = model.cfg.codebook_size
    usage = [int(torch.unique(codes[:, lvl]).numel()) / K for lvl in range(codes.shape[1])]
    _, counts = np.unique(codes.numpy(), axis=0, return_counts=True)
    n = X.shape[0]
    return {
        "recon_loss": float(recon),
        "quant_loss": float(quant),
        "codebook_usage": usage,
        # share of items whose L-level tuple is also another item's (they need the collision level)
        "collision_rate": float(counts[counts > 1].sum() / n),
        "unique_tuples": int(len(counts)),
        "max_items_per_tuple": int(counts.max()),
        "n_items": n,
    }


def add_collision_level(codes: np.ndarray) -> np.ndarray:
    """(n, L) -> (n, L + 1): the last code numbers items that share a tuple 0, 1, 2, ... (in row order)."""
    n = len(codes)
    if n == 0:
        return np.zeros((0, codes.shape[1] + 1), dtype=np.int64)
    _, group = np.unique(codes, axis=0, return_inverse=True)
    group = group.ravel()
    order = np.argsort(group, kind="stable")
    g_sorted = group[order]
    starts = np.r_[0, np.flatnonzero(np.diff(g_sorted)) + 1]
    rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    extra = np.empty(n, dtype=np.int64)
    extra[order] = rank
    return np.concatenate([codes.astype(np.int64), extra[:, None]], 1)


def extend_collision_level(existing: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Codes (m, L) of new items -> (m, L + 1), continuing the numbering of `existing` (n, L + 1)."""
    L = new.shape[1]
    used: dict[tuple, int] = {}
    for row in existing:  # next free collision index per tuple
        key = tuple(row[:L])
        used[key] = max(used.get(key, 0), int(row[L]) + 1)
    out = np.empty((len(new), L + 1), dtype=np.int64)
    for i, row in enumerate(new):
        key = tuple(int(v) for v in row)
        out[i, :L] = row
        out[i, L] = used.get(key, 0)
        used[key] = out[i, L] + 1
    return out


def uniqueness(codes: np.ndarray) -> float:
    """Share of distinct rows (1.0 = every item has its own semantic ID)."""
    return len(np.unique(codes, axis=0)) / max(len(codes), 1)


__all__ = [
    "RQVAE",
    "RQVAEConfig",
    "add_collision_level",
    "cache_path",
    "extend_collision_level",
    "load_cached",
    "reset_dead_codes",
    "save_cached",
]
