"""Explanations: `genrec explain`, `Generator.explain` and HTTP's `explain=true` are one computation,
and they are faithful: removing the top reason from the history lowers the item's score by the delta
stated."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genrec.cli import main
from genrec.data.dataset import Histories
from genrec.data.sources import SourceSpec
from genrec.generation import Generator, explain
from genrec.generation.explanations import reasons
from genrec.training import TrainConfig
from genrec.training.runs import RunConfig, train_run

MODELS = {"ease": {"l2": 200.0}, "sasrec": {"size": "tiny", "epochs": 1, "max_len": 30}}


@pytest.fixture(scope="module", params=sorted(MODELS))
def run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("explain") / request.param
    cfg = RunConfig(
        source=SourceSpec(synthetic=True),
        model=request.param,
        model_config=MODELS[request.param],
        train=TrainConfig(threads=1),
        ks=[10],
    )
    train_run(cfg, out, progress=False)
    return out


def test_removing_the_top_reason_lowers_the_score_by_its_delta(run):
    gen = Generator.from_run(run)
    ds, model = gen.dataset, gen.model
    for user in ("3", "17", "250"):
        result = gen.explain(user, k=5)
        assert result["user_id"] == user and len(result["items"]) == 5
        hist = ds.full_history(ds.user_ids.indices([user]))
        row, ts = hist.row(0), hist.row_timestamps(0)
        checked = 0
        for rec in result["items"]:
            deltas = [w["delta"] for w in rec["because"]]
            assert deltas == sorted(deltas, reverse=True) and all(d > 0 for d in deltas)
            for why in rec["because"][:1]:
                h, i = ds.item_ids.index(why["item_id"]), ds.item_ids.index(rec["item_id"])
                keep = row != h
                without = Histories.from_lists(
                    [row[keep]], hist.users, [ts[keep]] if ts is not None else None
                )
                full = float(model.score(hist)[0, i])
                assert rec["score"] == pytest.approx(full, abs=1e-5)
                assert full - float(model.score(without)[0, i]) == pytest.approx(why["delta"], abs=1e-4)
                last = int(np.flatnonzero(row == h)[-1])
                assert why["position"] == len(row) - 1 - last
                checked += 1
        assert checked >= 3  # most items have a reason


def test_order_effect_is_zero_for_set_models_only(run):
    gen = Generator.from_run(run)
    effects = [r["order_effect"] for u in ("3", "17") for r in gen.explain(u, k=5)["items"]]
    if gen.model.name == "ease":
        assert effects == pytest.approx([0.0] * len(effects), abs=1e-5)
    else:
        assert max(abs(e) for e in effects) > 1e-4


def test_http_because_is_the_same_computation(run):
    gen = Generator.from_run(run)
    ds = gen.dataset
    hist = ds.full_history(ds.user_ids.indices(["3", "17"]))
    items = np.stack([gen.model.score(hist)[b].topk(5).indices.numpy() for b in range(2)])
    ids = explain(gen.model, hist, items)  # what the server's `because` cites
    assert ids == [[[r.item for r in rs] for rs in row] for row in reasons(gen.model, hist, items)]


def test_cli_explain_json_text_one_item_and_errors(run, capsys):
    assert main(["explain", str(run), "--user", "3", "-k", "4", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got == json.loads(json.dumps(Generator.from_run(run).explain("3", k=4)))
    item = got["items"][2]["item_id"]
    assert main(["explain", str(run), "--user", "3", "--item", item]) == 0
    out = capsys.readouterr().out
    assert f"why user 3 gets item {item}" in out and "because" in out
    assert main(["explain", str(run), "--user", "nobody"]) == 2
    assert "unknown user id 'nobody'" in capsys.readouterr().err
