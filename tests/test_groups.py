"""Fairness and exposure: user attributes, metrics per group with the largest gap, Gini of exposure,
head / tail hit rates, and `genrec evaluate --groups` on MovieLens-1M's users.dat."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genrec.cli import main
from genrec.data.attributes import read_user_attributes
from genrec.data.dataset import Histories
from genrec.data.types import DataError
from genrec.evaluation import evaluate
from genrec.evaluation.groups import evaluate_groups
from genrec.evaluation.metrics import gini, head_items


def test_movielens_users_dat_and_csv_attributes(shared_data, tmp_path):
    attrs = read_user_attributes(shared_data / "ml-1m-u2999")
    assert set(attrs) == {"gender", "age", "occupation"} and len(attrs["gender"]) == 6040  # every ML-1M user
    assert attrs["gender"]["1"] == "F" and attrs["age"]["1"] == "under 18" and attrs["age"]["2"] == "56+"
    assert attrs["occupation"]["1"] == "K-12 student"
    f = tmp_path / "users.csv"
    f.write_text("userId,segment\n7,gold\n8,silver\n")
    assert read_user_attributes(f) == {"segment": {"7": "gold", "8": "silver"}}
    f.write_text("userId,segment\n7,gold\n7,silver\n")
    with pytest.raises(DataError, match=r"users.csv:3: field 'user': user '7' appears twice"):
        read_user_attributes(f)
    f.write_text("who,segment\n7,gold\n")
    with pytest.raises(DataError, match=r"users.csv:1: no user column"):
        read_user_attributes(f)
    bad = tmp_path / "users.dat"
    bad.write_text("1::F::1::10::48067\n2::X::56::16::70072\n")
    with pytest.raises(DataError, match=r"users.dat:2: field 'gender'"):
        read_user_attributes(bad)


def test_groups_partition_the_users_and_the_gap_names_best_and_worst(synthetic_ds):
    n_cols = synthetic_ds.n_items + 1

    def score(h: Histories) -> torch.Tensor:
        users = torch.from_numpy(h.users)[:, None]
        return ((users * 7919 + torch.arange(n_cols)) % 97).float()

    test = synthetic_ds.test
    labels = ["odd" if u % 2 else "even" for u in test.history.users.tolist()]
    labels[0] = None  # a user without the attribute belongs to no group
    res = evaluate_groups(score, test, labels, ks=(10,))
    whole = evaluate(score, test, ks=(10,))
    g = res["groups"]
    assert res["unlabelled_users"] == 1 and g["odd"]["n_users"] + g["even"]["n_users"] == len(test) - 1
    first = evaluate(score, type(test)(test.history.take([0]), test.targets.take([0])), ks=(10,))
    weighted = sum(m["ndcg@10"] * m["n_users"] for m in g.values()) + first["ndcg@10"]
    assert weighted / len(test) == pytest.approx(whole["ndcg@10"])
    gap = res["gaps"]["ndcg@10"]
    hi, lo = max(g, key=lambda k: g[k]["ndcg@10"]), min(g, key=lambda k: g[k]["ndcg@10"])
    assert (gap["best"], gap["worst"]) == (hi, lo)
    assert gap["difference"] == pytest.approx(g[hi]["ndcg@10"] - g[lo]["ndcg@10"])


def test_gini_and_head_items():
    assert gini(torch.tensor([5.0, 5.0, 5.0, 5.0])) == pytest.approx(0.0)
    assert gini(torch.tensor([0.0, 0.0, 0.0, 8.0])) == pytest.approx(3 / 4)
    pop = np.array([0, 50, 30, 10, 5, 5])  # 100 interactions: item 1 alone holds >= 20%
    assert head_items(pop).tolist() == [False, True, False, False, False, False]
    m = evaluate(
        lambda h: torch.tensor([[0.0, 5, 4, 3, 2, 1]]).repeat(len(h), 1),
        _two_users(),
        ks=(1,),
        item_popularity=pop,
    )
    assert m["head_hr@1"] == 1.0 and m["tail_hr@1"] == 0.0  # item 1 (head) is ranked first, item 4 is not
    assert m["gini@1"] == pytest.approx(gini(torch.tensor([2.0, 0, 0, 0, 0])))


def _two_users():
    from genrec.data.dataset import EvalSet

    hist = Histories.from_lists([[3], [3]], users=np.array([1, 2]))
    return EvalSet(hist, Histories.from_lists([[1], [4]], users=np.array([1, 2])))


@pytest.mark.slow  # prepares ml-1m-u2999
def test_cli_evaluate_groups_on_movielens(shared_data, tmp_path, capsys):
    run = tmp_path / "pop"
    assert (
        main(["train", "--data", str(shared_data / "ml-1m-u2999"), "--model", "pop", "--out", str(run)]) == 0
    )
    capsys.readouterr()
    assert main(["evaluate", str(run), "--groups", "gender,age", "--k", "10"]) == 0
    out = capsys.readouterr().out
    assert "by gender" in out and "by age" in out and "largest NDCG@10 gap" in out and "gini@10" in out
    assert main(["evaluate", str(run), "--groups", "gender", "--k", "10", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)["groups"]["gender"]
    assert set(res["groups"]) == {"F", "M"} and res["unlabelled_users"] == 0
    assert main(["evaluate", str(run), "--groups", "height"]) == 2
    assert "no attribute height" in capsys.readouterr().err
