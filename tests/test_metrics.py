"""Full-ranking metrics against values computed by hand (and against a naive per-user loop)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genrec.data.dataset import EvalSet, Histories
from genrec.evaluation import evaluate


def fixed_scores(matrix: list[list[float]]):
    """A score_fn that returns row `users[b] - 1` of a fixed (U, n_items + 1) matrix."""
    m = torch.tensor(matrix, dtype=torch.float32)

    def score(h: Histories) -> torch.Tensor:
        return m[torch.from_numpy(h.users - 1)]

    return score, m


def evalset(histories: list[list[int]], targets: list[list[int]]) -> EvalSet:
    users = np.arange(1, len(histories) + 1)
    return EvalSet(Histories.from_lists(histories, users), Histories.from_lists(targets, users))


#            pad   1    2    3    4    5
ROW = [[0.0, 0.9, 0.5, 0.7, 0.5, 0.1]]


def test_single_target_tie_counts_against_model():
    # history {1} excluded; target 4 (0.5): item 3 (0.7) above, item 2 (0.5) tied -> rank 3
    score, _ = fixed_scores(ROW)
    m = evaluate(score, evalset([[1]], [[4]]), ks=(1, 2, 3, 5))
    assert m["hr@1"] == 0 and m["hr@2"] == 0 and m["hr@3"] == 1 and m["hr@5"] == 1
    assert m["recall@2"] == 0 and m["recall@3"] == 1
    assert m["ndcg@2"] == 0
    assert m["ndcg@3"] == pytest.approx(1 / math.log2(4))
    assert m["ndcg@5"] == pytest.approx(0.5)
    assert m["mrr"] == pytest.approx(1 / 3)
    assert m["n_users"] == 1


def test_tied_target_is_not_ranked_first():
    # every item scores the same: the target is ranked behind all 5 eligible items -> rank 5
    score, _ = fixed_scores([[0.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    m = evaluate(score, evalset([[]], [[1]]), ks=(4, 5))
    assert m["hr@4"] == 0 and m["hr@5"] == 1
    assert m["mrr"] == pytest.approx(1 / 5)


def test_history_exclusion_switch():
    score, _ = fixed_scores(ROW)
    es = evalset([[1]], [[4]])
    assert evaluate(score, es, ks=(3,))["mrr"] == pytest.approx(1 / 3)
    # history kept: item 1 (0.9) now competes -> rank 4
    kept = evaluate(score, es, ks=(3, 4), exclude_seen=False)
    assert kept["mrr"] == pytest.approx(1 / 4)
    assert kept["hr@3"] == 0 and kept["hr@4"] == 1


def test_target_seen_before_stays_rankable():
    # item 4 is in the history (a repeat purchase) and is the target: it must not be masked away
    score, _ = fixed_scores(ROW)
    m = evaluate(score, evalset([[4, 1]], [[4]]), ks=(3,))
    assert m["mrr"] == pytest.approx(1 / 3)
    # ... but it does not appear as a recommendation candidate for coverage: top-3 = {3, 2, 5}
    assert m["coverage@3"] == pytest.approx(3 / 5)


def test_padding_column_never_ranked():
    # a huge score in column 0 (padding) must not push the target down
    score, _ = fixed_scores([[100.0, 0.9, 0.5, 0.7, 0.5, 0.1]])
    m = evaluate(score, evalset([[1]], [[4]]), ks=(3,), exclude_seen=False)
    assert m["mrr"] == pytest.approx(1 / 4)
    m = evaluate(score, evalset([[]], [[1]]), ks=(1,))
    assert m["hr@1"] == 1 and m["coverage@1"] == pytest.approx(1 / 5)


def test_minus_inf_target_ranked_last():
    score, _ = fixed_scores([[0.0, 0.9, -math.inf, 0.7, 0.5, 0.1]])
    m = evaluate(score, evalset([[]], [[2]]), ks=(5,))
    assert m["hr@5"] == 1 and m["mrr"] == pytest.approx(1 / 5)


def test_multi_target_recall_and_ndcg_normalisation():
    #        pad  1    2    3    4    5    6
    row = [[0.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]]
    score, _ = fixed_scores(row)
    # targets 2, 5, 6 -> ranks 2, 5, 6
    m = evaluate(score, evalset([[]], [[2, 5, 6]]), ks=(1, 2, 5, 10))
    g = lambda r: 1 / math.log2(r + 1)  # noqa: E731
    assert m["hr@1"] == 0 and m["hr@2"] == 1
    assert m["recall@2"] == pytest.approx(1 / 2)  # 1 hit / min(2, 3)
    assert m["recall@5"] == pytest.approx(2 / 3)
    assert m["recall@10"] == pytest.approx(1.0)
    assert m["ndcg@2"] == pytest.approx(g(2) / (g(1) + g(2)))
    assert m["ndcg@5"] == pytest.approx((g(2) + g(5)) / (g(1) + g(2) + g(3)))
    assert m["ndcg@10"] == pytest.approx((g(2) + g(5) + g(6)) / (g(1) + g(2) + g(3)))
    assert m["mrr"] == pytest.approx(1 / 2)


def test_multi_target_ties_between_targets_count_against_model():
    # targets 2 and 3 tie at 0.8 behind item 1: each counts the other -> ranks 3 and 3
    score, _ = fixed_scores([[0.0, 0.9, 0.8, 0.8, 0.1]])
    m = evaluate(score, evalset([[]], [[2, 3]]), ks=(2, 3))
    assert m["hr@2"] == 0 and m["recall@3"] == 1
    assert m["ndcg@3"] == pytest.approx(2 * (1 / math.log2(4)) / (1 + 1 / math.log2(3)))


def test_means_over_users_of_different_target_counts():
    row = [0.0, 0.9, 0.8, 0.7, 0.6]
    score, _ = fixed_scores([row, row])
    # user 1: target 1 -> rank 1; user 2: targets 3, 4 -> ranks 3, 4
    m = evaluate(score, evalset([[], []], [[1], [3, 4]]), ks=(2,))
    assert m["hr@2"] == pytest.approx(0.5)
    assert m["recall@2"] == pytest.approx(0.5)
    assert m["mrr"] == pytest.approx((1 + 1 / 3) / 2)


def test_coverage_and_popularity_with_fewer_eligible_items_than_k():
    #         pad 1  2  3  4
    row = [0.0, 4, 3, 2, 1]
    score, _ = fixed_scores([row, row])
    pop = np.array([0, 10, 5, 3, 2])  # catalogue mean 5
    # user 1 has seen 1, 2, 3: only item 4 is eligible, so its top-2 list has one item
    es = evalset([[1, 2, 3], []], [[4], [1]])
    m = evaluate(score, es, ks=(1, 2), item_popularity=pop)
    assert m["coverage@1"] == pytest.approx(2 / 4)  # {4, 1}
    assert m["coverage@2"] == pytest.approx(3 / 4)  # {4, 1, 2}; no ineligible item sneaks in
    assert m["avg_pop@1"] == pytest.approx((2 + 10) / 2 / 5)
    assert m["avg_pop@2"] == pytest.approx((2 + 10 + 5) / 3 / 5)


def test_score_fn_output_is_not_modified():
    score, m0 = fixed_scores(ROW)
    before = m0.clone()
    evaluate(score, evalset([[1]], [[4]]), ks=(3,))
    assert torch.equal(m0, before)


def test_bad_cutoff_and_empty_set_rejected():
    score, _ = fixed_scores(ROW)
    with pytest.raises(ValueError, match="cut-offs"):
        evaluate(score, evalset([[1]], [[4]]), ks=(0,))
    with pytest.raises(ValueError, match="empty"):
        evaluate(score, evalset([], []), ks=(3,))


def naive_metrics(scores: np.ndarray, hists, tgts, k: int, exclude: bool) -> dict[str, float]:
    """One user at a time, straight from the definitions."""
    acc = {"hr": 0.0, "recall": 0.0, "ndcg": 0.0, "mrr": 0.0}
    for s, h, t in zip(scores, hists, tgts):
        eligible = [i for i in range(1, len(s)) if not (exclude and i in h and i not in t)]
        ranks = [1 + sum(1 for j in eligible if j != i and s[j] >= s[i]) for i in t]
        hits = [r for r in ranks if r <= k]
        acc["hr"] += bool(hits)
        acc["recall"] += len(hits) / min(k, len(t))
        acc["ndcg"] += sum(1 / math.log2(r + 1) for r in hits) / sum(
            1 / math.log2(r + 1) for r in range(1, min(k, len(t)) + 1)
        )
        acc["mrr"] += 1 / min(ranks)
    return {key: v / len(scores) for key, v in acc.items()}


@pytest.mark.parametrize("exclude", [True, False])
@pytest.mark.parametrize("multi", [False, True])
def test_vectorised_equals_naive_loop_with_many_ties(exclude, multi):
    rng = np.random.default_rng(7)
    U, n = 40, 12
    scores = rng.integers(0, 4, (U, n + 1)).astype(np.float32)  # few distinct values: many ties
    hists, tgts = [], []
    for _ in range(U):
        perm = rng.permutation(np.arange(1, n + 1))
        nt = int(rng.integers(1, 4)) if multi else 1
        t = list(perm[:nt])
        h = list(perm[nt : nt + int(rng.integers(0, 6))])
        if rng.random() < 0.3:
            h.append(t[0])  # target seen before
        hists.append(h)
        tgts.append(t)
    score, _ = fixed_scores(scores.tolist())
    for batch_size in (7, 1024):
        m = evaluate(score, evalset(hists, tgts), ks=(3,), exclude_seen=exclude, batch_size=batch_size)
        ref = naive_metrics(scores, hists, tgts, 3, exclude)
        for key in ("hr", "recall", "ndcg"):
            assert m[f"{key}@3"] == pytest.approx(ref[key], abs=1e-6), key
        assert m["mrr"] == pytest.approx(ref["mrr"], abs=1e-6)


def test_ease_sparse_and_dense_scoring_agree(monkeypatch):
    """EASE scores short histories through a sparse product; it must equal the dense one, repeats once."""
    from genrec.models import ease as ease_mod
    from genrec.models.ease import EASE

    rng = np.random.default_rng(0)
    model = EASE(l2=10.0)
    model.n_items_ = 50
    model.B_ = torch.from_numpy(rng.standard_normal((51, 51)).astype(np.float32))
    h = Histories.from_lists([[3, 7, 3], [], [50, 1, 2, 9]])
    monkeypatch.setattr(ease_mod, "SPARSE_BELOW", 0.0)  # always dense
    dense = model.score(h)
    monkeypatch.setattr(ease_mod, "SPARSE_BELOW", 1.0)  # always sparse
    sparse = model.score(h)
    assert torch.allclose(dense, sparse, atol=1e-5)
    assert torch.allclose(sparse[0], model.B_[3] + model.B_[7], atol=1e-5)


def test_batches_shrink_for_large_catalogues_and_metrics_do_not_change(synthetic_ds):
    """`max_cells` bounds the scores held at once (fewer users per batch); every metric is unchanged."""
    n_cols = synthetic_ds.n_items + 1
    shapes = []

    def score(h: Histories) -> torch.Tensor:  # deterministic per user, with many ties
        shapes.append(len(h))
        users = torch.from_numpy(h.users)[:, None]
        return ((users * 7919 + torch.arange(n_cols)) % 97).float()

    test = synthetic_ds.test
    whole = evaluate(score, test, ks=(1, 10, 50), item_popularity=synthetic_ds.item_popularity)
    assert max(shapes) > 100  # the default: up to 1024 users at a time
    shapes.clear()
    pop = synthetic_ds.item_popularity
    small = evaluate(score, test, ks=(1, 10, 50), item_popularity=pop, max_cells=3 * n_cols)
    assert max(shapes) == 3 and sum(shapes) == len(test)
    assert small == pytest.approx(whole, rel=1e-12)


def test_evaluated_rows_are_scored_at_their_first_held_out_interaction():
    """An EvalSet's histories carry request times: the earliest held-out timestamp of each row (which
    item comes next stays hidden, when it comes does not), never before the last history time (held-out
    items drawn out of order), which a row without targets gets; sub-batches keep them, and so does
    the history a model is scored on."""
    history = Histories(np.array([0, 2, 3, 3, 4]), np.array([1, 2, 3, 4]), np.array([10, 20, 30, 90]))
    targets = Histories(np.array([0, 2, 2, 3, 4]), np.array([4, 5, 6, 7]), np.array([70, 50, 40, 60]))
    ev = EvalSet(history, targets)
    assert ev.history.request_ts.tolist() == [50, 30, 40, 90]
    assert history.request_ts is None  # the caller's histories are not changed
    assert ev.history.take(np.array([2, 0])).request_ts.tolist() == [40, 50]
    seen = []
    evaluate(lambda h: seen.append(h.request_ts.tolist()) or torch.zeros(len(h), 8), ev, ks=(1,))
    assert sum(seen, []) == [50, 30, 40, 90]
    untimed = EvalSet(Histories(np.array([0, 1]), np.array([1])), Histories(np.array([0, 1]), np.array([2])))
    assert untimed.history.request_ts is None  # no times, nothing to tell
