"""Semantic-ID generative retrieval (tiger): RQ-VAE, trie-constrained generation, cold start.

One small model is trained once (TF-IDF text encoder, 2 x 16 codes) on the synthetic data with 5% of
the items held out entirely; the held-out items are then added from their text alone.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from genrec.data.cache import prepare
from genrec.data.dataset import Histories
from genrec.data.splits import without_items
from genrec.data.synthetic import generate
from genrec.data.types import DataConfig
from genrec.evaluation import evaluate
from genrec.generation import Constraints
from genrec.generation import generate as generate_lists
from genrec.models import Recommender, get_model_class
from genrec.models.base import CodeTrieModel
from genrec.models.rqvae import add_collision_level, extend_collision_level, uniqueness
from genrec.models.tiger import TigerConfig
from genrec.training import Callback, TrainConfig, TrainingInterrupted, fit

SMALL = dict(
    text_encoder="tfidf",
    levels=2,
    codebook_size=16,
    rq_latent=16,
    rq_hidden=[64],
    rq_epochs=60,
    d_model=32,
    n_layers=1,
    n_heads=2,
    max_len=20,
    epochs=12,
    batch_size=128,
    patience=3,
    dropout=0.1,
    lr=5e-3,
)
TRAIN = TrainConfig(threads=1)  # tiny models on shared CPUs: threads only add contention


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on shared CPUs: threads only add contention
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def cold_setup():
    """(dataset without the cold items, cold items' metadata, trained model)."""
    raw = generate()
    cold = np.arange(1, 401)[np.arange(1, 401) % 20 == 0]  # 20 of 400 items: 5%
    raw.interactions = raw.interactions[~raw.interactions["item"].isin(cold)].reset_index(drop=True)
    cold_meta = raw.items.loc[cold]
    raw.items = raw.items.drop(index=cold)
    ds = prepare(raw, DataConfig(), cache=False)
    model = fit(get_model_class("tiger")(TigerConfig(**SMALL)), ds, TRAIN)
    return ds, cold_meta, model


def _with_cold(cold_setup):
    ds, meta, model = cold_setup
    model = copy.deepcopy(model)
    texts = [f"{t}; Categories: {c}" for t, c in zip(meta["title"], meta["categories"])]
    new = model.add_items(texts)
    return model, new


def _assert_valid_lists(items: np.ndarray, hist: Histories, n_items: int) -> None:
    for b in range(len(items)):
        row = items[b][items[b] > 0]
        assert len(row) == len(set(row.tolist())), "duplicate items in a list"
        assert row.min() >= 1 and row.max() <= n_items
        assert not set(row.tolist()) & set(hist.row(b).tolist()), "a seen item was generated"


def test_rqvae_reconstruction_improves_and_reports(cold_setup):
    ds, _, model = cold_setup
    rep = model.fit_info_["rqvae"]
    assert rep["recon_loss"] < 0.5 * rep["recon_loss_init"]  # trained well past its k-means start
    assert len(rep["codebook_usage"]) == 2 and all(0 < u <= 1 for u in rep["codebook_usage"])
    assert rep["codebook_usage"][0] == 1.0  # dead-code reset + k-means: every first-level code in use
    assert 0 <= rep["collision_rate"] <= 1 and rep["n_items"] == ds.n_items
    phase = model.fit_info_["phases"][0]
    assert (phase["name"], phase["epochs"], phase["metric"]) == ("rq-vae", SMALL["rq_epochs"], None)
    assert phase["curve"][-1]["recon"] < phase["curve"][0]["recon"]
    codes = model.rqvae_.codes(torch.randn(5, model.rqvae_.encoder[0].in_features))
    assert codes.shape == (5, 2) and codes.max() < 16


def test_rqvae_cache_reuses_the_trained_model(synthetic_ds, tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path))
    cfg = TigerConfig(**{**SMALL, "rq_epochs": 3, "epochs": 1})
    first = fit(get_model_class("tiger")(cfg), synthetic_ds, TRAIN)
    again = fit(get_model_class("tiger")(cfg), synthetic_ds, TRAIN)
    assert [p["epochs"] for p in first.fit_info_["phases"]] == [3, 1]
    assert [p["epochs"] for p in again.fit_info_["phases"]] == [0, 1]  # no RQ-VAE training
    assert again.fit_info_["rqvae"]["cached"] and "cached" not in first.fit_info_["rqvae"]
    assert again.fit_info_["rqvae"]["collision_rate"] == first.fit_info_["rqvae"]["collision_rate"]
    assert torch.equal(first.codes_, again.codes_)
    other = fit(get_model_class("tiger")(cfg), synthetic_ds, TrainConfig(threads=1, seed=1))
    assert other.fit_info_["phases"][0]["epochs"] == 3  # another seed is another RQ-VAE
    assert len(list((tmp_path / "rqvae").glob("rqvae-*.pt"))) == 2


def test_collision_level_makes_ids_unique():
    codes = np.array([[1, 2], [1, 2], [0, 0], [1, 2], [0, 1]])
    full = add_collision_level(codes)
    assert uniqueness(codes) < 1 and uniqueness(full) == 1.0
    assert full[:, 2].tolist() == [0, 1, 0, 2, 0]
    more = extend_collision_level(full, np.array([[1, 2], [0, 1], [3, 3], [1, 2]]))
    assert more[:, 2].tolist() == [3, 1, 0, 4]
    assert uniqueness(np.r_[full, more]) == 1.0


@pytest.mark.slow
def test_trained_model_ids_unique_and_fit_info(cold_setup):
    ds, _, model = cold_setup
    codes = model.codes_[1:].numpy()
    assert len(codes) == ds.n_items and uniqueness(codes) == 1.0
    rq = model.fit_info_["rqvae"]
    assert {"recon_loss", "codebook_usage", "collision_rate"} <= set(rq)
    assert rq["unique_after_collision_level"] == 1.0
    info = model.fit_info_
    assert [p["name"] for p in info["phases"]] == ["rq-vae", "generator"]
    assert info["valid_metric"] == "ndcg@10" and info["best_valid"] > 0
    assert 1 <= info["phases"][1]["epochs"] <= SMALL["epochs"]
    assert info["stopped_by"] in {"epochs", "early stopping"}


@pytest.mark.slow
def test_time_budget_stops_training(cold_setup, tmp_path, monkeypatch):
    """The budget covers the whole fit and is checked between epochs: each phase runs one epoch."""
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path))
    ds, _, _ = cold_setup
    cfg = TigerConfig(**{**SMALL, "rq_epochs": 5, "epochs": 50, "patience": 50})
    model = fit(get_model_class("tiger")(cfg), ds, TrainConfig(threads=1, max_minutes=1e-6))
    assert model.fit_info_["stopped_by"] == "time budget"
    assert [p["epochs"] for p in model.fit_info_["phases"]] == [1, 1]
    assert model.fit_info_["epochs"] == 2
    assert not list(tmp_path.rglob("rqvae-*.pt"))  # an RQ-VAE cut short is not cached as a trained one


class StopAt(Callback):
    """Ctrl-C during the `n`-th epoch of `phase` (at its end, before its checkpoint is written)."""

    def __init__(self, phase: str, n: int) -> None:
        self.phase, self.n = phase, n

    def on_epoch_end(self, model, phase, row) -> None:
        if phase.name == self.phase:
            self.n -= 1
            if self.n == 0:
                raise KeyboardInterrupt


@pytest.mark.slow  # resume is also in the contract test
def test_resumed_run_equals_an_uninterrupted_one(synthetic_ds, tmp_path, monkeypatch):
    """Interrupted in the RQ-VAE phase, at the start of the generator phase and inside it, resumed from
    the checkpoints (the later resumes find the RQ-VAE the interrupted run cached): same codes, curves
    and scores as a run that was never interrupted."""
    cfg = TigerConfig(**{**SMALL, "rq_epochs": 6, "epochs": 4, "patience": 4})
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache-a"))
    straight = fit(get_model_class("tiger")(cfg), synthetic_ds, TRAIN)
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache-b"))
    model, ckpt = get_model_class("tiger")(cfg), tmp_path / "run"
    for stop, resume in (
        (StopAt("rq-vae", 2), False),
        (StopAt("generator", 1), True),
        (StopAt("generator", 3), True),
    ):
        with pytest.raises(TrainingInterrupted) as e:
            fit(model, synthetic_ds, TRAIN, checkpoint_dir=ckpt, callbacks=(stop,), resume=resume)
        assert e.value.checkpoint == ckpt / "last.pt"
        model = get_model_class("tiger")(cfg)  # a new process: nothing but the checkpoint survives
    fit(model, synthetic_ds, TRAIN, checkpoint_dir=ckpt, resume=True)
    assert model.fit_info_["rqvae"]["cached"]  # the replayed RQ-VAE phase took the cached model
    assert torch.equal(model.codes_, straight.codes_)

    def curves(m):
        return [
            [{k: v for k, v in r.items() if k not in ("seconds", "examples_per_s")} for r in p["curve"]]
            for p in m.fit_info_["phases"]
        ]

    assert curves(model) == curves(straight)
    h = synthetic_ds.test.history
    assert torch.equal(model.score(h), straight.score(h))


@pytest.mark.slow
def test_scores_are_exact_log_probs_and_beat_popularity(cold_setup):
    ds, _, model = cold_setup
    hist = ds.test.history.take(slice(0, 64))
    s = model.score(hist)
    assert s.shape == (64, ds.n_items + 1) and torch.isinf(s[:, 0]).all()
    total = torch.logsumexp(s[:, 1:], 1)  # a distribution over the catalogue
    assert torch.allclose(total, torch.zeros(64), atol=1e-4)
    from genrec.models.pop import MostPopular

    ndcg = evaluate(model.score, ds.test, ks=(10,))["ndcg@10"]
    pop = evaluate(MostPopular().fit(ds).score, ds.test, ks=(10,))["ndcg@10"]
    assert ndcg > 1.5 * pop


@pytest.mark.slow
def test_trie_beam_gives_valid_distinct_eligible_items(cold_setup):
    ds, _, model = cold_setup
    assert isinstance(model, CodeTrieModel) and model.next_item_logits
    hist = ds.test.history.take(slice(0, 50))
    for strategy in ("topk", "beam", "sample"):
        s = generate_lists(model, hist, 10, strategy, beam_size=20, seed=1)
        assert (s.items > 0).all()
        _assert_valid_lists(s.items, hist, ds.n_items)
    beam = generate_lists(model, hist, 10, "beam", beam_size=20)
    assert (np.diff(beam.scores, axis=1) <= 1e-6).all() and (beam.scores <= 0).all()
    # each beam score is the exact log p(item | history)
    exact = model.score(hist).gather(1, torch.from_numpy(beam.items)).numpy()
    np.testing.assert_allclose(beam.scores, exact, atol=1e-4)
    # beam search finds the same top items as ranking the exact scores when the beam is wide
    top = generate_lists(model, hist, 5, "topk")
    wide = generate_lists(model, hist, 5, "beam", beam_size=ds.n_items)
    assert (top.items == wide.items).mean() > 0.95
    allowed = np.arange(1, 60)
    blocked = np.arange(1, 30)
    s = generate_lists(model, hist, 10, "beam", Constraints(allowed=allowed, blocked=blocked), beam_size=15)
    got = s.items[s.items > 0]
    assert got.min() >= 30 and got.max() < 60
    _assert_valid_lists(s.items, hist, ds.n_items)
    # per-row blocked sets: row b never gets its own blocked items, and equals a call for that row alone
    free = generate_lists(model, hist.take(slice(0, 6)), 10, "beam", beam_size=12)
    per_row = [free.items[b][: b + 1] for b in range(6)]
    s = generate_lists(model, hist.take(slice(0, 6)), 10, "beam", Constraints(blocked=per_row), beam_size=12)
    for b in range(6):
        assert not set(s.items[b].tolist()) & set(per_row[b].tolist()) and (s.items[b] > 0).all()
        one = generate_lists(model, hist.take([b]), 10, "beam", Constraints(blocked=per_row[b]), beam_size=12)
        np.testing.assert_array_equal(s.items[b], one.items[0])
    # fewer eligible items than k: padded with 0 / -inf, never invalid
    s = generate_lists(
        model,
        hist.take([0]),
        10,
        "beam",
        Constraints(allowed=np.array([5, 6, 7]), exclude_seen=False),
        beam_size=10,
    )
    assert set(s.items[0][:3].tolist()) == {5, 6, 7} and (s.items[0][3:] == 0).all()
    assert np.isinf(s.scores[0][3:]).all()
    with pytest.raises(ValueError, match="category_cap is not supported by beam search over a code trie"):
        generate_lists(model, hist, 5, "beam", Constraints(category_cap=2, item_category=ds.item_category))


@pytest.mark.slow
def test_cold_start_items_reach_the_right_users(cold_setup):
    ds, meta, _ = cold_setup
    model, new = _with_cold(cold_setup)
    assert model.n_items_ == ds.n_items + len(meta) and uniqueness(model.codes_[1:].numpy()) == 1.0
    hist = ds.test.history
    items = generate_lists(model, hist, 3, "beam", Constraints(allowed=new), beam_size=10).items
    _assert_valid_lists(items, hist, model.n_items_)
    assert set(items.ravel().tolist()) <= set(new.tolist())
    # each user's favourite category (from the history) vs the recommended cold items' category
    cats = np.array(["", *ds.item_category[1:]])
    fav = np.array([max(set(c), key=list(c).count) for c in (cats[hist.row(b)] for b in range(len(hist)))])
    new_cat = dict(zip(new.tolist(), meta["categories"]))
    rec_cat = np.vectorize(new_cat.get)(items[:, 0])
    match = (rec_cat == fav).mean()
    chance = np.mean([np.mean(np.array(list(new_cat.values())) == f) for f in fav])
    # measured: 0.32-0.33 vs chance 0.13 with the default item-ID input (0.39 with codes-only input, whose
    # history encoder leans on the codes alone; ID dropout 0.25-0.5 did not bring it back: 0.33-0.34)
    assert match > 2 * chance, (match, chance)


@pytest.mark.slow
def test_save_load_round_trip(cold_setup, tmp_path):
    ds, _, _ = cold_setup
    model, _ = _with_cold(cold_setup)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    hist = ds.test.history.take(slice(0, 32))
    assert torch.equal(model.score(hist), loaded.score(hist))
    a = generate_lists(model, hist, 10, "beam", beam_size=12).items
    b = generate_lists(loaded, hist, 10, "beam", beam_size=12).items
    assert (a == b).all()


@pytest.mark.slow
def test_cold_items_in_the_catalogue_rank_above_chance():
    """Items with text but no interaction at training time (the benchmark's cold slice) must not be
    pushed below the others: the training softmax leaves them out, so they are ranked by their codes."""
    from genrec.data.dataset import EvalSet
    from genrec.data.splits import without_items
    from genrec.evaluation import evaluate

    ds = prepare(generate(), DataConfig(), cache=False)
    cold = np.arange(1, ds.n_items + 1)[np.arange(1, ds.n_items + 1) % 20 == 0]  # 5% of the items
    warm = without_items(ds, cold)
    codes_only = TigerConfig(**SMALL, id_input=False)
    model = fit(get_model_class("tiger")(codes_only), warm, TRAIN)
    assert model.net_.item_in is None
    assert model.fit_info_["items_in_training_softmax"] <= ds.n_items - len(cold)
    rows = np.flatnonzero(np.isin(warm.test.targets.items, cold))
    assert len(rows) >= 30
    sl = EvalSet(warm.test.history.take(rows), warm.test.targets.take(rows))
    recall = evaluate(model.score, sl, ks=(50,))["recall@50"]
    chance = 50 / ds.n_items
    assert recall > 2 * chance, (recall, chance)


@pytest.mark.slow
def test_id_input_leaves_cold_items_to_their_codes(tmp_path):
    """With `id_input` the history tokens also carry a learned item embedding; items never seen in
    training keep a zero one, so they are still ranked above chance through their codes and text, and
    items added later get zero rows too (save/load keeps the grown table)."""
    from genrec.data.dataset import EvalSet
    from genrec.data.splits import without_items
    from genrec.evaluation import evaluate

    ds = prepare(generate(), DataConfig(), cache=False)
    cold = np.arange(1, ds.n_items + 1)[np.arange(1, ds.n_items + 1) % 20 == 0]
    warm = without_items(ds, cold)
    model = fit(get_model_class("tiger")(TigerConfig(**SMALL, id_input=True)), warm, TRAIN)
    table = model.net_.item_in.weight
    warm_items = np.setdiff1d(np.arange(1, ds.n_items + 1), cold)
    assert table[torch.from_numpy(cold)].abs().sum() == 0, "a cold item's embedding was trained"
    assert table[torch.from_numpy(warm_items)].abs().sum(1).gt(0).float().mean() > 0.9
    # the cold events of validation and test together (58 + 63): on the test ones alone a hit moves
    # Recall@10 by 0.016, and across seeds it ranged 0.03-0.27 (validation only chose the epoch, on
    # overall NDCG@10). Measured: 0.091 vs chance 0.025; seeds 0-7: 0.09-0.26
    hits, events = 0.0, 0
    for es in (warm.valid, warm.test):
        rows = np.flatnonzero(np.isin(es.targets.items, cold))
        sl = EvalSet(es.history.take(rows), es.targets.take(rows))
        hits += evaluate(model.score, sl, ks=(10,))["recall@10"] * len(rows)
        events += len(rows)
    assert hits / events > 2 * 10 / ds.n_items

    texts = [str(t) for t in ds.item_text[cold[:3]]]
    new = model.add_items(texts)
    assert model.net_.item_in.num_embeddings == model.n_items_ + 1 == ds.n_items + 4
    assert model.net_.item_in.weight[torch.from_numpy(new)].abs().sum() == 0
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    hist = ds.test.history.take(slice(0, 32))
    assert torch.equal(model.score(hist), loaded.score(hist))
    items = generate_lists(loaded, hist, 3, "beam", Constraints(allowed=new), beam_size=6).items
    _assert_valid_lists(items, hist, loaded.n_items_)
    assert set(items.ravel().tolist()) <= set(new.tolist())


@pytest.mark.slow
def test_generator_drops_its_learning_rate_on_a_plateau(synthetic_ds, tmp_path, monkeypatch):
    """tiger's generator takes the loop's rate drops: back to the best epoch at lr x lr_drop_factor."""
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path))
    # 80 epochs: the plateau can come late (epoch 40 with scikit-learn 1.9 TF-IDF codes); leave room after it
    cfg = TigerConfig(**{**SMALL, "rq_epochs": 5, "epochs": 80, "patience": 1, "lr": 5e-2, "lr_drops": 1})
    curve = fit(get_model_class("tiger")(cfg), synthetic_ds, TRAIN).fit_info_["phases"][1]["curve"]
    drops = [i for i, r in enumerate(curve) if "lr_drop" in r]
    assert len(drops) == 1, [(r["valid_ndcg@10"], r["lr"]) for r in curve]
    assert curve[drops[0]]["lr"] == pytest.approx(5e-2) and curve[-1]["lr"] == pytest.approx(1.5e-2)
    with pytest.raises(ValueError, match="lr_drop_factor"):
        TigerConfig(lr_drop_factor=1.0).validate()


@pytest.mark.slow
def test_ensemble_scores_are_one_distribution_and_survive_save_load(synthetic_ds, tmp_path):
    """`ensemble=2` trains two generators on the same batches; the served scores are their mean
    log-probabilities renormalised per trie level: still a distribution over the catalogue, decodable
    over the trie, and a saved model gives the same scores and lists."""
    model = fit(get_model_class("tiger")(TigerConfig(**SMALL, ensemble=2)), synthetic_ds, TRAIN)
    assert len(model.nets_) == 2
    w0, w1 = (net.code_out[0].weight for net in model.nets_)
    assert not torch.allclose(w0, w1), "the generators must be trained from their own initialisation"
    hist = synthetic_ds.test.history.take(slice(0, 32))
    s = model.score(hist)
    assert torch.allclose(torch.logsumexp(s[:, 1:], 1), torch.zeros(32), atol=1e-4)
    # geometric mean, renormalised: the normaliser of each level is <= 1 (geometric <= arithmetic mean),
    # so an item's ensemble log-probability is at least the mean of the generators' own
    own = []
    for net in model.nets_:
        single = copy.deepcopy(model)
        single.nets_ = torch.nn.ModuleList([net])
        own.append(single.score(hist)[:, 1:])
    assert (s[:, 1:] >= (own[0] + own[1]) / 2 - 1e-4).all()
    assert not torch.allclose(s[:, 1:], own[0])
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert len(loaded.nets_) == 2 and torch.equal(loaded.score(hist), s)
    items = generate_lists(loaded, hist, 10, "beam", beam_size=12).items
    _assert_valid_lists(items, hist, loaded.n_items_)
    assert (items == generate_lists(model, hist, 10, "beam", beam_size=12).items).all()


def test_new_item_boost_lifts_exactly_the_items_never_trained_on(cold_setup, tmp_path):
    """`new_item_boost` adds a constant to the log-probability of items that were never a training
    target (here the cold items added after training, and any item seen only first in a sequence);
    beam search over the trie reads the same boosted scores, and a saved model keeps the mask."""
    model, new = _with_cold(cold_setup)
    hist = cold_setup[0].test.history.take(slice(0, 24))
    model.config.new_item_boost = 0.0  # exact scores (the default boosts)
    exact = model.score(hist)
    assert not model.trained_[new].any() and model.trained_[1:].sum() > 0.9 * (len(model.trained_) - 1)
    model.config.new_item_boost = 2.0
    boosted = model.score(hist)
    lifted = torch.zeros_like(model.trained_)
    lifted[1:] = ~model.trained_[1:]
    assert torch.allclose(boosted[:, lifted], exact[:, lifted] + 2.0)
    assert torch.equal(boosted[:, 1:][:, ~lifted[1:]], exact[:, 1:][:, ~lifted[1:]])
    top = torch.topk(boosted[:, 1:], 10).indices + 1
    beam = generate_lists(model, hist, 10, "beam", beam_size=400).items  # a beam as wide as the catalogue
    assert np.isin(new, top.numpy()).any()  # the boost brings cold items into the lists
    got = torch.gather(boosted, 1, torch.from_numpy(beam))
    assert torch.allclose(got, torch.topk(Constraints().masked(boosted, hist), 10).values)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert torch.equal(loaded.trained_, model.trained_) and torch.equal(loaded.score(hist), boosted)
    with pytest.raises(ValueError, match="new_item_boost must be >= 0"):
        TigerConfig(new_item_boost=-1.0).validate()


def test_the_kept_model_does_not_depend_on_the_boost(synthetic_ds):
    """Validation during training reads exact scores: two runs that differ only in `new_item_boost`
    see the same validation curve and keep the same generators, and only the served scores of the items
    never trained on differ, by the boost. So one trained model can be re-priced without retraining."""
    ds = without_items(synthetic_ds, np.arange(5, synthetic_ds.n_items + 1, 10))  # cold valid/test targets
    cfg = {
        **SMALL,
        "ensemble": 1,
        "rq_epochs": 20,
        "epochs": 4,
        "patience": 4,
        "eval_users": 0,
        "cache_rqvae": False,
    }
    exact = fit(get_model_class("tiger")(TigerConfig(**cfg, new_item_boost=0.0)), ds, TRAIN)
    boosted = fit(get_model_class("tiger")(TigerConfig(**cfg, new_item_boost=5.0)), ds, TRAIN)
    curve = [r["valid_ndcg@10"] for r in exact.fit_info_["phases"][-1]["curve"]]
    assert curve == [r["valid_ndcg@10"] for r in boosted.fit_info_["phases"][-1]["curve"]]
    for a, b in zip(exact.nets_.state_dict().values(), boosted.nets_.state_dict().values()):
        assert torch.equal(a, b)
    hist = ds.valid.history.take(slice(0, 16))
    untrained = ~exact.trained_
    untrained[0] = False
    assert untrained.sum() >= 10
    assert torch.allclose(boosted.score(hist)[:, untrained], exact.score(hist)[:, untrained] + 5.0)
    # the boost would have moved validation: the cold targets rank far higher with it
    ndcg = [evaluate(m.score, ds.valid, ks=(10,))["ndcg@10"] for m in (exact, boosted)]
    assert ndcg[0] != ndcg[1]


def test_a_model_saved_before_ensembles_loads_with_its_one_generator(cold_setup, tmp_path):
    """A model directory from before `ensemble` and `new_item_boost` existed (one generator stored as
    "net", no such keys in its config, no trained-items mask) loads as one generator, scores unboosted."""
    _, _, model = cold_setup
    one = copy.deepcopy(model)
    one.config.ensemble, one.config.new_item_boost = 1, 0.0
    one.nets_ = one.nets_[:1]
    one.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    for key in ("ensemble", "new_item_boost"):
        del meta["config"][key]
    meta["state"]["net"] = meta["state"].pop("nets")
    tensors = load_file(str(tmp_path / "m" / "model.safetensors"))
    old = {k.replace("nets/0.", "net/", 1): v for k, v in tensors.items() if not k.startswith("trained")}
    save_file(old, str(tmp_path / "m" / "model.safetensors"))
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    loaded = Recommender.load(tmp_path / "m")
    hist = cold_setup[0].test.history.take(slice(0, 8))
    assert len(loaded.nets_) == 1 and loaded.trained_.all()
    assert torch.allclose(loaded.score(hist), one.score(hist))
