"""The data types every reader and preprocessing step shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

PROTOCOLS = ("loo", "temporal", "users")


class DataError(ValueError):
    """Bad input data; the message names the file, line and field where known."""


@dataclass
class RawData:
    """What every reader returns. `interactions` rows are in file order."""

    name: str
    interactions: pd.DataFrame  # user, item, timestamp (Int64 or absent), rating (float or absent)
    items: pd.DataFrame | None = None  # index = raw item id; title, categories, brand, description, price
    sources: list[Path] = field(default_factory=list)  # files read, for the cache hash


@dataclass
class DataConfig:
    """How raw interactions become a processed, split dataset."""

    protocol: str = "loo"  # loo | temporal | users
    rating_threshold: float | None = None  # keep ratings >= threshold (None: every rating is an interaction)
    dedup: str = "first"  # none | first | last: which copy of a repeated (user, item) pair to keep
    min_user_interactions: int = 0  # iterative k-core, 0 = off
    min_item_interactions: int = 0
    valid_fraction: float = 0.1  # temporal: share of events after the valid cut; users: share of users
    test_fraction: float = 0.1
    foldin_fraction: float = 0.8  # users protocol: share of a held-out user's items given as input
    seed: int = 0

    def validate(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
        if self.dedup not in ("none", "first", "last"):
            raise ValueError(f"dedup must be none, first or last, got {self.dedup!r}")
        for f in ("valid_fraction", "test_fraction", "foldin_fraction"):
            v = getattr(self, f)
            if not 0 < v < 1:
                raise ValueError(f"{f} must be in (0, 1), got {v}")
        if self.valid_fraction + self.test_fraction >= 1:
            raise ValueError("valid_fraction + test_fraction must be < 1")
