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
    warm_starts: ClassVar[bool] = False  # fit() honours `warm_start`

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        config = config or self.config_cls()
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        self.config.validate()
        self.n_items_: int = 0
        self.fit_info_: dict[str, Any] = {}
        # set before fit() to fine-tune instead of training from scratch (genrec update); models that
        # support it set `warm_starts = True` and start their network from this model's weights
        self.warm_start: Recommender | None = None

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


def grow_into(net: torch.nn.Module, old: dict[str, torch.Tensor]) -> None:
    """Load `old` (a state dict of the same network for a smaller catalogue) into `net`.

    Every tensor is copied into the leading corner of its new-shaped counterpart: item-indexed rows and
    columns of the old ids keep their trained values, the rows of items added since (new ids are
    appended after the old ones) keep their fresh initialisation.
    """
    new = net.state_dict()
    if set(new) != set(old):
        raise ValueError(f"warm start: parameters differ ({sorted(set(new) ^ set(old))[:4]} ...)")
    with torch.no_grad():
        for k, t in new.items():
            o = old[k]
            if t.dim() != o.dim() or any(a < b for a, b in zip(t.shape, o.shape)):
                raise ValueError(
                    f"warm start: {k} has shape {tuple(o.shape)} in the old model and {tuple(t.shape)} now; "
                    "only the catalogue may grow (same architecture settings)"
                )
            t[tuple(slice(0, n) for n in o.shape)] = o


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
