"""Data-parallel training on torch.distributed (gloo, CPU): two processes through the one loop.

Every iterative model trains in 2 processes with identical weights on both at the end (gradients
averaged at every update), a 2-process checkpoint resumes in 1 process, and `genrec train --nproc 2`
writes one run from rank 0."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from test_contract import ONE, make, tiny_ds  # noqa: F401 - tiny_ds is a fixture

from genrec.cli import main
from genrec.models import REGISTRY, Recommender
from genrec.models.base import Trainable
from genrec.training import fit

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ITERATIVE = sorted(n for n in REGISTRY if isinstance(make(n), Trainable))

WORKER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    sys.path[:0] = [{tests!r}]
    from test_contract import ONE, StopAfter, make
    from genrec.data.cache import prepare
    from genrec.data.synthetic import SyntheticConfig, generate
    from genrec.data.types import DataConfig
    from genrec.training import TrainingInterrupted, fit

    out, rank = Path({out!r}), int(sys.argv[1])
    ds = prepare(generate(SyntheticConfig(n_users=300, n_items=120, max_len=30)), DataConfig(), cache=False)
    for name in {names!r}:
        model = fit(make(name), ds, ONE)
        model.save(out / f"{{name}}-rank{{rank}}")
        try:
            fit(make(name), ds, ONE, checkpoint_dir=out / "ckpt" / name, callbacks=(StopAfter(2),))
        except TrainingInterrupted:
            pass
    """
)


def spawn_two(script: Path, timeout: int = 600) -> list[str]:
    """Run `script` as ranks 0 and 1 of a 2-process gloo group; both must exit with 0. Their outputs."""
    env = dict(
        os.environ,
        WORLD_SIZE="2",
        LOCAL_WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
        PYTHONPATH=str(REPO / "src"),
    )
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(r)],
            env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    outs = [p.communicate(timeout=timeout)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(outs)
    return outs


def run_two(tmp_path, names: list[str]) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(REPO / "tests"), out=str(tmp_path), names=names))
    spawn_two(script)


@pytest.mark.slow
def test_two_processes_keep_one_model_and_resume_in_one(tmp_path, tiny_ds):  # noqa: F811
    run_two(tmp_path, ITERATIVE)
    h = tiny_ds.test.history.take(slice(0, 25))
    for name in ITERATIVE:
        r0, r1 = (Recommender.load(tmp_path / f"{name}-rank{r}") for r in range(2))
        assert torch.equal(r0.score(h), r1.score(h)), name  # both processes hold the same weights
        assert r0.fit_info_["processes"] == 2
        if name != "tiger":  # averaged gradients keep the weights equal with no help after any epoch
            assert r0.fit_info_["resyncs"] == 0, name
        # the 2-process checkpoint after 2 epochs, resumed here in one process, ends where 2 processes do
        resumed = fit(make(name), tiny_ds, ONE, checkpoint_dir=tmp_path / "ckpt" / name, resume=True)
        curve = [r for p in resumed.fit_info_["phases"] for r in p["curve"]]
        two = [r for p in r0.fit_info_["phases"] for r in p["curve"]]
        assert [r["epoch"] for r in curve] == [r["epoch"] for r in two], name
        losses = [{k: v for k, v in r.items() if k.endswith("loss")} for r in (curve[0], two[0])]
        assert losses[0] and losses[0] == pytest.approx(losses[1]), name  # the checkpoint's epochs
        assert resumed.fit_info_["processes"] == 1


@pytest.mark.slow
def test_genrec_train_nproc_writes_one_run(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--synthetic", "--model", "sasrec", "--size", "tiny", "--set", "epochs=2"]
    code = main([*args, "--set", "threads=1", "--set", "max_len=20", "--nproc", "2", "--out", str(out)])
    assert code == 0
    info = json.loads((out / "model" / "model.json").read_text())["fit_info"]
    assert info["processes"] == 2 and info["epochs"] == 2
    log = (out / "train.log").read_text()
    assert log.count("sasrec epoch 1/2") == 1  # rank 0 alone logs
    assert json.loads((out / "metrics.json").read_text())["test"]["ndcg@10"] > 0
    assert not list(tmp_path.glob("*.partial*"))
    assert main([*args, "--nproc", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--nproc must be >= 1" in capsys.readouterr().err


EXIT_WORKER = textwrap.dedent(
    """
    import atexit, torch, torch.distributed as dist
    # registered first, so it runs last: after genrec's own exit handler
    atexit.register(lambda: print("initialized at exit:", dist.is_initialized(), flush=True))
    from genrec.training import distributed
    assert distributed.init(torch.device("cpu"))
    t = torch.ones(3)
    dist.all_reduce(t)
    print("sum", t.tolist(), flush=True)
    """
)


@pytest.mark.slow
def test_processes_leave_their_group_before_the_interpreter_ends(tmp_path):
    # a gloo group left to the interpreter's teardown can abort a process that finished its work
    script = tmp_path / "exit.py"
    script.write_text(EXIT_WORKER)
    for out in spawn_two(script, timeout=120):
        assert "sum [2.0, 2.0, 2.0]" in out and "initialized at exit: False" in out, out
