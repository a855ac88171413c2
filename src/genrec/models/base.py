"""The one contract every genrec model implements (scikit-learn / implicit style).

    model = MODELS["ease"](EASEConfig(l2=500.0))
    model.fit(dataset)                       # learns from dataset.train, may early-stop on dataset.valid
    scores = model.score(histories)          # (B, n_items + 1) float tensor, column 0 = padding
    items, scores = model.recommend(histories, k=10)
    model.save(path); model = Recommender.load(path)

The trainer, evaluator, generator and server only ever call these methods.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from genrec.data.dataset import Dataset, Histories


@dataclasses.dataclass
class ModelConfig:
    """Base for model configs; fields must be JSON-serialisable scalars or lists."""

    def validate(self) -> None:
        """Raise ValueError naming the bad field. Subclasses extend."""


class Recommender:
    """Base class. Subclasses set `name`, `config_cls` and implement fit/score/_state/_load_state."""

    name: ClassVar[str] = "base"
    config_cls: ClassVar[type[ModelConfig]] = ModelConfig

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        config = config or self.config_cls()
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        self.config.validate()
        self.n_items_: int = 0
        self.fit_info_: dict[str, Any] = {}

    # --- to implement ------------------------------------------------------------------------
    def fit(self, data: Dataset) -> Recommender:
        raise NotImplementedError

    def score(self, histories: Histories) -> torch.Tensor:
        """Scores of every item for each history row: (B, n_items + 1), higher is better."""
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        """Learned state as tensors/arrays/scalars (saved with torch.save)."""
        raise NotImplementedError

    def _load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # --- shared ------------------------------------------------------------------------------
    @torch.no_grad()
    def recommend(
        self,
        histories: Histories,
        k: int = 10,
        exclude_seen: bool = True,
        allowed: np.ndarray | None = None,
        blocked: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k internal item ids and scores per row: two (B, k) arrays.

        Rows with fewer than k eligible items are padded with item 0 and score -inf.
        """
        from genrec.generation.topk import top_k  # generation sits above models; import lazily

        return top_k(self.score(histories), histories, k, exclude_seen, allowed, blocked)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {"model": self.name, "config": dataclasses.asdict(self.config), "n_items": self.n_items_,
                "fit_info": self.fit_info_}
        torch.save(self._state(), path / "model.pt")
        (path / "model.json").write_text(json.dumps(meta, indent=2, default=float))

    @staticmethod
    def load(path: str | Path) -> Recommender:
        from genrec.models import get_model_class

        path = Path(path)
        if not (path / "model.json").exists():
            raise FileNotFoundError(f"{path}: no model.json here; is this a genrec run or model directory?")
        meta = json.loads((path / "model.json").read_text())
        cls = get_model_class(meta["model"])
        model = cls(cls.config_cls(**meta["config"]))
        model.n_items_ = meta["n_items"]
        model.fit_info_ = meta.get("fit_info", {})
        model._load_state(torch.load(path / "model.pt", map_location="cpu", weights_only=False))
        return model


def history_matrix(histories: Histories, n_items: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Dense binary (B, n_items + 1) user-item matrix of a batch (batch-sized, never users x items)."""
    x = torch.zeros(len(histories), n_items + 1, dtype=dtype)
    x[torch.from_numpy(histories.row_ids()), torch.from_numpy(histories.items)] = 1
    return x


def check_positive(config: ModelConfig, *names: str) -> None:
    for n in names:
        v = getattr(config, n)
        if not v > 0:
            raise ValueError(f"{type(config).__name__}.{n} must be > 0, got {v!r}")
