"""`genrec train` as a user meets it: typed settings checked before anything is read or written, runs
never overwritten silently, a clean Ctrl-C that says how to resume, and runs that work when moved."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from genrec.cli import main


def test_bad_setting_exits_2_with_one_line_and_no_run_folder(tmp_path, capsys, shared_data):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            str(shared_data / "ml-100k"),
            "--model",
            "ease",
            "--set",
            "l2=abc",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "l2 expects number, got 'abc'" in err
    assert not list(tmp_path.iterdir())  # no run folder, no partial folder


@pytest.mark.parametrize(
    "setting, expected",
    [
        ("l2_grid=5,x", "l2_grid expects list of number"),
        ("size=[1]", "ease has no setting 'size'"),
        ("amp=maybe", "amp expects true/false"),
    ],
)
def test_more_bad_settings(tmp_path, capsys, setting, expected):
    args = ["train", "--synthetic", "--model", "ease", "--set", setting, "--out", str(tmp_path / "r")]
    assert main(args) == 2
    assert expected in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_config_file_and_resolved_configuration_saved(tmp_path, capsys):
    cfg = tmp_path / "ease.toml"
    cfg.write_text('model = "ease"\nl2 = 123.0\nthreads = 1\n')
    out = tmp_path / "run"
    assert main(["train", "--synthetic", "--config", str(cfg), "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())["run"]
    assert saved["model"] == "ease" and saved["model_config"]["l2"] == 123.0
    assert saved["model_config"]["l2_grid"][0] == 10.0  # every default, not only what was set
    assert saved["train"] == {
        "seed": 0,
        "threads": 1,
        "max_minutes": 0.0,
        "device": "auto",
        "amp": True,
        "compile": "auto",
        "log": "csv",
    }


def test_device_flags_reach_the_saved_configuration(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--synthetic", "--model", "pop", "--out", str(out), "--device", "cpu"]
    assert main(args + ["--compile", "off", "--no-amp"]) == 0
    saved = json.loads((out / "config.json").read_text())["run"]["train"]
    assert (saved["device"], saved["compile"], saved["amp"]) == ("cpu", "off", False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_device_cuda_without_a_gpu_fails_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--synthetic", "--model", "sasrec", "--size", "tiny", "--out", str(out)]
    assert main(args + ["--device", "cuda"]) != 0
    assert "no CUDA GPU is visible" in capsys.readouterr().err
    assert not out.exists()  # nothing half-written


def test_existing_run_needs_force(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--synthetic", "--model", "pop", "--out", str(out)]
    assert main(args) == 0
    assert main(args) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0


def test_models_lists_every_default(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "l2_grid=10.0,50.0,100.0" in out and "..." not in out
    assert "training settings (every model): seed=0, threads=0, max_minutes=0.0" in out


@pytest.mark.slow  # a real subprocess trains until it is interrupted
def test_ctrl_c_saves_and_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    args = [
        "train",
        "--synthetic",
        "--model",
        "sasrec",
        "--size",
        "tiny",
        "--set",
        "epochs=30",  # no early stop: the interrupt lands mid-training
        "--set",
        "patience=30",
        "--set",
        "lr=0.05",
        "--set",
        "threads=1",
        "--set",
        "max_len=20",
        "--out",
        str(out),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # a shell without job control starts background jobs with SIGINT ignored, and Python keeps it
    # ignored: give the child the default disposition, as an interactive terminal would
    p = subprocess.Popen(
        [sys.executable, "-m", "genrec.cli", *args],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    err = ""
    deadline = time.time() + 120
    while "epoch 2/30" not in err and time.time() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        err += line
    p.send_signal(signal.SIGINT)
    rest = p.communicate(timeout=60)[1]
    err += rest
    assert p.returncode == 130, err
    assert "Traceback" not in err, err
    assert "resume with: genrec train --synthetic --model sasrec" in rest
    assert rest.rstrip().endswith("--resume")
    assert not out.exists() and (tmp_path / "run.partial" / "checkpoints" / "last.pt").exists()
    # the printed command resumes it (same settings are required)
    assert main(args + ["--resume"]) == 0
    assert out.exists() and not (tmp_path / "run.partial").exists()
    log = (out / "train.log").read_text()
    assert "resumed from" in log and "np.float64" not in log


def test_moved_run_gives_identical_recommendations(tmp_path, capsys, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GENREC_CACHE_DIR", str(cache))
    out = tmp_path / "a" / "run"
    assert main(["train", "--synthetic", "--model", "ease", "--set", "l2=50", "--out", str(out)]) == 0
    capsys.readouterr()
    rec = ["recommend", str(out), "--user", "7", "-k", "10", "--json"]
    assert main(rec) == 0
    before = capsys.readouterr().out
    moved = tmp_path / "b" / "moved"
    shutil.copytree(out, moved)
    shutil.rmtree(out.parent)
    shutil.rmtree(cache)
    monkeypatch.chdir(tmp_path)
    assert main(["recommend", str(moved), "--user", "7", "-k", "10", "--json"]) == 0
    assert capsys.readouterr().out == before
    # ... and serves the same list
    from fastapi.testclient import TestClient

    from genrec.serving.app import create_app
    from genrec.serving.engine import Engine
    from genrec.serving.events import open_store

    engine = Engine(str(moved), open_store(f"sqlite:///{tmp_path / 'events.db'}"))
    with TestClient(create_app(engine, api_key="k", watch_interval_s=0)) as client:
        r = client.get("/recommend", params={"user_id": "7", "k": 10}, headers={"X-API-Key": "k"})
    assert r.status_code == 200
    assert [x["item_id"] for x in r.json()["items"]] == [x["item_id"] for x in json.loads(before)["items"]]
    assert not cache.exists()  # nothing was rebuilt


def test_model_auto_keeps_the_best_on_validation_and_says_why(tmp_path, capsys):
    out = tmp_path / "auto"
    assert (
        main(["train", "--synthetic", "--model", "auto", "--candidates", "pop,ease", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    sel = json.loads((out / "selection.json").read_text())
    assert sel["picked"] == "ease" and set(sel["candidates"]) == {"pop", "ease"}
    assert sel["candidates"]["ease"]["valid_ndcg@10"] > sel["candidates"]["pop"]["valid_ndcg@10"]
    assert "ease has the best validation NDCG@10" in printed and "kept ease" in printed
    assert json.loads((out / "config.json").read_text())["run"]["model"] == "ease"
    # each candidate's test figure is reported beside the choice (made on validation)
    kept = json.loads((out / "metrics.json").read_text())
    assert sel["candidates"]["ease"]["test_ndcg@10"] == kept["test"]["ndcg@10"]
    assert not (tmp_path / "auto.auto").exists()  # the other candidates' runs are gone
    assert main(["evaluate", str(out), "--json"]) == 0  # an ordinary run
    capsys.readouterr()
    assert (
        main(["train", "--synthetic", "--model", "auto", "--set", "l2=5", "--out", str(tmp_path / "b")]) == 2
    )
    assert "training settings only" in capsys.readouterr().err
    assert (
        main(
            ["train", "--synthetic", "--model", "auto", "--candidates", "ease", "--out", str(tmp_path / "c")]
        )
        == 2
    )
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
