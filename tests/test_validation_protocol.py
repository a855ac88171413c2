"""Early stopping and searches validate under the run's own protocol: with `--include-seen` the items a
user has seen compete in the validation ranking too, as they do in the reported and served lists."""

from __future__ import annotations

import json

import pytest
import torch

from genrec.cli import main
from genrec.evaluation import evaluate
from genrec.models import get_model_class
from genrec.training import TrainConfig, fit


@pytest.mark.parametrize(
    ("model", "sets"),
    [
        ("ease", []),
        pytest.param(
            "sasrec", ["--size", "tiny", "--set", "epochs=2", "--set", "max_len=20"], marks=pytest.mark.slow
        ),
    ],
)
def test_the_chosen_validation_figure_is_the_reported_one(tmp_path, model, sets):
    n = torch.get_num_threads()
    out = tmp_path / model
    args = ["train", "--synthetic", "--model", model, "--out", str(out), "--include-seen", *sets]
    assert main(args + ["--set", "threads=1"]) == 0
    torch.set_num_threads(n)
    info = json.loads((out / "model" / "model.json").read_text())["fit_info"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"]["history_excluded"] is False
    # the best validation figure seen while fitting is the one evaluated afterwards, under the same rules
    assert info["best_valid"] == pytest.approx(metrics["valid"]["ndcg@10"], abs=1e-6)


def test_fit_validates_with_or_without_the_history(synthetic_ds):
    cls = get_model_class("ease")
    kept = fit(cls(cls.config_cls()), synthetic_ds, TrainConfig(threads=1), exclude_seen=False)
    dropped = fit(cls(cls.config_cls()), synthetic_ds, TrainConfig(threads=1))
    for model, excl in ((kept, False), (dropped, True)):
        figure = evaluate(model.score, synthetic_ds.valid, ks=(10,), exclude_seen=excl)["ndcg@10"]
        assert model.fit_info_["best_valid"] == pytest.approx(figure, abs=1e-6)
    # seen items crowd the list when they stay rankable: a different (lower) figure
    assert kept.fit_info_["best_valid"] < dropped.fit_info_["best_valid"]
