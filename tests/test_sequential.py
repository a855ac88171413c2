"""SASRec / HSTU: accuracy on the synthetic generator, save/load, resume, KV cache, config errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.data.cache import prepare
from genrec.data.dataset import Histories
from genrec.data.synthetic import generate
from genrec.data.types import DataConfig
from genrec.evaluation import evaluate
from genrec.models import Recommender, get_model_class
from genrec.models.base import DotProductScores, IncrementalModel
from genrec.models.next_item import SeenItems, TrainingWindows, next_item_loss
from genrec.models.sequential import has_repeats, history_share, length_batches
from genrec.training import Callback, TrainConfig, TrainingInterrupted, fit

SEQ_MODELS = ["sasrec", "hstu"]
FAST = {"size": "tiny", "max_len": 50, "batch_tokens": 1024, "lr": 5e-3, "warmup_steps": 10, "dropout": 0.1}
ONE_THREAD = TrainConfig(threads=1)


def make(name: str, **kw):
    cls = get_model_class(name)
    return cls(cls.config_cls(**{**FAST, **kw}))


@pytest.fixture(scope="module")
def baselines(synthetic_ds):
    out = {}
    for name in ("pop", "ease"):
        m = fit(get_model_class(name)(), synthetic_ds, ONE_THREAD)
        out[name] = evaluate(m.score, synthetic_ds.test, ks=(10,))["ndcg@10"]
    return out


@pytest.fixture(scope="module")
def trained(synthetic_ds):
    return {name: fit(make(name, epochs=6, patience=2), synthetic_ds, ONE_THREAD) for name in SEQ_MODELS}


@pytest.mark.parametrize("name", SEQ_MODELS)
@pytest.mark.slow
def test_beats_pop_and_ease(name, trained, baselines, synthetic_ds):
    ndcg = evaluate(trained[name].score, synthetic_ds.test, ks=(10,))["ndcg@10"]
    # the generator's "successor of the last item" structure is invisible to Pop and diluted in EASE
    assert ndcg > 1.3 * baselines["ease"], (ndcg, baselines)
    assert ndcg > 2.0 * baselines["pop"], (ndcg, baselines)
    info = trained[name].fit_info_
    assert (
        info["best_valid"] > 0
        and info["valid_metric"] == "ndcg@10"
        and info["stopped_by"] in ("epochs", "early stopping")
    )


@pytest.mark.parametrize("name", SEQ_MODELS)
@pytest.mark.slow
def test_save_load_identical_scores(name, trained, synthetic_ds, tmp_path):
    model = trained[name]
    model.save(tmp_path / name)
    loaded = Recommender.load(tmp_path / name)
    h = synthetic_ds.test.history.take(slice(0, 50))
    assert torch.equal(model.score(h), loaded.score(h))
    assert loaded.config == model.config


@pytest.mark.parametrize("name", SEQ_MODELS)
@pytest.mark.slow
def test_kv_cache_extend_matches_recompute(name, trained, synthetic_ds):
    model = trained[name]
    assert isinstance(model, IncrementalModel)
    # histories of different lengths (left padding inside the cache), short enough to stay < max_len
    lens = [3, 9, 20, 1, 30, 12]
    h = Histories.from_lists([synthetic_ds.train.row(u)[:n] for u, n in zip(range(1, 7), lens)])
    scores, cache = model.start(h)
    assert torch.allclose(scores, model.score(h), atol=1e-4)
    seqs = [list(h.row(b)) for b in range(len(h))]
    rng = np.random.default_rng(0)
    for _ in range(4):
        nxt = torch.from_numpy(rng.integers(1, synthetic_ds.n_items + 1, len(h)))
        scores, cache = model.extend(cache, nxt)
        seqs = [s + [int(i)] for s, i in zip(seqs, nxt)]
        full = model.score(Histories.from_lists(seqs))
        assert torch.allclose(scores[:, 1:], full[:, 1:], atol=1e-4), (scores - full)[:, 1:].abs().max()
    # reorder (beam search): duplicated / permuted rows follow their histories
    index = torch.tensor([5, 5, 0, 2, 1, 3])
    cache = model.reorder(cache, index)
    nxt = torch.ones(6, dtype=torch.long)
    scores, cache = model.extend(cache, nxt)
    seqs = [seqs[i] + [1] for i in index.tolist()]
    full = model.score(Histories.from_lists(seqs))
    assert torch.allclose(scores[:, 1:], full[:, 1:], atol=1e-4)


@pytest.mark.parametrize("name", SEQ_MODELS)
@pytest.mark.slow
def test_user_and_item_embeddings_give_the_scores(name, trained, synthetic_ds):
    model = trained[name]
    assert isinstance(model, DotProductScores) and model.next_item_logits
    h = synthetic_ds.test.history.take(slice(0, 20))
    states, emb = model.user_embeddings(h), model.item_embeddings()
    assert emb.shape[0] == synthetic_ds.n_items + 1 and states.shape == (20, emb.shape[1])
    assert torch.allclose((states @ emb.T)[:, 1:], model.score(h)[:, 1:], atol=1e-4)


@pytest.mark.parametrize("name", SEQ_MODELS)
@pytest.mark.slow
def test_length_sorted_inference_batches_keep_every_user_in_place(name, trained, synthetic_ds, monkeypatch):
    model = trained[name]
    h = synthetic_ds.test.history.take(np.arange(40)[::-1])  # mixed lengths, not in length order
    one_by_one = torch.cat([model.user_embeddings(h.take(np.array([i]))) for i in range(len(h))])
    monkeypatch.setattr(model, "score_tokens", {"cpu": 64, "cuda": 64})  # many small batches
    assert torch.allclose(model.user_embeddings(h), one_by_one, atol=1e-5)


def test_length_batches_pack_rows_of_similar_length_within_the_budget():
    lengths = np.random.default_rng(0).integers(0, 300, 1000)
    for budget in (1, 200, 2048):
        batches = length_batches(lengths, budget)
        assert sorted(np.concatenate(batches).tolist()) == list(range(1000))  # each row once
        for b in batches:
            padded = len(b) * max(int(lengths[b].max()), 1)
            assert len(b) == 1 or padded <= budget, (len(b), padded)
        # greedy packing: a batch could not have taken the next row
        for b, nxt in zip(batches, batches[1:]):
            assert (len(b) + 1) * max(int(lengths[nxt[0]]), 1) > budget
    assert length_batches(np.zeros(0, np.int64), 2048) == []


class StopAfter(Callback):
    """Ctrl-C right after epoch `n` (its checkpoint is written)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_epoch_end(self, model, phase, row) -> None:
        if row["epoch"] == self.n:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_resume_continues_the_same_loss_curve(synthetic_ds, tmp_path):
    kw = {"epochs": 3, "patience": 5}
    straight = fit(make("sasrec", **kw), synthetic_ds, ONE_THREAD, checkpoint_dir=tmp_path / "a")
    # the same run, interrupted after epoch 2 ...
    crashed = make("sasrec", **kw)
    with pytest.raises(TrainingInterrupted) as stop:
        fit(crashed, synthetic_ds, ONE_THREAD, checkpoint_dir=tmp_path / "b", callbacks=(StopAfter(2),))
    assert stop.value.checkpoint == tmp_path / "b" / "last.pt" and stop.value.epoch == 2
    # ... and resumed in a fresh process state (different global RNG)
    torch.manual_seed(12345)
    resumed = fit(make("sasrec", **kw), synthetic_ds, ONE_THREAD, checkpoint_dir=tmp_path / "b", resume=True)
    curve = [r["loss"] for r in straight.fit_info_["phases"][0]["curve"]]
    assert len(curve) == 3
    assert [r["loss"] for r in resumed.fit_info_["phases"][0]["curve"]] == pytest.approx(curve, rel=1e-5)
    h = synthetic_ds.test.history.take(slice(0, 20))
    assert torch.allclose(resumed.score(h), straight.score(h), atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("sparse", ["auto", "off"])
def test_sampled_softmax_trains(synthetic_ds, baselines, sparse):
    """auto: sampled softmax brings sparse item-table gradients and row-wise AdaGrad for the table."""
    m = fit(
        make("sasrec", epochs=3, loss="sampled", n_negatives=64, sparse_items=sparse),
        synthetic_ds,
        ONE_THREAD,
    )
    assert m.fit_info_["loss"] == "sampled"
    assert m.net.item_emb.sparse == (sparse == "auto")
    losses = [r["loss"] for r in m.fit_info_["phases"][0]["curve"]]
    assert losses[-1] < losses[0]
    assert evaluate(m.score, synthetic_ds.test, ks=(10,))["ndcg@10"] > baselines["pop"]


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_chunked_softmax_matches_cross_entropy_over_real_items(smoothing):
    """The CPU training loss (chunked, gradients in the forward) equals F.cross_entropy over items
    1..V-1 with the same label smoothing, in value and in both gradients: padding gets no share."""
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(700, 16, generator=gen, requires_grad=True)  # more rows than one chunk
    emb = torch.randn(4001, 16, generator=gen, requires_grad=True)
    targets = torch.randint(1, 4001, (700,), generator=gen)
    loss = next_item_loss(h, targets, emb, "ce", None, 0, smoothing=smoothing)
    loss.backward()
    h2, emb2 = h.detach().requires_grad_(), emb.detach().requires_grad_()
    ref = torch.nn.functional.cross_entropy(h2 @ emb2[1:].T, targets - 1, label_smoothing=smoothing)
    ref.backward()
    assert float(loss) == pytest.approx(float(ref), rel=1e-5)
    assert torch.allclose(h.grad, h2.grad, atol=1e-7)
    assert torch.allclose(emb.grad, emb2.grad, atol=1e-7)
    assert float(emb.grad[0].abs().sum()) == 0.0
    with torch.no_grad():  # the evaluation path (no chunking) agrees
        assert float(next_item_loss(h, targets, emb, "ce", None, 0, smoothing=smoothing)) == pytest.approx(
            float(ref), rel=1e-5
        )


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_future_targets_share_the_target_probability(smoothing):
    """With later items, the target distribution is (1 - e - w) on the next item, w split evenly over
    a row's later items (all of w on the next item when it has none) and e spread over the real
    items: the chunked CPU loss and the unchunked path give that cross-entropy and its gradients."""
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(700, 16, generator=gen, requires_grad=True)
    emb = torch.randn(4001, 16, generator=gen, requires_grad=True)
    targets = torch.randint(1, 4001, (700,), generator=gen)
    future = torch.randint(1, 4001, (700, 3), generator=gen)
    future[::4, 1:] = 0  # one later item
    future[::7] = 0  # none: the next item keeps the whole share
    loss = next_item_loss(
        h, targets, emb, "ce", None, 0, smoothing=smoothing, future=future, future_weight=0.3
    )
    loss.backward()
    h2, emb2 = h.detach().requires_grad_(), emb.detach().requires_grad_()
    dist = torch.zeros(700, 4000)
    n_later = (future != 0).sum(1)
    for r in range(700):  # the target distribution, row by row
        dist[r] += smoothing / 4000
        dist[r, targets[r] - 1] += 1 - smoothing - (0.3 if n_later[r] else 0.0)
        for item in future[r][future[r] != 0].tolist():
            dist[r, item - 1] += 0.3 / int(n_later[r])
    assert torch.allclose(dist.sum(1), torch.ones(700))
    ref = -(dist * torch.log_softmax(h2 @ emb2[1:].T, -1)).sum(1).mean()
    ref.backward()
    assert float(loss) == pytest.approx(float(ref), rel=1e-5)
    assert torch.allclose(h.grad, h2.grad, atol=1e-7)
    assert torch.allclose(emb.grad, emb2.grad, atol=1e-7)
    with torch.no_grad():
        plain = next_item_loss(
            h, targets, emb, "ce", None, 0, smoothing=smoothing, future=future, future_weight=0.3
        )
    assert float(plain) == pytest.approx(float(ref), rel=1e-5)


def test_next_timestamps_are_the_targets_times(synthetic_ds):
    """gather_next_ts: each position's target's timestamp (the time query_time=next reads), 0 at padding."""
    w = TrainingWindows(synthetic_ds, 7)
    w.batches(64, np.random.default_rng(1))
    idx = np.arange(len(w))
    nxt = w.gather_next_ts(idx).numpy()
    h = synthetic_ds.train
    assert h.timestamps is not None and np.diff(h.timestamps).any()
    for b in idx.tolist():
        n, first = int(w.length[b]), int(w.start[b])  # first: the window's first input, flat index
        assert nxt[b, :n].tolist() == h.timestamps[first + 1 : first + n + 1].tolist()
        assert not nxt[b, n:].any()


def test_future_targets_are_the_users_next_training_items(synthetic_ds):
    """gather_future: for each position, the k items after its target in the same user's training
    history, 0 past that history's end (never another user's items) and at padding."""
    L, k, h = 7, 3, synthetic_ds.train
    for shift in (False, True):
        w = TrainingWindows(synthetic_ds, L, shift=shift)
        w.batches(64, np.random.default_rng(1))
        idx = np.arange(len(w))
        future = w.gather_future(idx, k).numpy()
        _, _, targets = w.gather(idx)
        for b in idx.tolist():
            u = int(w.user[b])
            items = h.row(u)
            first = int(w.start[b] - h.indptr[u])  # the window's first input, in the user's history
            for t in range(future.shape[1]):
                if t >= w.length[b]:
                    assert not future[b, t].any()
                    continue
                assert targets[b, t] == items[first + t + 1]
                later = items[first + t + 2 : first + t + 2 + k]
                assert future[b, t, : len(later)].tolist() == later.tolist()
                assert not future[b, t, len(later) :].any()


def test_shifted_windows_and_future_targets_train_through_the_model(synthetic_ds, monkeypatch):
    """The settings reach training: windows=shifted cuts anew each epoch, future_targets feeds the loss
    the later items (k per target) with their weight."""
    seen = []
    real_loss = next_item_loss

    def spy(*args, **kw):
        seen.append((kw.get("future"), kw.get("future_weight")))
        return real_loss(*args, **kw)

    monkeypatch.setattr("genrec.models.sequential.next_item_loss", spy)
    m = fit(
        make("hstu", epochs=2, windows="shifted", future_targets=2, future_weight=0.3),
        synthetic_ds,
        ONE_THREAD,
    )
    assert m._windows.shift and len(seen) > 0
    future, weight = seen[0]
    assert weight == 0.3 and future.shape[1] == 2 and bool((future != 0).any())
    curve = m.fit_info_["phases"][0]["curve"]
    assert len(curve) == 2 and all(np.isfinite(r["loss"]) for r in curve)


def test_future_targets_need_the_full_softmax(synthetic_ds):
    with pytest.raises(ValueError, match="future_targets needs the full softmax"):
        fit(make("hstu", epochs=1, loss="sampled", future_targets=2), synthetic_ds, ONE_THREAD)


@pytest.mark.slow
@pytest.mark.parametrize("name", SEQ_MODELS)
def test_temperature_scores_cosine_over_temperature_on_every_path(name, synthetic_ds, baselines):
    """temperature > 0: unit user and item vectors, scores = cosine / t, the same through score(),
    the exported embeddings and the KV cache; and the model still learns."""
    t = 0.1
    m = fit(make(name, epochs=4, patience=2, temperature=t), synthetic_ds, ONE_THREAD)
    h = Histories.from_lists([synthetic_ds.train.row(u)[:20] for u in range(1, 31)])  # no timestamps
    users, items = m.user_embeddings(h), m.item_embeddings()
    assert torch.allclose(users.norm(dim=1), torch.full((30,), 1 / t), rtol=1e-4)
    assert torch.allclose(items[1:].norm(dim=1), torch.ones(synthetic_ds.n_items), rtol=1e-4)
    assert float(items[0].abs().sum()) == 0.0
    scores = m.score(h)
    assert float(scores[:, 1:].abs().max()) <= 1 / t + 1e-3
    assert torch.allclose((users @ items.T)[:, 1:], scores[:, 1:], atol=1e-4)
    start, cache = m.start(h)
    assert torch.allclose(start[:, 1:], scores[:, 1:], atol=1e-4)
    nxt = torch.ones(len(h), dtype=torch.long)
    extended, _ = m.extend(cache, nxt)
    full = m.score(Histories.from_lists([list(h.row(b)) + [1] for b in range(len(h))]))
    assert torch.allclose(extended[:, 1:], full[:, 1:], atol=1e-4)
    assert evaluate(m.score, synthetic_ds.test, ks=(10,))["ndcg@10"] > 2.0 * baselines["pop"]


def test_sparse_items_on_needs_sampled_softmax(synthetic_ds):
    with pytest.raises(ValueError, match="sparse_items=on needs loss=sampled"):
        make("sasrec", loss="ce", sparse_items="on")
    with pytest.raises(ValueError, match="needs loss=sampled"):  # auto picks ce for this catalogue
        fit(make("sasrec", epochs=1, sparse_items="on"), synthetic_ds, ONE_THREAD)


@pytest.mark.parametrize("name", SEQ_MODELS)
@pytest.mark.parametrize(
    "bad, field",
    [
        ({"size": "huge"}, "size"),
        ({"dropout": 1.5}, "dropout"),
        ({"loss": "bpr"}, "loss"),
        ({"max_len": 0}, "max_len"),
        ({"dim": 30, "n_heads": 4}, "divisible"),
        ({"lr": -1}, "lr"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"item_dropout": 1.0}, "item_dropout"),
        ({"windows": "random"}, "windows"),
        ({"mask_seen": "yes"}, "mask_seen"),
        ({"mask_seen": "on", "label_smoothing": 0.1}, "mask_seen needs label_smoothing=0"),
        ({"future_targets": -1}, "future_targets"),
        ({"future_weight": 0.9, "label_smoothing": 0.1}, "future_weight"),
        ({"temperature": -0.1}, "temperature"),
        ({"average_decay": 1.0}, "average_decay"),
    ],
)
def test_bad_config_is_a_clear_error(name, bad, field):
    cls = get_model_class(name)
    with pytest.raises(ValueError, match=field):
        cls(cls.config_cls(**bad))


@pytest.mark.parametrize("name", SEQ_MODELS)
def test_item_dropout_hides_input_items_while_training_only(name, synthetic_ds):
    """item_dropout=p: in training about a share p of the input items read as the empty item (zero ID
    and text vector), the others as themselves; in evaluation every item reads as itself. The
    fitted model's network carries the setting."""
    m = fit(make(name, epochs=1, item_dropout=0.25), synthetic_ds, ONE_THREAD)
    net = m.net
    assert net.item_dropout == 0.25
    torch.manual_seed(0)
    items = torch.randint(1, synthetic_ds.n_items + 1, (200, 100))
    with torch.no_grad():
        full = net.eval().item_input(items)
        hidden = net.train().item_input(items)
    net.eval()
    zero = hidden.abs().sum(-1) == 0  # (200, 100)
    assert abs(zero.float().mean().item() - 0.25) < 0.01  # 20k draws: std ~0.003
    torch.testing.assert_close(hidden[~zero], full[~zero])  # a kept item reads exactly as in evaluation
    assert bool((full.abs().sum(-1) > 0).all())


def window_spans(w: TrainingWindows, indptr: np.ndarray) -> dict[int, list[tuple[int, int]]]:
    """user -> sorted [begin, end) of their windows, in pairs from the start of their history."""
    user = np.searchsorted(indptr, w.start, side="right") - 1
    out: dict[int, list[tuple[int, int]]] = {}
    for u, s, n in zip(user.tolist(), w.start.tolist(), w.length.tolist()):
        out.setdefault(u, []).append((s - int(indptr[u]), s - int(indptr[u]) + n))
    return {u: sorted(v) for u, v in out.items()}


def test_shifted_windows_cut_older_history_anew_each_epoch(synthetic_ds):
    """windows=shifted: every epoch each training pair is in exactly one window of at most max_len,
    the newest window is always the last max_len pairs (what inference reads), and the older history
    is cut at other places from epoch to epoch; fixed cuts the same way every epoch."""
    L, h = 7, synthetic_ds.train
    pairs = np.maximum(h.lengths - 1, 0)
    assert (pairs > 2 * L).sum() > 10  # users whose older history spans several windows
    fixed, shifted = TrainingWindows(synthetic_ds, L), TrainingWindows(synthetic_ds, L, shift=True)
    first = window_spans(fixed, h.indptr)
    cuts = []
    for epoch in range(3):
        rng = np.random.default_rng(epoch)
        assert sorted(np.concatenate(fixed.batches(64, rng)).tolist()) == list(range(len(fixed)))
        assert window_spans(fixed, h.indptr) == first
        batches = shifted.batches(64, np.random.default_rng(epoch))
        assert sorted(np.concatenate(batches).tolist()) == list(range(len(shifted)))  # this epoch's windows
        spans = window_spans(shifted, h.indptr)
        for u, p in enumerate(pairs.tolist()):
            if p == 0:
                assert u not in spans
                continue
            covered = [i for a, b in spans[u] for i in range(a, b)]
            assert covered == list(range(p))  # every pair once, in order, no overlap
            assert all(0 < b - a <= L for a, b in spans[u])
            assert spans[u][-1] == (max(p - L, 0), p)
        assert shifted.length.sum() == fixed.n_tokens
        cuts.append(spans)
    assert cuts[0] != cuts[1] and cuts[1] != cuts[2] and cuts[0] != first


def test_size_presets_and_overrides():
    cls = get_model_class("hstu")
    cfg = cls.config_cls(size="base", n_layers=3)
    assert cfg.resolved("dim") == cls.config_cls.SIZES["base"]["dim"] and cfg.resolved("n_layers") == 3
    assert cfg.resolved_lr() == 4e-3 and cls.config_cls(size="small").resolved_lr() == 2e-3
    assert cls.config_cls(size="base", lr=1e-3).resolved_lr() == 1e-3  # a set rate wins over the preset


@pytest.mark.parametrize("name", SEQ_MODELS)
def test_size_auto_follows_the_amount_of_training_data(name, synthetic_ds, tmp_path, monkeypatch):
    cls = get_model_class(name)
    cfg = cls.config_cls()
    assert cfg.size == "auto"  # the default
    with pytest.raises(ValueError, match="size=auto is chosen from the training data"):
        cfg.resolved("dim")
    n_targets = TrainingWindows(synthetic_ds, max_len=50).n_tokens
    settings = {**FAST, "size": "auto", "epochs": 1, "lr": 0.0}  # lr 0: the preset's rate
    small = fit(make(name, **settings), synthetic_ds, ONE_THREAD)
    assert small.config.size == "small" and small.fit_info_["config"]["size"] == "small"
    monkeypatch.setattr(cls.config_cls, "AUTO_BASE_TARGETS", n_targets)  # the data now counts as large
    base = fit(make(name, **settings), synthetic_ds, ONE_THREAD)
    assert base.config.size == "base"
    assert base.net.dim == cls.config_cls.SIZES["base"]["dim"] != small.net.dim
    # each preset trains at its own rate: the same schedule over the same steps, scaled by the preset
    rates = {m.config.size: m.fit_info_["phases"][0]["curve"][-1]["lr"] for m in (small, base)}
    preset = {s: cls.config_cls.SIZES[s]["lr"] for s in ("small", "base")}
    assert rates["base"] / rates["small"] == pytest.approx(preset["base"] / preset["small"])
    assert {m.config.size: m.fit_info_["config"]["lr"] for m in (small, base)} == preset
    base.save(tmp_path / "m")
    assert Recommender.load(tmp_path / "m").config.size == "base"
    # fine-tuning keeps the trained network's size, whatever the new data would pick
    monkeypatch.setattr(cls.config_cls, "AUTO_BASE_TARGETS", n_targets + 1)
    tuned = make(name, **settings)
    tuned.start_from(base)
    assert fit(tuned, synthetic_ds, ONE_THREAD).config.size == "base"


def test_batches_bound_tokens_and_sequences(synthetic_ds):
    windows = TrainingWindows(synthetic_ds, max_len=50)
    rng = np.random.default_rng(0)
    for tokens, seqs in ((1024, 64), (4096, 8), (256, 1000)):
        batches = windows.batches(tokens, rng, seqs)
        assert sorted(np.concatenate(batches).tolist()) == list(range(len(windows)))  # each window once
        for b in batches:
            padded = len(b) * int(windows.length[b].max())
            assert len(b) == 1 or (len(b) <= seqs and padded <= tokens), (len(b), padded)
    # the sequence bound is what gives short-history data more steps per epoch
    assert len(windows.batches(4096, rng, 8)) > len(windows.batches(4096, rng, 1000))


@pytest.mark.slow  # torch.compile on a CPU takes tens of seconds
def test_compiled_training_matches_eager_and_saves_the_same_keys(synthetic_ds):
    """compile=on changes how steps run, not what they compute: the same losses (to float noise) and
    checkpoints/snapshots under the same parameter names, so a compiled run loads anywhere."""
    runs = {}
    for mode in ("off", "on"):
        m = make("hstu", epochs=2, dropout=0.0, attn_dropout=0.0)  # no dropout anywhere: deterministic
        fit(m, synthetic_ds, TrainConfig(threads=1, compile=mode))
        loss = m.fit_info_["phases"][0]["curve"][0]["loss"]
        assert (m.net._compiled_call_impl is not None) == (mode == "on")  # nn.Module.compile took effect
        runs[mode] = (loss, m.net.state_dict())
    (eager_loss, eager_state), (comp_loss, comp_state) = runs["off"], runs["on"]
    assert list(comp_state) == list(eager_state)
    assert comp_loss == pytest.approx(eager_loss, rel=1e-3)
    for k in eager_state:
        torch.testing.assert_close(comp_state[k], eager_state[k], rtol=1e-3, atol=1e-4)


@pytest.mark.slow  # trains eight small models
@pytest.mark.parametrize("name", SEQ_MODELS)
def test_training_records_parameters_and_flops_for_scaling_curves(name, synthetic_ds, tmp_path):
    """fit records what a scaling curve needs: parameters, FLOPs per target, targets trained, their FLOPs."""
    infos = {}
    for size in ("tiny", "small"):
        m = fit(make(name, size=size, epochs=2, patience=5), synthetic_ds, ONE_THREAD)
        info = infos[size] = m.fit_info_
        assert info["params"] == sum(p.numel() for p in m.net.parameters())
        emb = sum(e.weight.numel() for e in m.net.modules() if isinstance(e, torch.nn.Embedding))
        assert info["non_embedding_params"] == info["params"] - emb > 0
        assert info["trained_targets"] == pytest.approx(2 * info["target_tokens"], rel=1e-6)  # 2 epochs
        assert info["train_flops"] == pytest.approx(info["flops_per_target"] * info["trained_targets"])
        # at least the forward and backward of the blocks' matrix products
        assert info["flops_per_target"] > 6 * info["non_embedding_params"]
        m.save(tmp_path / size)  # a loaded model states the same profile (reports of older runs)
        again = Recommender.load(tmp_path / size).compute_profile(synthetic_ds)
        assert again == pytest.approx({k: info[k] for k in again})
    assert infos["small"]["params"] > infos["tiny"]["params"]
    assert infos["small"]["flops_per_target"] > infos["tiny"]["flops_per_target"]
    # a sampled softmax over a few negatives scores fewer items per target than the full softmax
    few = fit(make(name, epochs=1, loss="sampled", n_negatives=8), synthetic_ds, ONE_THREAD)
    full = fit(make(name, epochs=1, loss="ce"), synthetic_ds, ONE_THREAD)
    assert few.fit_info_["flops_per_target"] < full.fit_info_["flops_per_target"]
    ease = fit(get_model_class("ease")(), synthetic_ds, ONE_THREAD)
    assert "train_flops" not in ease.fit_info_  # closed-form: no per-target training cost to state


def test_mask_seen_leaves_each_users_earlier_items_out_of_the_softmax(synthetic_ds):
    """mask_seen: each target's softmax runs over the items its user had not had before it (in and
    before its window), always keeping the target itself; the chunked CPU loss and the unchunked
    path equal that cross-entropy, in value and both gradients."""
    w, h, V = TrainingWindows(synthetic_ds, 7), synthetic_ds.train, 4001
    idx = np.arange(len(w))
    inputs, _, targets = w.gather(idx)
    real = targets != 0
    row, pos = real.nonzero(as_tuple=True)
    seen = SeenItems(w.gather_before(idx, V), inputs, row, pos)
    targets = targets[real]
    N = len(targets)
    assert N > 1000  # more rows than one chunk of the CPU loss
    expected = torch.zeros(N, V, dtype=torch.bool)
    for r, (b, t) in enumerate(zip(row.tolist(), pos.tolist())):
        u = int(w.user[b])
        before_target = h.row(u)[: int(w.start[b] - h.indptr[u]) + t + 1]
        expected[r, torch.from_numpy(before_target)] = True
        expected[r, targets[r]] = False
    assert expected.any(1).float().mean() > 0.9
    torch.testing.assert_close(seen.mask(0, N, targets), expected)
    gen = torch.Generator().manual_seed(0)
    h_ = torch.randn(N, 16, generator=gen, requires_grad=True)
    emb = torch.randn(V, 16, generator=gen, requires_grad=True)
    loss = next_item_loss(h_, targets, emb, "ce", None, 0, seen=seen)
    loss.backward()
    h2, emb2 = h_.detach().requires_grad_(), emb.detach().requires_grad_()
    logits = (h2 @ emb2.T).masked_fill(expected, -torch.inf)[:, 1:]
    ref = torch.nn.functional.cross_entropy(logits, targets - 1)
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert torch.allclose(h_.grad, h2.grad, atol=1e-7)
    assert torch.allclose(emb.grad, emb2.grad, atol=1e-7)
    with torch.no_grad():
        assert float(next_item_loss(h_, targets, emb, "ce", None, 0, seen=seen)) == pytest.approx(
            float(ref), rel=1e-5
        )


def test_has_repeats_finds_a_user_with_an_item_twice():
    assert not has_repeats(Histories(np.array([0, 2, 4]), np.array([1, 2, 1, 2])))
    assert has_repeats(Histories(np.array([0, 2, 5]), np.array([1, 2, 3, 1, 3])))
    assert not has_repeats(Histories(np.array([0, 0]), np.array([], dtype=np.int64)))


def test_history_share_is_the_mean_share_of_distinct_items():
    # users with 2 and 3 distinct items (one repeat), one user without any, 10 items
    h = Histories(np.array([0, 2, 6, 6]), np.array([1, 2, 3, 1, 3, 4]))
    assert history_share(h, 10) == pytest.approx((2 + 3) / 2 / 10)
    assert history_share(Histories(np.array([0, 0]), np.array([], dtype=np.int64)), 10) == 0.0


def test_mask_seen_reaches_training_and_needs_the_full_softmax(synthetic_ds, monkeypatch):
    calls = []
    real_loss = next_item_loss

    def spy(*args, **kw):
        calls.append(kw.get("seen"))
        return real_loss(*args, **kw)

    monkeypatch.setattr("genrec.models.sequential.next_item_loss", spy)
    m = fit(make("sasrec", epochs=1, mask_seen="on"), synthetic_ds, ONE_THREAD)
    assert calls and all(isinstance(s, SeenItems) for s in calls)
    assert m.fit_info_["mask_seen"] and np.isfinite(m.fit_info_["phases"][0]["curve"][0]["loss"])
    one = calls[0]
    calls.clear()
    m = fit(make("sasrec", epochs=1), synthetic_ds, ONE_THREAD)
    assert calls and all(s is None for s in calls) and not m.fit_info_["mask_seen"]
    # auto: on with the full softmax (synthetic data has no repeats), off with the sampled one
    on = fit(make("sasrec", epochs=1, mask_seen="auto"), synthetic_ds, ONE_THREAD)
    assert on.fit_info_["mask_seen"]
    sampled = fit(make("sasrec", epochs=1, mask_seen="auto", loss="sampled"), synthetic_ds, ONE_THREAD)
    assert not sampled.fit_info_["mask_seen"]
    repeats = prepare(generate(), DataConfig(dedup="none"), cache=False)  # users come back to items
    assert has_repeats(repeats.train)
    assert not fit(make("sasrec", epochs=1, mask_seen="auto"), repeats, ONE_THREAD).fit_info_["mask_seen"]
    # and off where histories cover less of the catalogue than SEEN_SHARE (synthetic: ~5.6%)
    assert on.fit_info_["history_share"] == pytest.approx(
        history_share(synthetic_ds.train, synthetic_ds.n_items), abs=1e-5
    )
    monkeypatch.setattr("genrec.models.sequential.SEEN_SHARE", on.fit_info_["history_share"] + 1e-4)
    assert not fit(make("sasrec", epochs=1, mask_seen="auto"), synthetic_ds, ONE_THREAD).fit_info_[
        "mask_seen"
    ]
    with pytest.raises(ValueError, match="mask_seen needs the full softmax"):
        fit(make("hstu", epochs=1, loss="sampled", mask_seen="on"), synthetic_ds, ONE_THREAD)
    with pytest.raises(ValueError, match="mask_seen needs the full softmax"):
        next_item_loss(
            torch.zeros(1, 2),
            torch.ones(1, dtype=torch.long),
            torch.zeros(3, 2),
            "ce",
            None,
            0,
            smoothing=0.1,
            seen=one,
        )
