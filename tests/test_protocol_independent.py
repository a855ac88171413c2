"""The benchmark protocol recomputed from scratch with plain numpy/pandas (no genrec splits or
metrics), compared with what `genrec train --model pop` + `genrec evaluate --split test` print.

Protocol: every rating an interaction; per-user chronological order, ties broken by file order;
leave-one-out (last = test, second last = validation); popularity counted on the training part;
full ranking over the items occurring in the interactions; the input history excluded; ties
count against the model.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from genrec.cli import main

pytestmark = pytest.mark.slow  # real data (ML-1M)


def independent_pop_loo(ratings_dat) -> dict[str, float]:
    # "::"-separated; splitting on ":" keeps pandas' fast C parser (the empty fields are dropped)
    df = pd.read_csv(
        ratings_dat,
        sep=":",
        header=None,
        usecols=[0, 2, 4, 6],
        names=["user", "_a", "item", "_b", "rating", "_c", "ts"],
        encoding="latin-1",
    )
    df["line"] = np.arange(len(df))
    df = df.sort_values(["user", "ts", "line"])  # line number makes the order total
    df["pos"] = df.groupby("user").cumcount()
    df["n"] = df.groupby("user")["item"].transform("size")
    assert df["n"].min() >= 3  # every user of this file is evaluated
    test = df[df["pos"] == df["n"] - 1]
    history = df[df["pos"] < df["n"] - 1]
    train = df[df["pos"] < df["n"] - 2]
    catalogue = np.unique(df["item"])
    count = train["item"].value_counts().reindex(catalogue, fill_value=0)
    c_sorted = np.sort(count.to_numpy())
    t_count = count.loc[test["item"]].to_numpy()
    # items of the catalogue scoring >= the target, the target itself included
    ge_all = len(c_sorted) - np.searchsorted(c_sorted, t_count, side="left")
    # ... minus the user's history items scoring >= the target (excluded from the ranking)
    h = history.merge(test[["user", "item"]].rename(columns={"item": "target"}), on="user")
    h = h[h["item"] != h["target"]]  # a target seen before would stay rankable (none here)
    h["ge"] = count.loc[h["item"]].to_numpy() >= count.loc[h["target"]].to_numpy()
    ge_hist = h.groupby("user")["ge"].sum().reindex(test["user"], fill_value=0).to_numpy()
    rank = ge_all - ge_hist  # = 1 + #other eligible items with count >= target's
    hit = rank <= 10
    return {
        "hr@10": float(hit.mean()),
        "ndcg@10": float(np.where(hit, 1 / np.log2(rank + 1), 0).mean()),
        "n_users": len(test),
        "n_items": len(catalogue),
    }


def test_genrec_pop_matches_independent_protocol(shared_data, tmp_path, capsys):
    ref = independent_pop_loo(shared_data / "ml-1m-u2999" / "ratings.dat")
    assert (ref["n_users"], ref["n_items"]) == (2999, 3615)
    # the reference figures stated in the dataset's PROVENANCE.md
    assert (round(ref["hr@10"], 4), round(ref["ndcg@10"], 4)) == (0.0377, 0.0179)

    run = tmp_path / "pop"
    assert (
        main(
            [
                "train",
                "--data",
                str(shared_data / "ml-1m-u2999"),
                "--model",
                "pop",
                "--out",
                str(run),
                "--k",
                "10",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test", "--k", "10", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["n_users"] == ref["n_users"] and got["history_excluded"] is True
    assert round(got["hr@10"], 4) == round(ref["hr@10"], 4)
    assert round(got["ndcg@10"], 4) == round(ref["ndcg@10"], 4)
    assert abs(got["ndcg@10"] - ref["ndcg@10"]) < 1e-5  # float32 vs float64 only
