"""The `genrec` command: outputs people read, and errors that say what is wrong and how to fix it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genrec.cli import main


@pytest.fixture(scope="module")
def pop_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "pop"
    assert main(["train", "--synthetic", "--model", "pop", "--out", str(out), "--k", "10"]) == 0
    return out


def err_of(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) != 0
    return capsys.readouterr().err


def test_evaluate_json_keys(pop_run, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(pop_run), "--split", "test", "--k", "10,20", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    for key in ("hr@10", "ndcg@10", "recall@20", "mrr", "coverage@10", "avg_pop@20"):
        assert m[key] >= 0
    assert m["split"] == "test" and m["history_excluded"] is True and m["n_users"] == 1000
    metrics = json.loads((pop_run / "metrics.json").read_text())
    assert metrics["protocol"]["history_excluded"] is True
    assert metrics["test"]["ndcg@10"] == pytest.approx(m["ndcg@10"])
    # the table for people names the protocol
    assert main(["evaluate", str(pop_run), "--k", "10"]) == 0
    out = capsys.readouterr().out
    assert "full ranking" in out and "ndcg@10" in out and "ties against the model" in out


def test_include_seen_switch_is_recorded(pop_run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(pop_run), "--k", "10", "--json", "--include-seen"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["history_excluded"] is False
    out = tmp_path / "seen"
    assert (
        main(["train", "--synthetic", "--model", "pop", "--out", str(out), "--k", "10", "--include-seen"])
        == 0
    )
    kept = json.loads((out / "metrics.json").read_text())
    assert kept["protocol"]["history_excluded"] is False
    assert kept["test"]["ndcg@10"] == pytest.approx(m["ndcg@10"])
    # Pop recommends the same head to everyone: with history kept, seen head items push targets down
    excluded = json.loads((pop_run / "metrics.json").read_text())["test"]
    assert kept["test"]["hr@10"] < excluded["hr@10"]


def test_recommend_prints_raw_ids_and_titles(pop_run, capsys):
    from genrec.training.runs import load_run

    ds = load_run(pop_run).dataset
    capsys.readouterr()
    assert main(["recommend", str(pop_run), "--user", "7", "-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "user 7" in lines[0] and len(lines) == 4
    for line in lines[1:]:
        raw_id = line.split()[1]
        assert str(ds.item_title[ds.item_ids.index(raw_id)]) in line
    capsys.readouterr()
    assert main(["recommend", str(pop_run), "--history", "5,9", "-k", "4", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)["items"]
    assert len(rec) == 4 and {"5", "9"}.isdisjoint(str(r["item_id"]) for r in rec)
    assert all(r["title"] for r in rec)


def test_unknown_user_suggests_history(pop_run, capsys):
    err = err_of(capsys, ["recommend", str(pop_run), "--user", "no-such-user"])
    assert "unknown user id 'no-such-user'" in err and "--history" in err


def test_history_with_unknown_item(pop_run, capsys):
    err = err_of(capsys, ["recommend", str(pop_run), "--history", "5,no-such-item"])
    assert "unknown item id 'no-such-item'" in err and "--history" in err


def test_block_file_with_unknown_item_names_file_and_line(pop_run, tmp_path, capsys):
    block = tmp_path / "block.txt"
    block.write_text("5\nbogus\n")
    err = err_of(capsys, ["recommend", str(pop_run), "--user", "7", "--block", str(block)])
    assert f"{block}:2" in err and "bogus" in err


def test_unknown_model_lists_alternatives(tmp_path, capsys):
    err = err_of(capsys, ["train", "--synthetic", "--model", "nope", "--out", str(tmp_path / "r")])
    assert "unknown model 'nope'" in err and "ease" in err and "pop" in err


def test_unknown_dataset_lists_alternatives(capsys):
    err = err_of(capsys, ["data", "prepare", "--dataset", "no-such-set"])
    assert "unknown dataset 'no-such-set'" in err and "ml-1m" in err and "--data" in err


def test_missing_file(tmp_path, capsys):
    missing = tmp_path / "nothing-here.csv"
    err = err_of(capsys, ["data", "prepare", "--data", str(missing)])
    assert str(missing) in err and "no such file" in err


def test_empty_after_filtering(tmp_path, capsys):
    err = err_of(
        capsys, ["train", "--synthetic", "--model", "pop", "--min-user", "1000", "--out", str(tmp_path / "r")]
    )
    assert "no interactions left after filtering" in err and "loosen" in err


def test_bad_set_key_lists_settings(tmp_path, capsys):
    err = err_of(
        capsys, ["train", "--synthetic", "--model", "ease", "--set", "lamda=5", "--out", str(tmp_path / "r")]
    )
    assert "lamda" in err and "l2" in err and "l2_grid" in err
    err = err_of(
        capsys, ["train", "--synthetic", "--model", "ease", "--set", "l2", "--out", str(tmp_path / "r")]
    )
    assert "KEY=VALUE" in err


@pytest.mark.parametrize("bad", ["0", "ten", "10,-5", ""])
def test_bad_k(pop_run, capsys, bad):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(pop_run), "--k", bad])
    assert e.value.code != 0
    assert "--k" in capsys.readouterr().err


def test_bad_list_length(pop_run, capsys):
    with pytest.raises(SystemExit) as e:
        main(["recommend", str(pop_run), "--user", "7", "-k", "0"])
    assert e.value.code != 0 and "-k" in capsys.readouterr().err


def test_help_explains(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "train" in out and "evaluate" in out and "recommend" in out
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    out = capsys.readouterr().out
    assert "ties" in out and "history" in out and "--json" in out


@pytest.mark.slow
def test_console_script_exit_status():
    """The installed `genrec` script propagates the exit status and writes errors to stderr."""
    exe = Path(sys.executable).with_name("genrec")
    bad = subprocess.run(
        [str(exe), "data", "prepare", "--dataset", "no-such-set"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert "genrec: error: unknown dataset 'no-such-set'" in bad.stderr and "ml-100k" in bad.stderr


def test_evaluate_something_that_is_not_a_run(tmp_path, capsys):
    err = err_of(capsys, ["evaluate", str(tmp_path)])
    assert str(tmp_path) in err and "not a genrec run directory" in err and "genrec train" in err


def test_demo_trains_evaluates_and_recommends(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--models", "pop,nope"]) == 0
    out = capsys.readouterr().out
    assert "skipping unknown model 'nope'" in out and "pop generates, by top-k" in out
    assert (tmp_path / "pop" / "metrics.json").is_file()
    assert "== feedback: 600 clicks from 150 shoppers" in out and "held-back NDCG@10" in out
    assert (tmp_path / "report.html").is_file() and "report:" in out


@pytest.mark.slow  # trains a tiny HSTU
def test_demo_generates_with_reasons_and_updates(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "hstu generates, by beam search (beam 4)" in out and "because you read" in out
    for name in ("pop", "ease", "hstu"):
        assert (tmp_path / name / "metrics.json").is_file()
    assert "published v0002" in out or "rejected" in out
    assert (tmp_path / "hstu" / "versions" / "CURRENT").is_file()
    assert "Training and validation curves" in (tmp_path / "report.html").read_text()
