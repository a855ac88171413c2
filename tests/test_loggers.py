"""Training curves for dashboards: `--log csv|tensorboard` files written through the loop's callback and
read back; a missing package is refused before any work."""

from __future__ import annotations

import csv
import json

import pytest

from genrec.cli import main

ARGS = [
    "train",
    "--synthetic",
    "--model",
    "sasrec",
    "--size",
    "tiny",
    "--set",
    "epochs=3",
    "--set",
    "threads=1",
]


def curve(run) -> list[dict]:
    info = json.loads((run / "model" / "model.json").read_text())["fit_info"]
    return [r for p in info["phases"] for r in p["curve"]]


def test_tensorboard_event_files_hold_every_epoch(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert main([*ARGS, "--log", "tensorboard", "--out", str(run)]) == 0
    acc = EventAccumulator(str(run / "logs" / "tensorboard"))
    acc.Reload()
    loss = [(e.step, e.value) for e in acc.Scalars("train/loss")]
    valid = [e.value for e in acc.Scalars("train/valid_ndcg@10")]
    rows = curve(run)
    assert [s for s, _ in loss] == [1, 2, 3]
    assert [v for _, v in loss] == pytest.approx([r["loss"] for r in rows], rel=1e-6)
    assert valid == pytest.approx([r["valid_ndcg@10"] for r in rows], rel=1e-6)


def test_csv_curves_by_default_and_plain_numbers_in_train_log(tmp_path):
    run = tmp_path / "run"
    assert main([*ARGS, "--out", str(run)]) == 0
    rows = list(csv.DictReader((run / "logs" / "curves.csv").open()))
    assert [int(float(r["epoch"])) for r in rows] == [1, 2, 3] and {r["phase"] for r in rows} == {"train"}
    assert [float(r["loss"]) for r in rows] == pytest.approx([r["loss"] for r in curve(run)])
    log = (run / "train.log").read_text()
    assert "np.float" not in log and "tensor(" not in log
    assert json.loads((run / "config.json").read_text())["run"]["train"]["log"] == "csv"


def test_unknown_or_missing_logger_is_refused_before_work(tmp_path, capsys, monkeypatch):
    import builtins

    assert main([*ARGS, "--set", "log=wandb", "--out", str(tmp_path / "a")]) == 2
    assert "log" in capsys.readouterr().err and not (tmp_path / "a.partial").exists()
    real = builtins.__import__

    def no_mlflow(name, *a, **kw):
        if name == "mlflow":
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    assert main([*ARGS, "--log", "mlflow", "--out", str(tmp_path / "b")]) == 2
    assert "pip install mlflow" in capsys.readouterr().err
    assert not (tmp_path / "b").exists() and not (tmp_path / "b.partial").exists()
