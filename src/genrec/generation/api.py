"""Generation with the dataset's own ids: many users (or ad-hoc histories) in one call.

    gen = Generator.from_run("runs/ml1m-sasrec")
    lists = gen.recommend(["10", "42"], k=10, strategy="beam", block=["2571"], category_cap=3)
    lists[0]  # {"user_id": "10", "items": [{"item_id": 1196, "score": -2.31, "title": "..."}, ...]}
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genrec.data.dataset import Dataset, Histories
from genrec.generation.constraints import Constraints
from genrec.generation.search import Slates, generate


class Generator:
    """A trained model + its dataset; translates raw ids in and out of `generate`."""

    def __init__(self, model, dataset: Dataset) -> None:
        self.model, self.dataset = model, dataset

    @staticmethod
    def from_run(path: str | Path) -> Generator:
        from genrec.training.runs import load_run  # a run directory is the checkpoint generation reads

        run = load_run(path)
        return Generator(run.model, run.dataset)

    def histories(self, users: Sequence[Any]) -> Histories:
        """Everything known about these raw user ids (KeyError naming an unknown one)."""
        ds = self.dataset
        return ds.full_history(ds.user_ids.indices(users))

    def constraints(self, allow: Sequence[Any] | None = None, block: Sequence[Any] | None = None,
                    category_cap: int | None = None, exclude_seen: bool = True) -> Constraints:
        ds = self.dataset
        return Constraints(exclude_seen=exclude_seen,
                           allowed=None if allow is None else ds.item_ids.indices(allow),
                           blocked=None if block is None else ds.item_ids.indices(block),
                           category_cap=category_cap,
                           item_category=ds.item_category if category_cap is not None else None)

    def recommend(
        self,
        users: Sequence[Any] | None = None,
        k: int = 10,
        strategy: str = "topk",
        *,
        histories: Sequence[Sequence[Any]] | None = None,
        allow: Sequence[Any] | None = None,
        block: Sequence[Any] | None = None,
        category_cap: int | None = None,
        exclude_seen: bool = True,
        **options: Any,
    ) -> list[dict]:
        """One `{"user_id", "items": [{"item_id", "score", "title"?}]}` per user (or per ad-hoc history,
        with user_id None). `options` go to `generate` (beam_size, temperature, top_p, seed, use_cache)."""
        if (users is None) == (histories is None):
            raise ValueError("pass exactly one of users (raw user ids) or histories (lists of raw item ids)")
        ds = self.dataset
        if users is not None:
            users = list(users)
            hist = self.histories(users)
        else:
            hist = Histories.from_lists([ds.item_ids.indices(h) for h in histories])
            users = [None] * len(hist)
        cons = self.constraints(allow, block, category_cap, exclude_seen)
        slates = generate(self.model, hist, k, strategy, cons, **options)
        return self.to_records(users, slates)

    def to_records(self, users: list, slates: Slates) -> list[dict]:
        ds = self.dataset
        out = []
        for u, items, scores in zip(users, slates.items, slates.scores):
            keep = items > 0
            raw = ds.item_raw[items[keep]].tolist()
            titles = ds.item_title[items[keep]].tolist() if ds.item_title is not None else None
            recs = [{"item_id": r, "score": float(s)} for r, s in zip(raw, scores[keep])]
            if titles is not None:
                for rec, title in zip(recs, titles):
                    rec["title"] = str(title)
            out.append({"user_id": u, "items": recs})
        return out
