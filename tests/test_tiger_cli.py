"""`genrec train --model tiger` and `genrec items add`: cold-start items through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genrec.cli import main
from genrec.generation import Constraints, generate
from genrec.training.runs import load_run

TINY = [
    "text_encoder=tfidf",
    "levels=2",
    "codebook_size=8",
    "rq_latent=8",
    "rq_hidden=[32]",
    "rq_epochs=10",
    "d_model=16",
    "n_layers=1",
    "max_len=10",
    "epochs=2",
    "threads=1",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiger"
    n = torch.get_num_threads()
    args = ["train", "--synthetic", "--model", "tiger", "--out", str(out)]
    for s in TINY:
        args += ["--set", s]
    assert main(args) == 0
    torch.set_num_threads(n)
    return out


def test_train_reports_rqvae(run_dir, capsys):
    info = json.loads((run_dir / "model" / "model.json").read_text())["fit_info"]
    assert info["rqvae"]["unique_after_collision_level"] == 1.0
    assert len(info["rqvae"]["codebook_usage"]) == 2 and "collision_rate" in info["rqvae"]
    assert "collision rate" in (run_dir / "train.log").read_text()


def test_items_add_then_recommend(run_dir, tmp_path, capsys):
    csv = tmp_path / "new.csv"
    csv.write_text(
        "item_id,title,categories,price\n9001,Illustrated jazz guide no. 9001,jazz,12.5\n"
        '9002,"Pocket chess guide, no. 9002",chess,\n'
    )
    assert main(["items", "add", str(run_dir), str(csv)]) == 0
    assert "9001" in capsys.readouterr().out
    run = load_run(run_dir)
    n = run.dataset.n_items
    assert run.model.n_items_ == n and run.dataset.item_raw[-2:].tolist() == [9001, 9002]
    assert run.dataset.item_title[-1] == "Pocket chess guide, no. 9002"
    new = run.dataset.item_ids.indices([9001, 9002])
    hist = run.dataset.full_history(np.arange(1, 41))
    items = generate(run.model, hist, 2, "beam", Constraints(allowed=new), beam_size=4).items
    assert sorted(set(items.ravel().tolist())) == sorted(new.tolist())
    items = generate(run.model, hist, 20, "beam", beam_size=30).items
    for row in items:
        assert len(set(row.tolist())) == 20 and row.min() >= 1 and row.max() <= n
    # the CLI sees the new ids too
    allow = tmp_path / "allow.txt"
    allow.write_text("9001\n9002\n")
    assert main(["recommend", str(run_dir), "--user", "1", "-k", "2", "--allow", str(allow), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert sorted(r["item_id"] for r in got["items"]) == ["9001", "9002"]
    # adding the same id again is refused
    assert main(["items", "add", str(run_dir), str(csv)]) == 2
    assert "already in the catalogue" in capsys.readouterr().err


def test_cli_beam_decodes_over_the_trie(run_dir, tmp_path, capsys):
    """`--strategy beam` on tiger reaches the trie decoder: valid, distinct, eligible items with the
    exact log p(item | history) as score, blocked items never."""
    run = load_run(run_dir)
    ds = run.dataset
    capsys.readouterr()
    assert main(["recommend", str(run_dir), "--user", "2", "-k", "8", "--strategy", "beam", "--json"]) == 0
    free = json.loads(capsys.readouterr().out)["items"]
    block = tmp_path / "block.txt"
    block.write_text("\n".join(r["item_id"] for r in free[:3]))
    args = ["--user", "2", "-k", "8", "--strategy", "beam", "--block", str(block), "--json"]
    assert main(["recommend", str(run_dir), *args]) == 0
    got = json.loads(capsys.readouterr().out)["items"]
    ids = [r["item_id"] for r in got]
    seen = set(ds.item_ids.ids(ds.full_history(ds.user_ids.indices(["2"])).items))
    assert len(ids) == 8 == len(set(ids)) and not set(ids) & seen
    assert not set(ids) & {r["item_id"] for r in free[:3]} and set(ids) <= set(ds.item_ids.raw[1:].tolist())
    hist = ds.full_history(ds.user_ids.indices(["2"]))
    exact = run.model.score(hist)[0, torch.from_numpy(ds.item_ids.indices(ids))].numpy()
    np.testing.assert_allclose([r["score"] for r in got], exact, atol=1e-4)


@pytest.mark.parametrize(
    "body,where",
    [
        ("item_id,name\n1,x\n", ":1:title: missing column"),
        ("item_id,title\n9100,ok\n9101,\n", ":3:title: empty"),
        ("item_id,title,price\n9100,ok,cheap\n", ":2:price: 'cheap' is not a number"),
        ("item_id,title\nabc,ok\n", ":2:item_id: 'abc' is not an integer"),
        ("item_id,title\n9100,a\n9100,b\n", ":3:item_id: '9100' repeats line 2"),
        ("item_id,title,colour\n9100,a,red\n", ":1:colour: unknown column"),
    ],
)
def test_bad_csv_names_line_and_field_and_changes_nothing(run_dir, tmp_path, capsys, body, where):
    before = (run_dir / "model" / "model.safetensors").read_bytes()
    csv = tmp_path / "bad.csv"
    csv.write_text(body)
    assert main(["items", "add", str(run_dir), str(csv)]) == 2
    err = capsys.readouterr().err
    assert f"{csv}{where}" in err, err
    assert (run_dir / "model" / "model.safetensors").read_bytes() == before


def test_items_add_refuses_id_only_models(tmp_path, capsys):
    out = tmp_path / "pop"
    assert main(["train", "--synthetic", "--model", "pop", "--out", str(out)]) == 0
    csv = tmp_path / "new.csv"
    csv.write_text("item_id,title\n9001,x\n")
    assert main(["items", "add", str(out), str(csv)]) == 2
    assert "cannot add items" in capsys.readouterr().err
