"""Generation with the dataset's own ids: many users (or ad-hoc histories) in one call.

    gen = Generator.from_run("runs/ml1m-sasrec")
    lists = gen.recommend(["10", "42"], k=10, strategy="beam", block=["2571"], category_cap=3)
    lists[0]  # {"user_id": "10", "items": [{"item_id": "1196", "score": -2.31, "title": "..."}, ...]}

`Generator` is the one place where lists cross between raw ids and internal ids (through the
dataset's `IdMap`s); every id it returns is a string, whatever the dataset's id type. `records`
writes the same JSON shape for the HTTP server.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genrec.data.dataset import Dataset, EvalSet, Histories
from genrec.data.ids import IdMap
from genrec.generation.constraints import Constraints
from genrec.generation.diversity import POOL, intra_list_diversity, item_vectors, list_metrics, mmr
from genrec.generation.explanations import explain as explain_lists
from genrec.generation.explanations import order_effect, reasons
from genrec.generation.search import Slates, generate
from genrec.models.base import Recommender

TRADEOFF = (0.0, 0.1, 0.3, 0.5, 0.7)  # diversity levels of a trade-off curve


def records(
    item_ids: IdMap,
    item_title: np.ndarray | None,
    users: Sequence[str | None],
    items: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    because: Sequence[list[list[int]]] | None = None,
) -> list[dict]:
    """One `{"user_id", "items": [{"item_id", "score", "title"?, "because"?}]}` per row of internal
    `items` and their `scores`, raw ids as strings; padding slots (item 0: fewer eligible items than
    k) are left out, titles only where non-empty."""
    out = []
    for b, (u, row, row_scores) in enumerate(zip(users, items, scores)):
        keep = np.flatnonzero(np.asarray(row) > 0)
        idx = np.asarray(row)[keep]
        # whole rows to Python lists at once: per-item numpy scalar access costs more than the model
        # call on a served request
        names = item_ids.ids(idx.tolist())
        vals = np.asarray(row_scores, dtype=np.float64)[keep].tolist()
        titles = item_title[idx].tolist() if item_title is not None else [""] * len(idx)
        recs = []
        for j, name, score, title in zip(keep.tolist(), names, vals, titles):
            rec: dict[str, Any] = {"item_id": name, "score": score}
            if title:
                rec["title"] = str(title)
            if because is not None:
                rec["because"] = item_ids.ids(because[b][j])
            recs.append(rec)
        out.append({"user_id": u, "items": recs})
    return out


class Generator:
    """A trained model + its dataset; translates raw ids in and out of `generate`."""

    def __init__(self, model: Recommender, dataset: Dataset) -> None:
        self.model, self.dataset = model, dataset

    @staticmethod
    def from_run(path: str | Path) -> Generator:
        from genrec.training.runs import load_run  # a run directory is the checkpoint generation reads

        run = load_run(path)
        return Generator(run.model, run.dataset)

    def histories(self, users: Sequence[Any]) -> Histories:
        """Everything known about these raw user ids (UnknownId naming an unknown one)."""
        ds = self.dataset
        return ds.full_history(ds.user_ids.indices(users))

    def constraints(
        self,
        allow: Sequence[Any] | None = None,
        block: Sequence[Any] | None = None,
        category_cap: int | None = None,
        exclude_seen: bool = True,
    ) -> Constraints:
        """The same rules for every list, from raw item ids (UnknownId naming an unknown one)."""
        ds = self.dataset
        return Constraints(
            exclude_seen=exclude_seen,
            allowed=None if allow is None else ds.item_ids.indices(allow),
            blocked=None if block is None else ds.item_ids.indices(block),
            category_cap=category_cap,
            item_category=ds.item_category if category_cap is not None else None,
        )

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
        explain: bool = False,
        diversity: float = 0.0,
        **options: Any,
    ) -> list[dict]:
        """One `{"user_id", "items": [{"item_id", "score", "title"?, "because"?}]}` per user (or per
        ad-hoc history of raw item ids, with user_id None). `explain` adds each item's `because`: the
        history items whose removal lowers its score the most. `options` go to `generate` (beam_size,
        temperature, top_p, seed, use_cache)."""
        if (users is None) == (histories is None):
            raise ValueError("pass exactly one of users (raw user ids) or histories (lists of raw item ids)")
        ds = self.dataset
        if users is not None:
            idx = ds.user_ids.indices(users)
            hist = ds.full_history(idx)
            who: list[str | None] = ds.user_ids.ids(idx)
        else:
            hist = Histories.from_lists([ds.item_ids.indices(h) for h in histories])
            who = [None] * len(hist)
        cons = self.constraints(allow, block, category_cap, exclude_seen)
        slates = self.lists(hist, k, strategy, cons, diversity, **options)
        because = explain_lists(self.model, hist, slates.items) if explain else None
        return records(ds.item_ids, ds.item_title, who, slates.items, slates.scores, because)

    def lists(
        self,
        hist: Histories,
        k: int,
        strategy: str,
        cons: Constraints,
        diversity: float = 0.0,
        **options: Any,
    ) -> Slates:
        """`generate`, then with `diversity` > 0 an MMR re-ranking of the top POOL items (topk only)."""
        if not diversity:
            return generate(self.model, hist, k, strategy, cons, **options)
        if strategy != "topk":
            raise ValueError(f"diversity re-ranks top-k lists; strategy {strategy} decodes its own list")
        pool = generate(self.model, hist, max(POOL, k), "topk", cons, **options)
        return mmr(pool, k, diversity, self.item_vectors)

    def diversity_tradeoff(
        self, evalset: EvalSet, k: int = 10, levels: Sequence[float] = TRADEOFF, exclude_seen: bool = True
    ) -> list[dict]:
        """Per diversity level: NDCG@k and HR@k of the re-ranked lists, coverage@k, and intra-list
        diversity (1 - mean cosine of two items of a list)."""
        cons = self.constraints(exclude_seen=exclude_seen)
        out = []
        for d in levels:
            items = np.concatenate(
                [
                    self.lists(evalset.history.take(slice(s, s + 1024)), k, "topk", cons, d).items
                    for s in range(0, len(evalset), 1024)
                ]
            )
            row = {"diversity": float(d), **list_metrics(items, evalset.targets, k)}
            row[f"coverage@{k}"] = len(np.unique(items[items > 0])) / self.dataset.n_items
            row[f"ild@{k}"] = intra_list_diversity(items, self.item_vectors)
            out.append(row)
        return out

    @functools.cached_property
    def item_vectors(self) -> torch.Tensor:
        """Co-consumption item vectors of the dataset (what diversity calls similar)."""
        return item_vectors(self.dataset)

    def explain(
        self,
        user: Any,
        item: Any | None = None,
        k: int = 10,
        top: int = 3,
        strategy: str = "topk",
        exclude_seen: bool = True,
        **options: Any,
    ) -> dict:
        """Why `user` gets each item of their list (or just `item`, whether in the list or not):

        {"user_id", "history_length", "items": [{"item_id", "score", "title"?, "because": [{"item_id",
        "title"?, "delta", "position"}], "order_effect"}]}

        `because`: the `top` history items whose removal lowers the item's score the most, by `delta`
        (leave-one-out on the model's own `score`: removing that item from the history lowers the score
        by exactly this much); `position`: 0 = the last item of the history, 1 = the one before, ...
        `order_effect`: score minus the score with the history's order reversed (0 for models that
        read a history as a set). The same computation as HTTP's `explain=true`."""
        ds = self.dataset
        idx = ds.user_ids.indices([user])
        hist = ds.full_history(idx)
        scores = self.model.score(hist).float()
        if item is None:
            cons = self.constraints(exclude_seen=exclude_seen)
            slates = generate(self.model, hist, k, strategy, cons, **options)
            items = slates.items
        else:
            items = ds.item_ids.indices([item])[None, :]
        why = reasons(self.model, hist, items, scores, top=top)[0]
        order = order_effect(self.model, hist, items)[0]
        out = []
        for j, i in enumerate(items[0].tolist()):
            if i <= 0:
                continue
            rec: dict[str, Any] = {"item_id": ds.item_ids.id(i), "score": float(scores[0, i])}
            title = self._title(i)
            if title:
                rec["title"] = title
            rec["because"] = [
                {
                    "item_id": ds.item_ids.id(r.item),
                    **({"title": t} if (t := self._title(r.item)) else {}),
                    "delta": r.delta,
                    "position": r.position,
                }
                for r in why[j]
            ]
            rec["order_effect"] = float(order[j])
            out.append(rec)
        return {"user_id": ds.user_ids.id(int(idx[0])), "history_length": len(hist.row(0)), "items": out}

    def _title(self, i: int) -> str | None:
        t = self.dataset.item_title
        return str(t[i]) if t is not None and t[i] else None
