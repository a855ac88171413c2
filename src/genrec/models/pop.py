"""Most-Popular: ranks items by their number of training interactions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from genrec.data.dataset import Dataset, Histories
from genrec.models.base import ModelConfig, Recommender


@dataclass
class PopConfig(ModelConfig):
    pass


class MostPopular(Recommender):
    """Most-popular: every user gets the items with the most training interactions."""

    name = "pop"
    config_cls = PopConfig

    def fit(self, data: Dataset) -> MostPopular:
        self.n_items_ = data.n_items
        # counted on the training part only, so no valid/test target leaks into the ranking
        self.counts_ = torch.from_numpy(data.item_popularity.astype(np.float32))
        return self

    def score(self, histories: Histories) -> torch.Tensor:
        return self.counts_.expand(len(histories), -1).clone()

    def _state(self) -> dict[str, Any]:
        return {"counts": self.counts_}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.counts_ = state["counts"]
