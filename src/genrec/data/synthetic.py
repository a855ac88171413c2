"""Synthetic interaction logs with structure a sequence model can learn and a popularity model cannot.

Each item belongs to a category (whose words appear in its title) and has a Zipf popularity.
Each user has a Dirichlet taste over categories. A user's next item is, with probability
`p_follow`, the fixed *successor* of the current item (a Markov chain inside the category:
think "episode n+1 after episode n"), otherwise a fresh draw from taste x popularity.
Deterministic from `seed`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from genrec.data.types import RawData

CATEGORIES = [
    "jazz",
    "rock",
    "hiking",
    "cooking",
    "chess",
    "gardening",
    "astronomy",
    "poetry",
    "cycling",
    "pottery",
    "sailing",
    "robotics",
    "photography",
    "baking",
    "yoga",
    "history",
]
ADJECTIVES = ["classic", "modern", "essential", "advanced", "illustrated", "complete", "pocket", "deluxe"]


@dataclass
class SyntheticConfig:
    n_users: int = 1000
    n_items: int = 400
    n_categories: int = 8
    min_len: int = 15
    max_len: int = 50
    p_follow: float = 0.6  # chance the next item is the current item's successor
    zipf: float = 1.1  # popularity long tail exponent
    taste_concentration: float = 0.3  # Dirichlet alpha: small = users focus on few categories
    seed: int = 0


def generate(cfg: SyntheticConfig = SyntheticConfig()) -> RawData:
    if cfg.n_categories > len(CATEGORIES):
        raise ValueError(f"n_categories must be <= {len(CATEGORIES)}, got {cfg.n_categories}")
    rng = np.random.default_rng(cfg.seed)
    n_u, n_i, n_c = cfg.n_users, cfg.n_items, cfg.n_categories
    cat = rng.integers(0, n_c, n_i)
    pop = 1.0 / np.arange(1, n_i + 1) ** cfg.zipf
    pop = pop[rng.permutation(n_i)]
    # successor: a random permutation inside each category gives each item one "next" item
    succ = np.empty(n_i, dtype=np.int64)
    for c in range(n_c):
        members = rng.permutation(np.flatnonzero(cat == c))
        succ[members] = np.roll(members, -1)
    taste = rng.dirichlet(np.full(n_c, cfg.taste_concentration), n_u)  # (U, C)
    # per-user item distribution: taste[cat] * popularity, normalised -> cumulative for sampling
    w = taste[:, cat] * pop[None, :]
    cdf = np.cumsum(w / w.sum(1, keepdims=True), axis=1)
    lens = rng.integers(cfg.min_len, cfg.max_len + 1, n_u)
    L = cfg.max_len
    seq = np.zeros((n_u, L), dtype=np.int64)
    cur = (cdf < rng.random((n_u, 1))).sum(1).clip(max=n_i - 1)
    seq[:, 0] = cur
    for t in range(1, L):  # vectorised over users; loop over positions only
        fresh = (cdf < rng.random((n_u, 1))).sum(1).clip(max=n_i - 1)
        follow = rng.random(n_u) < cfg.p_follow
        cur = np.where(follow, succ[cur], fresh)
        seq[:, t] = cur
    mask = np.arange(L)[None, :] < lens[:, None]
    users = np.repeat(np.arange(1, n_u + 1), lens)
    items = seq[mask] + 1
    gaps = rng.exponential(3600.0, mask.sum()).astype(np.int64) + 60
    start = 1_600_000_000 + rng.integers(0, 86400 * 30, n_u)
    ts = np.repeat(start, lens) + _segment_cumsum(gaps, lens)
    inter = pd.DataFrame({"user": users, "item": items, "timestamp": ts, "rating": np.ones(len(items))})
    adj = rng.integers(0, len(ADJECTIVES), n_i)
    titles = [
        f"{ADJECTIVES[a].title()} {CATEGORIES[c]} guide no. {i + 1}" for i, (a, c) in enumerate(zip(adj, cat))
    ]
    meta = pd.DataFrame(
        {"title": titles, "categories": [CATEGORIES[c] for c in cat]}, index=np.arange(1, n_i + 1)
    )
    return RawData(f"synthetic-s{cfg.seed}", inter, meta, [])


def _segment_cumsum(x: np.ndarray, lens: np.ndarray) -> np.ndarray:
    c = np.cumsum(x)
    starts = np.repeat(np.cumsum(lens) - lens, lens)
    return c - np.concatenate([[0], c])[starts]
