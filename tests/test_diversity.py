"""Diversity re-ranking (MMR): 0 keeps the model's list, more diversity gives more varied lists at a
measured cost in accuracy; the CLI's recommend and evaluate expose it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genrec.cli import main
from genrec.data.sources import SourceSpec
from genrec.evaluation import evaluate
from genrec.generation import Generator, generate
from genrec.generation.diversity import intra_list_diversity, list_metrics, mmr
from genrec.training.runs import RunConfig, train_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("diversity") / "ease"
    train_run(RunConfig(source=SourceSpec(synthetic=True), model="ease", model_config={"l2": 200.0}), out)
    return out


def test_mmr_at_zero_is_the_model_order_and_more_diversity_varies_lists(run):
    gen = Generator.from_run(run)
    ds = gen.dataset
    hist = ds.test.history
    cons = gen.constraints()
    plain = generate(gen.model, hist, 10, "topk", cons)
    pool = generate(gen.model, hist, 100, "topk", cons)
    assert np.array_equal(mmr(pool, 10, 0.0, gen.item_vectors).items, plain.items)
    ild = [
        intra_list_diversity(gen.lists(hist, 10, "topk", cons, d).items, gen.item_vectors)
        for d in (0, 0.3, 0.7)
    ]
    assert ild[0] < ild[1] < ild[2]
    for d in (0.3, 0.7):
        items = gen.lists(hist, 10, "topk", cons, d).items
        assert all(len(set(r.tolist())) == 10 for r in items)  # distinct
        seen = [set(hist.row(b).tolist()) for b in range(len(hist))]
        assert not any(set(r.tolist()) & s for r, s in zip(items, seen))  # the constraints still hold
    # list metrics of the plain lists are the ranking metrics (continuous scores: no ties)
    m = evaluate(gen.model.score, ds.test, ks=(10,))
    assert list_metrics(plain.items, ds.test.targets, 10) == pytest.approx(
        {"ndcg@10": m["ndcg@10"], "hr@10": m["hr@10"]}, abs=1e-6
    )
    with pytest.raises(ValueError, match="between 0 and 1"):
        mmr(pool, 10, 1.5, gen.item_vectors)


def test_cli_recommend_and_evaluate_with_diversity(run, capsys):
    assert main(["recommend", str(run), "--user", "3", "-k", "5", "--diversity", "0.5", "--json"]) == 0
    items = [i["item_id"] for i in json.loads(capsys.readouterr().out)["items"]]
    assert len(set(items)) == 5
    assert main(["recommend", str(run), "--user", "3", "--diversity", "0.5", "--strategy", "beam"]) == 2
    assert "diversity re-ranks top-k lists" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--k", "10", "--diversity", "0.2,0.6", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["diversity"]
    assert [r["diversity"] for r in rows] == [0.0, 0.2, 0.6]
    assert rows[0]["ild@10"] < rows[2]["ild@10"] and rows[2]["ndcg@10"] <= rows[0]["ndcg@10"] + 1e-9
