"""`genrec recommend --strategy ...` and `genrec export`: JSON schema, raw ids, constraints, Parquet."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

from genrec.cli import main
from genrec.generation import Generator
from genrec.generation.export import export_embeddings, read_embeddings
from genrec.training.runs import load_run


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: extra threads only add synchronisation
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def ease_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen-cli") / "ease"
    args = ["train", "--synthetic", "--model", "ease", "--set", "l2=100", "--k", "10", "--out", str(out)]
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def seq_run(tmp_path_factory):
    """A next-item model (SASRec tiny, one epoch): beam search and sampling apply."""
    out = tmp_path_factory.mktemp("gen-cli") / "sasrec"
    args = [
        "train",
        "--synthetic",
        "--model",
        "sasrec",
        "--size",
        "tiny",
        "--set",
        "epochs=1",
        "--set",
        "threads=1",
        "--k",
        "10",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    return out


def recommend_json(capsys, run, *args) -> dict:
    capsys.readouterr()
    assert main(["recommend", str(run), "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("strategy", ["topk", "beam", "sample"])
def test_recommend_json_schema_and_constraints(strategy, seq_run, capsys, tmp_path):
    ds = load_run(seq_run).dataset
    user = str(ds.user_raw[5])
    seen = {str(ds.item_raw[i]) for i in ds.full_history(np.array([5])).items}
    out = recommend_json(
        capsys, seq_run, "--user", user, "-k", "10", "--strategy", strategy, "--beam-size", "3"
    )
    assert set(out) == {"user_id", "items"} and out["user_id"] == user
    assert len(out["items"]) == 10 and all(set(r) == {"item_id", "score", "title"} for r in out["items"])
    ids = [r["item_id"] for r in out["items"]]
    assert all(isinstance(i, str) for i in ids)
    assert len(set(ids)) == 10 and not set(ids) & seen and set(ids) <= set(ds.item_ids.raw[1:].tolist())
    titles = {str(ds.item_raw[i]): t for i, t in enumerate(ds.item_title)}
    assert all(titles[r["item_id"]] == r["title"] for r in out["items"])
    # constraints from files of raw ids, and a category cap
    block = tmp_path / "block.txt"
    block.write_text("\n".join(str(i) for i in ids[:3]) + "\n")
    out2 = recommend_json(
        capsys,
        seq_run,
        "--user",
        user,
        "-k",
        "10",
        "--strategy",
        strategy,
        "--block",
        str(block),
        "--category-cap",
        "2",
    )
    ids2 = [r["item_id"] for r in out2["items"]]
    assert len(ids2) == 10 and not set(ids2) & set(ids[:3])
    cat = {str(ds.item_raw[i]): c for i, c in enumerate(ds.item_category)}
    assert max(Counter(cat[i] for i in ids2).values()) <= 2
    allow = tmp_path / "allow.txt"
    allow.write_text("\n".join(str(i) for i in ids[3:8]))
    out3 = recommend_json(
        capsys, seq_run, "--user", user, "-k", "10", "--strategy", strategy, "--allow", str(allow)
    )
    assert sorted(r["item_id"] for r in out3["items"]) == sorted(ids[3:8])


def test_recommend_sampling_seeded_and_text_output(seq_run, capsys):
    args = ["--user", "3", "-k", "8", "--strategy", "sample", "--temperature", "2", "--top-p", "0.9"]
    a = recommend_json(capsys, seq_run, *args, "--seed", "1")
    b = recommend_json(capsys, seq_run, *args, "--seed", "1")
    c = recommend_json(capsys, seq_run, *args, "--seed", "2")
    assert a == b and a != c
    assert main(["recommend", str(seq_run), "--user", "3", "-k", "5", "--strategy", "beam"]) == 0
    text = capsys.readouterr().out
    assert "beam search (beam 4)" in text and len(text.strip().splitlines()) == 6


def test_recommend_bad_input(ease_run, seq_run, capsys, tmp_path):
    bad = tmp_path / "block.txt"
    bad.write_text("no-such-item\n")
    assert main(["recommend", str(ease_run), "--user", "3", "--block", str(bad)]) == 2
    assert "no-such-item" in capsys.readouterr().err
    assert main(["recommend", str(seq_run), "--user", "3", "--strategy", "beam", "--beam-size", "0"]) == 2
    assert "beam_size" in capsys.readouterr().err
    assert main(["recommend", str(ease_run), "--user", "nobody"]) == 2
    assert "unknown user id 'nobody'" in capsys.readouterr().err


def test_recommend_k_is_bounded(ease_run, capsys):
    assert main(["recommend", str(ease_run), "--user", "3", "-k", "1001"]) == 2
    err = capsys.readouterr().err
    assert "-k 1001" in err and "limit of 1000" in err
    assert main(["recommend", str(ease_run), "--user", "3", "-k", "1000", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["items"]) < 1000  # the catalogue is smaller


@pytest.mark.parametrize("strategy", ["beam", "sample"])
def test_beam_and_sample_refused_for_ease(strategy, ease_run, capsys):
    capsys.readouterr()
    assert main(["recommend", str(ease_run), "--user", "3", "--strategy", strategy]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("genrec: error: ease scores are not a distribution over next items")
        and "use strategy topk" in lines[0]
    )
    with pytest.raises(ValueError, match="ease scores are not a distribution over next items"):
        Generator.from_run(ease_run).recommend(["3"], k=5, strategy=strategy)


def test_batched_api_matches_cli(seq_run, capsys):
    gen = Generator.from_run(seq_run)
    users = ["3", "7", "11"]
    lists = gen.recommend(users, k=6, strategy="beam", beam_size=3, category_cap=2)
    for u, rec in zip(users, lists):
        cli = recommend_json(
            capsys,
            seq_run,
            "--user",
            u,
            "-k",
            "6",
            "--strategy",
            "beam",
            "--beam-size",
            "3",
            "--category-cap",
            "2",
        )
        assert rec["user_id"] == u
        assert [r["item_id"] for r in rec["items"]] == [r["item_id"] for r in cli["items"]]
    raw = gen.dataset.item_raw
    adhoc = gen.recommend(histories=[[raw[1], raw[2]]], k=4, strategy="sample")
    assert adhoc[0]["user_id"] is None and len(adhoc[0]["items"]) == 4
    # an int id names the same user; the output id is the dataset's id as a string
    assert gen.recommend([3], k=4)[0] == gen.recommend(["3"], k=4)[0]
    assert gen.recommend([3])[0]["user_id"] == "3"


def test_explanations_from_python(ease_run):
    gen = Generator.from_run(ease_run)
    rec = gen.recommend(["5"], k=4, explain=True)[0]
    history = set(gen.dataset.item_ids.ids(gen.histories(["5"]).row(0)))
    B = gen.model.B_
    for r in rec["items"]:
        assert r["because"] and set(r["because"]) <= history
        i = gen.dataset.item_ids.index(r["item_id"])
        w = [float(B[gen.dataset.item_ids.index(h), i]) for h in r["because"]]
        assert w == sorted(w, reverse=True) and w[-1] > 0  # EASE: the deltas are B[h, i]


def test_export_ease_fallback_and_pop_error(ease_run, tmp_path, capsys):
    out = tmp_path / "emb.parquet"
    assert main(["export", str(ease_run), "--out", str(out)]) == 0
    assert "no user states" in capsys.readouterr().out
    tables, meta = read_embeddings(out)
    run = load_run(ease_run)
    ids, vecs = tables["item"]
    assert ids == [str(x) for x in run.dataset.item_raw[1:]] and len(tables["user"][0]) == 0
    np.testing.assert_allclose(vecs, run.model.B_[1:, 1:].numpy())
    assert meta["model"] == "ease" and meta["dim"] == run.dataset.n_items
    pop = tmp_path / "pop"
    assert main(["train", "--synthetic", "--model", "pop", "--k", "10", "--out", str(pop)]) == 0
    capsys.readouterr()
    assert main(["export", str(pop), "--out", str(tmp_path / "x.parquet")]) == 2
    assert "no latent features" in capsys.readouterr().err


def test_export_sequence_model_vectors_reproduce_scores(synthetic_ds, tmp_path):
    from test_generation import DecayRNN

    model = DecayRNN(synthetic_ds.n_items)
    meta = export_embeddings(model, synthetic_ds, tmp_path / "e.parquet")
    tables, meta2 = read_embeddings(tmp_path / "e.parquet")
    assert meta == meta2 and meta["n_users"] == synthetic_ds.n_users and meta["dim"] == 16
    item_ids, items = tables["item"]
    user_ids, users = tables["user"]
    assert items.dtype == np.float32 and items.shape == (synthetic_ds.n_items, 16)
    assert user_ids == [str(x) for x in synthetic_ds.user_raw[1:]]
    # user . item = the model's score for that user's full history
    h = synthetic_ds.full_history(np.array([1, 2, 3]))
    np.testing.assert_allclose(3 * users[:3] @ items.T, model.score(h)[:, 1:].numpy(), rtol=1e-4, atol=1e-5)
    assert item_ids[0] == str(synthetic_ds.item_raw[1]) and torch.is_tensor(model.item_embeddings())
