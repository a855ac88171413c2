"""Approximate retrieval + exact re-scoring against the exact top-k of the same model."""

from __future__ import annotations

import numpy as np
import pytest

from genrec.generation import Constraints, top_k_slates
from genrec.generation.ann import ItemIndex, ann_top_k_slates, recall_at_k
from genrec.models import get_model_class
from genrec.training import TrainConfig, fit

pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def sasrec(synthetic_ds):
    cls = get_model_class("sasrec")
    cfg = cls.config_cls(size="tiny", max_len=50, epochs=2, lr=5e-3, warmup_steps=10)
    return fit(cls(cfg), synthetic_ds, TrainConfig(threads=1))


def test_every_candidate_gives_the_exact_lists(sasrec, synthetic_ds):
    h = synthetic_ds.test.history
    index = ItemIndex.build(sasrec.item_embeddings())
    exact = top_k_slates(sasrec, h, 10)
    approx = ann_top_k_slates(sasrec, h, 10, index, candidates=synthetic_ds.n_items)
    np.testing.assert_array_equal(approx.items, exact.items)
    np.testing.assert_allclose(approx.scores, exact.scores, rtol=1e-4, atol=1e-4)


def test_few_candidates_keep_recall_and_never_return_seen_or_blocked_items(sasrec, synthetic_ds):
    h = synthetic_ds.test.history
    index = ItemIndex.build(sasrec.item_embeddings(), m=16)
    blocked = np.array([1, 2, 3])
    c = Constraints(blocked=blocked)
    exact = top_k_slates(sasrec, h, 10, c)
    approx = ann_top_k_slates(sasrec, h, 10, index, c, candidates=50)
    assert recall_at_k(approx, exact) > 0.9
    for row, items in enumerate(approx.items):
        assert not set(items) & set(h.items[h.indptr[row] : h.indptr[row + 1]])
        assert not set(items) & set(blocked)
    with pytest.raises(ValueError, match="category_cap"):
        ann_top_k_slates(sasrec, h, 10, index, Constraints(category_cap=2))
