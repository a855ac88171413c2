"""Generation: top-k, beam search and sampling under constraints, KV cache vs recompute, batching.

`DecayRNN` is a test double with a real incremental state (a tanh RNN over item embeddings): its
`score` reads the whole history, while `start/extend/reorder` carry the state, so a wrong cache
reorder or a wrong prefix changes the generated lists."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from genrec.data.dataset import Histories
from genrec.generation import Constraints, beam_search, generate, sample, top_k_slates
from genrec.generation.decoders import RecomputeDecoder, decoder_for, extend_histories
from genrec.models import get_model_class
from genrec.models.base import ExportsEmbeddings, IncrementalModel, Recommender
from genrec.ranking import gumbel, nucleus, row_keys
from genrec.training import fit


class DecayRNN(Recommender, IncrementalModel, ExportsEmbeddings):
    """h_t = tanh(0.7 h_{t-1} + E[i_t]); scores = 3 * h @ E.T."""

    name = "decay-rnn"
    next_item_logits = True
    embedding_scoring = "score(user, item) = 3 * user_vector . item_vector"

    def __init__(self, n_items: int, dim: int = 16, seed: int = 0) -> None:
        super().__init__()
        self.n_items_ = n_items
        g = torch.Generator().manual_seed(seed)
        self.E = torch.randn(n_items + 1, dim, generator=g) / dim**0.5
        self.E[0] = 0

    def _step(self, h: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return torch.tanh(0.7 * h + self.E[items])

    def _scores(self, h: torch.Tensor) -> torch.Tensor:
        return 3 * h @ self.E.T

    def user_embeddings(self, histories: Histories) -> torch.Tensor:
        x = torch.from_numpy(histories.padded(left=True))  # (B, L), pads on the left keep h = 0
        h = torch.zeros(len(histories), self.E.shape[1])
        for t in range(x.shape[1]):
            h = torch.where((x[:, t] > 0)[:, None], self._step(h, x[:, t]), h)
        return h

    def item_embeddings(self) -> torch.Tensor:
        return self.E

    def score(self, histories: Histories) -> torch.Tensor:
        return self._scores(self.user_embeddings(histories))

    def start(self, histories: Histories):
        h = self.user_embeddings(histories)
        return self._scores(h), h

    def extend(self, cache: torch.Tensor, items: torch.Tensor):
        h = self._step(cache, items)
        return self._scores(h), h

    def reorder(self, cache: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return cache[index]


class NoCache(Recommender):
    """The same model seen through `score` only (no protocol): generation must recompute prefixes."""

    next_item_logits = True

    def __init__(self, inner: DecayRNN) -> None:
        super().__init__()
        self.inner, self.n_items_ = inner, inner.n_items_

    def score(self, histories: Histories) -> torch.Tensor:
        return self.inner.score(histories)


class FixedScores(Recommender):
    """History-independent, tie-free scores per user: generation order = score order."""

    next_item_logits = True

    def __init__(self, n_items: int) -> None:
        super().__init__()
        self.n_items_ = n_items

    def score(self, histories: Histories) -> torch.Tensor:
        g = torch.Generator().manual_seed(7)
        base = torch.randn(n := self.n_items_ + 1, generator=g) * 2
        return base[None, :] + torch.from_numpy(histories.users)[:, None].float() * 1e-3 * torch.arange(n)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors: intra-op threads only add synchronisation (10-50x slower on a loaded machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def rnn(synthetic_ds):
    return DecayRNN(synthetic_ds.n_items)


@pytest.fixture(scope="module")
def hist(synthetic_ds):
    return synthetic_ds.test.history.take(np.arange(40))


def cats(ds, items):
    return np.asarray(ds.item_category)[items]


def check_rules(ds, hist, items, cons: Constraints):
    """Every rule, row by row: distinct, no padding inside, no history, allow, block, category cap."""
    for b, row in enumerate(items):
        real = row[row > 0]
        assert (row[: len(real)] > 0).all(), "padding only at the end"
        assert len(set(real.tolist())) == len(real), "duplicates"
        if cons.exclude_seen:
            assert not set(real.tolist()) & set(hist.row(b).tolist()), "history item generated"
        if cons.allowed is not None:
            assert set(real.tolist()) <= set(cons.allowed.tolist())
        if cons.blocked is not None:
            assert not set(real.tolist()) & set(cons.blocked.tolist())
        if cons.category_cap is not None:
            assert max(Counter(cats(ds, real).tolist()).values()) <= cons.category_cap


def test_protocol_and_decoder_choice(rnn):
    assert isinstance(rnn, IncrementalModel)
    assert decoder_for(rnn) is rnn
    assert isinstance(decoder_for(rnn, use_cache=False), RecomputeDecoder)
    assert isinstance(decoder_for(NoCache(rnn)), RecomputeDecoder)
    with pytest.raises(ValueError, match="no KV cache"):
        decoder_for(NoCache(rnn), use_cache=True)


def test_beam_slates_distinct_and_exclude_history(rnn, hist, synthetic_ds):
    s = beam_search(rnn, hist, k=10, beam_size=4)
    assert s.items.shape == s.scores.shape == (len(hist), 10)
    assert (s.items > 0).all() and np.isfinite(s.scores).all() and (s.scores <= 0).all()
    check_rules(synthetic_ds, hist, s.items, Constraints())
    kept = beam_search(rnn, hist, k=10, beam_size=4, constraints=Constraints(exclude_seen=False))
    # the RNN likes to repeat recent items; kept history must show up somewhere when allowed
    assert any(set(r.tolist()) & set(hist.row(b).tolist()) for b, r in enumerate(kept.items))


@pytest.mark.parametrize("strategy", ["topk", "beam", "sample"])
def test_constraints_honoured_by_every_strategy(strategy, rnn, hist, synthetic_ds):
    rng = np.random.default_rng(0)
    n = synthetic_ds.n_items
    allowed = rng.choice(np.arange(1, n + 1), 150, replace=False)
    blocked = allowed[:20]  # blocked wins over allowed
    cons = Constraints(
        allowed=allowed, blocked=blocked, category_cap=2, item_category=synthetic_ds.item_category
    )
    s = generate(rnn, hist, 10, strategy, cons, beam_size=3, temperature=1.5, seed=1)
    check_rules(synthetic_ds, hist, s.items, cons)
    assert (s.items > 0).all()  # 8 categories x cap 2 >= 10: lists stay full
    # the cap binds: unconstrained lists of this model break it
    free = generate(rnn, hist, 10, strategy, Constraints(), beam_size=3, temperature=1.5, seed=1)
    assert max(max(Counter(cats(synthetic_ds, r).tolist()).values()) for r in free.items) > 2


@pytest.mark.parametrize("strategy", ["topk", "beam", "sample"])
def test_too_few_eligible_items_pad_the_end(strategy, rnn, hist, synthetic_ds):
    allowed = np.setdiff1d(np.arange(1, 8), np.concatenate([hist.row(b) for b in range(len(hist))]))[:3]
    s = generate(rnn, hist, 5, strategy, Constraints(allowed=allowed), beam_size=4, seed=0)
    assert set(s.items[:, :3].ravel().tolist()) <= set(allowed.tolist()) and (s.items[:, :3] > 0).all()
    assert (s.items[:, 3:] == 0).all() and np.isneginf(s.scores[:, 3:]).all()


@pytest.mark.parametrize("beam_size", [1, 4])
def test_kv_cache_equals_recompute(beam_size, rnn, hist, synthetic_ds):
    cons = Constraints(category_cap=3, item_category=synthetic_ds.item_category)
    cached = beam_search(rnn, hist, 10, beam_size, cons)
    recomputed = beam_search(NoCache(rnn), hist, 10, beam_size, cons)
    forced = beam_search(rnn, hist, 10, beam_size, cons, use_cache=False)
    np.testing.assert_array_equal(cached.items, recomputed.items)
    np.testing.assert_array_equal(cached.items, forced.items)
    np.testing.assert_allclose(cached.scores, recomputed.scores, rtol=1e-5, atol=1e-5)
    s1 = sample(rnn, hist, 10, temperature=1.0, seed=3)
    s2 = sample(NoCache(rnn), hist, 10, temperature=1.0, seed=3)
    np.testing.assert_array_equal(s1.items, s2.items)


def greedy_by_hand(model, hist, k):
    """Reference greedy decoding: re-score history + generated items, take the best unseen item."""
    out = []
    for b in range(len(hist)):
        seq, picked = list(hist.row(b)), []
        for _ in range(k):
            s = torch.log_softmax(model.score(Histories.from_lists([seq]))[0, 1:], 0)
            s[np.array(hist.row(b).tolist() + picked, dtype=np.int64) - 1] = -torch.inf
            item = int(s.argmax()) + 1
            picked.append(item)
            seq.append(item)
        out.append(picked)
    return np.array(out)


def test_beam_size_one_is_greedy_and_wider_beams_score_higher(rnn, hist):
    h = hist.take(np.arange(10))
    greedy = beam_search(rnn, h, 8, beam_size=1)
    np.testing.assert_array_equal(greedy.items, greedy_by_hand(rnn, h, 8))
    np.testing.assert_array_equal(sample(rnn, h, 8, temperature=0.0).items, greedy.items)
    wide = beam_search(rnn, hist, 8, beam_size=8)
    joint_greedy = beam_search(rnn, hist, 8, beam_size=1).scores.sum(1)
    assert wide.scores.sum(1).mean() > joint_greedy.mean()
    assert (wide.scores.sum(1) >= joint_greedy - 1e-4).mean() >= 0.9
    # the first item of greedy decoding is the top-1 of the next-item distribution
    np.testing.assert_array_equal(greedy.items[:, 0], top_k_slates(rnn, h, 1).items[:, 0])


def test_low_temperature_approaches_topk_and_greedy(rnn, hist, synthetic_ds):
    fixed = FixedScores(synthetic_ds.n_items)
    np.testing.assert_array_equal(
        sample(fixed, hist, 10, temperature=1e-4, seed=5).items, top_k_slates(fixed, hist, 10).items
    )
    np.testing.assert_array_equal(
        sample(rnn, hist, 10, temperature=1e-4, seed=5).items, beam_search(rnn, hist, 10, beam_size=1).items
    )
    hot = sample(fixed, hist, 10, temperature=5.0, seed=5).items
    assert (hot != top_k_slates(fixed, hist, 10).items).any()


def test_sampling_reproducible_and_seeded(rnn, hist):
    a = sample(rnn, hist, 10, temperature=1.0, seed=11)
    b = sample(rnn, hist, 10, temperature=1.0, seed=11)
    c = sample(rnn, hist, 10, temperature=1.0, seed=12)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert (a.items != c.items).any(axis=1).mean() > 0.5


def test_sampling_follows_the_softmax(synthetic_ds):
    """Draws over 4,000 distinct users match softmax(logits / T) (Gumbel-max with hashed noise)."""
    n = 5
    logits = torch.tensor([0.0, 1.0, 0.5, -0.5, 2.0, 0.0])

    class Five(Recommender):
        next_item_logits = True

        def score(self, h):
            return logits.expand(len(h), -1).clone()

    users = np.arange(1, 4001)
    h = Histories.from_lists([[1]] * len(users), users=users)
    cons = Constraints(exclude_seen=False)
    for T in (1.0, 2.0):
        first = sample(Five(), h, 1, temperature=T, seed=0, constraints=cons).items[:, 0]
        freq = np.bincount(first, minlength=n + 1)[1:] / len(first)
        expect = torch.softmax(logits[1:] / T, 0).numpy()
        np.testing.assert_allclose(freq, expect, atol=0.025)


def test_top_p_keeps_only_the_nucleus(rnn, hist):
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.05, 0.15, 0.3, 0.5]])
    logits = probs.log()
    assert nucleus(logits, 0.7).tolist() == [[True, True, False, False], [False, False, True, True]]
    assert nucleus(logits, 0.81).sum(1).tolist() == [3, 3]
    assert nucleus(logits, 1e-6).sum(1).tolist() == [1, 1]
    # every first draw over many seeds lies in the first step's nucleus
    p = 0.3
    scores, _ = rnn.start(hist)
    z = scores.clone()
    z[:, 0] = -torch.inf
    z[torch.from_numpy(hist.row_ids()), torch.from_numpy(hist.items)] = -torch.inf
    keep = nucleus(z, p)
    firsts = np.stack([sample(rnn, hist, 1, top_p=p, seed=s).items[:, 0] for s in range(15)], 1)
    assert keep.gather(1, torch.from_numpy(firsts)).all()
    free = np.stack([sample(rnn, hist, 1, top_p=1.0, seed=s).items[:, 0] for s in range(15)], 1)
    assert not keep.gather(1, torch.from_numpy(free)).all()  # without the nucleus the tail is drawn too


@pytest.mark.parametrize("strategy", ["topk", "beam", "sample"])
def test_batched_equals_per_user(strategy, rnn, hist, synthetic_ds):
    cons = Constraints(category_cap=3, item_category=synthetic_ds.item_category)
    h = hist.take(np.arange(12))
    batched = generate(rnn, h, 6, strategy, cons, beam_size=3, seed=4)
    chunked = generate(rnn, h, 6, strategy, cons, beam_size=3, seed=4, batch_size=5)
    single = [generate(rnn, h.take([b]), 6, strategy, cons, beam_size=3, seed=4) for b in range(len(h))]
    np.testing.assert_array_equal(batched.items, np.concatenate([s.items for s in single]))
    np.testing.assert_array_equal(batched.items, chunked.items)
    np.testing.assert_allclose(batched.scores, np.concatenate([s.scores for s in single]), rtol=1e-5)


def test_models_without_the_protocol(synthetic_ds, hist):
    """Mult-DAE's softmax is its next-item distribution but it has no KV cache: beam and sample
    re-score the extended history."""
    dae = fit(get_model_class("multdae")(epochs=1, hidden=[32]), synthetic_ds)
    assert not isinstance(dae, IncrementalModel)
    cons = Constraints(category_cap=2, item_category=synthetic_ds.item_category)
    for strategy in ("beam", "sample"):
        s = generate(dae, hist, 10, strategy, cons, beam_size=2, seed=0)
        check_rules(synthetic_ds, hist, s.items, cons)
        assert (s.items > 0).all()
    with pytest.raises(ValueError, match="no KV cache"):
        generate(dae, hist, 10, "beam", use_cache=True)


@pytest.mark.parametrize("name", ["ease", "pop"])
def test_beam_and_sample_refused_without_a_next_item_distribution(name, synthetic_ds, hist):
    model = get_model_class(name)(**({"l2": 100.0} if name == "ease" else {})).fit(synthetic_ds)
    top = generate(model, hist, 10, "topk")
    check_rules(synthetic_ds, hist, top.items, Constraints())
    assert (np.diff(top.scores, axis=1) <= 0).all()  # topk scores are the model's, best first
    for strategy in ("beam", "sample"):
        with pytest.raises(
            ValueError, match=f"{name} scores are not a distribution over next items.*use strategy topk"
        ):
            generate(model, hist, 10, strategy)
    with pytest.raises(ValueError, match="not a distribution"):
        beam_search(model, hist, 10)
    with pytest.raises(ValueError, match="not a distribution"):
        sample(model, hist, 10)


@pytest.mark.parametrize("strategy", ["topk", "beam", "sample"])
def test_per_row_constraints_equal_row_by_row_calls(strategy, rnn, hist, synthetic_ds):
    """One call with a different blocked / allowed set per row = one call per row with that row's set."""
    h = hist.take(np.arange(9))
    rng = np.random.default_rng(3)
    n = synthetic_ds.n_items
    blocked = [
        rng.choice(np.arange(1, n + 1), int(rng.integers(0, 60)), replace=False) for _ in range(len(h))
    ]
    allowed = [None if b % 3 else rng.choice(np.arange(1, n + 1), 80, replace=False) for b in range(len(h))]
    cap = dict(category_cap=3, item_category=synthetic_ds.item_category)
    batched = generate(
        rnn,
        h,
        8,
        strategy,
        Constraints(allowed=allowed, blocked=blocked, **cap),
        beam_size=3,
        seed=2,
        batch_size=4,
    )
    for b in range(len(h)):
        one = generate(
            rnn,
            h.take([b]),
            8,
            strategy,
            Constraints(allowed=allowed[b], blocked=blocked[b], **cap),
            beam_size=3,
            seed=2,
        )
        np.testing.assert_array_equal(batched.items[b], one.items[0])
        np.testing.assert_allclose(batched.scores[b], one.scores[0], rtol=1e-5)
        assert not set(batched.items[b].tolist()) & set(blocked[b].tolist())
        if allowed[b] is not None:
            assert set(batched.items[b][batched.items[b] > 0].tolist()) <= set(allowed[b].tolist())
    # the rows really differ: the same call with row 0's filters everywhere gives other lists
    same = generate(
        rnn, h, 8, strategy, Constraints(allowed=allowed[0], blocked=blocked[0], **cap), beam_size=3, seed=2
    )
    assert (same.items != batched.items).any()
    with pytest.raises(ValueError, match="2 rows but there are 9 histories"):
        generate(rnn, h, 8, strategy, Constraints(blocked=blocked[:2]))


def test_extend_histories_keeps_order_and_timestamps():
    base = Histories(np.array([0, 2, 2, 5]), np.array([1, 2, 3, 4, 5]), np.array([10, 20, 30, 40, 50]))
    ext = extend_histories(base, np.array([2, 0, 1, 2]), np.array([[7, 8], [9, 6], [4, 4], [1, 1]]))
    assert [ext.row(r).tolist() for r in range(4)] == [[3, 4, 5, 7, 8], [1, 2, 9, 6], [4, 4], [3, 4, 5, 1, 1]]
    assert ext.timestamps.tolist() == [30, 40, 50, 50, 50, 10, 20, 20, 20, 0, 0, 30, 40, 50, 50, 50]
    # with request times, generated items are consumed at the request, and the rows keep it
    base.request_ts = np.array([25, 35, 90])
    ext = extend_histories(base, np.array([2, 0, 1, 2]), np.array([[7, 8], [9, 6], [4, 4], [1, 1]]))
    assert ext.timestamps.tolist() == [30, 40, 50, 90, 90, 10, 20, 25, 25, 35, 35, 30, 40, 50, 90, 90]
    assert ext.request_ts.tolist() == [90, 25, 35, 90]


def test_bad_arguments(rnn, hist):
    with pytest.raises(ValueError, match="strategy"):
        generate(rnn, hist, 5, "greedy")
    with pytest.raises(ValueError, match="k must be"):
        generate(rnn, hist, 0, "beam")
    with pytest.raises(ValueError, match="beam_size"):
        generate(rnn, hist, 5, "beam", beam_size=0)
    with pytest.raises(ValueError, match="temperature"):
        generate(rnn, hist, 5, "sample", temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        generate(rnn, hist, 5, "sample", top_p=0)
    with pytest.raises(ValueError, match="needs item categories"):
        Constraints(category_cap=2)
    with pytest.raises(ValueError, match="category_cap"):
        Constraints(category_cap=0, item_category=np.array(["", "a"]))


def test_noise_is_a_pure_function_of_user_and_history():
    h = Histories.from_lists([[1, 2], [3], [1, 2]], users=np.array([5, 6, 5]))
    k = row_keys(h, seed=0)
    assert k[0] == k[2] and k[0] != k[1]
    assert row_keys(h.take([1]), seed=0)[0] == k[1]
    assert row_keys(h, seed=1)[0] != k[0]
    g = gumbel(k, 0, 50)
    assert torch.equal(g[0], g[2]) and not torch.equal(g[0], gumbel(k, 1, 50)[0])


def test_topk_memory_bound_scores_fewer_users_at_once_and_keeps_the_lists(hist, synthetic_ds):
    """max_cells bounds the (users x items) scores held at once: a huge catalogue gets fewer users per
    forward pass, never different lists."""
    fixed = FixedScores(synthetic_ds.n_items)
    rows_per_call: list[int] = []
    score = fixed.score
    fixed.score = lambda h: (rows_per_call.append(len(h)), score(h))[1]
    whole = top_k_slates(fixed, hist, 10)
    assert max(rows_per_call) == min(len(hist), 256)
    rows_per_call.clear()
    bounded = top_k_slates(fixed, hist, 10, max_cells=3 * (synthetic_ds.n_items + 1))
    assert max(rows_per_call) == 3 and sum(rows_per_call) == len(hist)
    np.testing.assert_array_equal(bounded.items, whole.items)
    np.testing.assert_array_equal(bounded.scores, whole.scores)
