"""Generating a list of k distinct items: top-k, beam search, temperature / top-p sampling. Every
strategy is batched over users and honours the same `Constraints` (which may differ per row).

What the scores of a list mean:
- topk: the model's own score of each item (`model.score`), best first. Any model.
- beam, sample: the model's log-probability of the item given the history *and the items above it*
  (log-softmax over the whole catalogue, before constraints, temperature or nucleus), so the list's
  joint log-probability is their sum. Only models whose softmax(scores) is their distribution over the
  next item (`Recommender.next_item_logits`: SASRec, HSTU, tiger, Mult-VAE/DAE) have one; for the
  others (Pop, EASE, CFGAN) beam and sample are refused with the reason.
- beam on a code-trie model (tiger, `CodeTrieModel`): the next item's code tuple is decoded level by
  level over the trie (genrec.generation.trie); the list is the k best complete tuples, each scored
  log p(item | history).

    slates = generate(model, histories, k=10, strategy="beam", beam_size=4,
                      constraints=Constraints(blocked=ids, category_cap=3, item_category=ds.item_category))
    slates.items   # (B, k) internal item ids, 0 where fewer than k items are eligible
    slates.scores  # (B, k), -inf at those padding slots
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from genrec.data.dataset import Histories
from genrec.evaluation.metrics import MAX_CELLS
from genrec.generation.constraints import Constraints, Eligibility
from genrec.generation.decoders import StaticDecoder, decoder_for
from genrec.generation.trie import trie_beam_chunk
from genrec.models.base import CodeTrieModel, Recommender
from genrec.ranking import RowSets, gumbel, nucleus, row_keys, top_k

STRATEGIES = ("topk", "beam", "sample")
MAX_K = 1000  # the longest list the CLI and the HTTP API write
# a row with no eligible item left emits padding (item 0) at this finite log-prob, so such beams sort
# below every complete beam but keep the order of their real prefixes (never -inf, which ties)
PAD_LOGP = -1e6


@dataclass
class Slates:
    items: np.ndarray  # (B, k) int64 internal item ids; 0 = padding (not enough eligible items)
    scores: np.ndarray  # (B, k) float32; -inf at padding


def check_strategy(model: Recommender, strategy: str) -> None:
    """ValueError with the reason when `strategy` is unknown or means nothing for this model."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if strategy != "topk" and not model.next_item_logits:
        raise ValueError(
            f"{model.name} scores are not a distribution over next items (softmax of them is not "
            f"p(item | history)), so strategy {strategy} has no log-probabilities to search or sample; "
            "use strategy topk"
        )


def generate(
    model: Recommender,
    histories: Histories,
    k: int = 10,
    strategy: str = "topk",
    constraints: Constraints | None = None,
    *,
    beam_size: int = 4,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    use_cache: bool | None = None,
    batch_size: int = 256,
    scores: torch.Tensor | None = None,
) -> Slates:
    """One list of `k` distinct items per history row (see the module docstring).

    use_cache: None = the KV cache when the model has one, else recompute the prefix; False = always
    recompute (the baseline); True = require the cache.
    scores: `model.score(histories)` when the caller already has it (e.g. from cached user vectors);
    topk only.
    """
    check_strategy(model, strategy)
    if scores is not None and strategy != "topk":
        raise ValueError(f"precomputed scores are for strategy topk; {strategy} decodes from the model")
    if strategy == "topk":
        return top_k_slates(model, histories, k, constraints, batch_size=batch_size, scores=scores)
    if strategy == "beam" and isinstance(model, CodeTrieModel):
        return trie_beam(model, histories, k, beam_size, constraints, batch_size=batch_size)
    if strategy == "beam":
        return beam_search(
            model, histories, k, beam_size, constraints, use_cache=use_cache, batch_size=batch_size
        )
    return sample(
        model, histories, k, temperature, top_p, seed, constraints, use_cache=use_cache, batch_size=batch_size
    )


def _check_k(k: int) -> None:
    if not (isinstance(k, (int, np.integer)) and k >= 1):
        raise ValueError(f"k must be a positive integer, got {k!r}")


def _check_beam(beam_size: int) -> None:
    if not (isinstance(beam_size, (int, np.integer)) and beam_size >= 1):
        raise ValueError(f"beam_size must be a positive integer, got {beam_size!r}")


def _chunks(
    histories: Histories,
    constraints: Constraints | None,
    batch_size: int,
    fn: Callable[[Histories, Constraints, slice], Slates],
) -> Slates:
    """Run `fn(histories, constraints, rows)` on row chunks (bounds the (users x beams x items) score
    matrices) and stack the slates; per-row constraints follow their rows."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    c = constraints or Constraints()
    for name, f in (("allowed", c.allowed), ("blocked", c.blocked)):
        if isinstance(f, RowSets) and len(f) != len(histories):
            raise ValueError(f"constraints.{name} has {len(f)} rows but there are {len(histories)} histories")
    if 0 < len(histories) <= batch_size:  # one chunk: no copies (a served request is often one row)
        return fn(histories, c, slice(0, len(histories)))
    parts = []
    for s in range(0, len(histories), batch_size):
        rows = slice(s, s + batch_size)
        parts.append(fn(histories.take(rows), c.take(rows), rows))
    if not parts:
        return Slates(np.zeros((0, 0), np.int64), np.zeros((0, 0), np.float32))
    return Slates(np.concatenate([p.items for p in parts]), np.concatenate([p.scores for p in parts]))


def _logits(scores: torch.Tensor) -> torch.Tensor:
    s = scores.float().clone()
    s[:, 0] = -torch.inf
    return s


# --- top-k ------------------------------------------------------------------------------------------
def top_k_slates(
    model: Recommender,
    histories: Histories,
    k: int,
    constraints: Constraints | None = None,
    batch_size: int = 256,
    scores: torch.Tensor | None = None,
    max_cells: int = MAX_CELLS,
) -> Slates:
    """The k best-scored eligible items of one forward pass (or of `scores`, the model's scores of
    `histories`). With a category cap the list is filled greedily in score order, skipping items whose
    category is full. Users are scored `batch_size` at a time, fewer when a batch would hold more than
    `max_cells` scores, so memory stays bounded as the catalogue grows (the lists do not change)."""
    _check_k(k)
    if scores is None and model.n_items_:
        batch_size = max(1, min(batch_size, max_cells // (model.n_items_ + 1)))
    if scores is not None and len(scores) != len(histories):
        raise ValueError(f"scores has {len(scores)} rows but there are {len(histories)} histories")

    def fn(h: Histories, c: Constraints, rows: slice) -> Slates:
        s = model.score(h) if scores is None else scores[rows]
        if c.category_cap is not None:
            return _beam_chunk(StaticDecoder(s), h, k, 1, c, normalize=False)
        items, vals = top_k(c.masked(s, h), k)
        return Slates(items.numpy().astype(np.int64), vals.numpy().astype(np.float32))

    return _chunks(histories, constraints, batch_size, fn)


# --- beam search over the code trie -----------------------------------------------------------------
def trie_beam(
    model: CodeTrieModel,
    histories: Histories,
    k: int,
    beam_size: int = 4,
    constraints: Constraints | None = None,
    batch_size: int = 256,
) -> Slates:
    """Beam search over a code-trie model's item codes (genrec.generation.trie): the k most likely
    eligible next items, each scored log p(item | history)."""
    _check_k(k)
    _check_beam(beam_size)
    return _chunks(
        histories,
        constraints,
        batch_size,
        lambda h, c, _: Slates(*trie_beam_chunk(model, h, k, beam_size, c)),
    )


# --- beam search ------------------------------------------------------------------------------------
def beam_search(
    model: Recommender,
    histories: Histories,
    k: int,
    beam_size: int = 4,
    constraints: Constraints | None = None,
    use_cache: bool | None = None,
    batch_size: int = 256,
) -> Slates:
    """Autoregressive beam search for the list of k distinct items with the highest joint log-probability
    sum_t log p(i_t | history, i_<t). The model encodes each history once (`start`), then every step
    appends one item per beam (`extend`) after regrouping the cache rows by surviving beam (`reorder`).
    `beam_size=1` is greedy decoding."""
    check_strategy(model, "beam")
    _check_k(k)
    _check_beam(beam_size)
    dec = decoder_for(model, use_cache)
    return _chunks(histories, constraints, batch_size, lambda h, c, _: _beam_chunk(dec, h, k, beam_size, c))


def _beam_chunk(dec, hist: Histories, k: int, W: int, c: Constraints, normalize: bool = True) -> Slates:
    B = len(hist)
    scores, cache = dec.start(hist)
    V = scores.shape[1]
    elig = Eligibility(c, hist, V - 1)
    rowmap = torch.arange(B)  # user row of each decoding row
    slate = torch.zeros(B, 0, dtype=torch.long)  # (R, t) items so far
    step_lp = torch.zeros(B, 0)  # (R, t) per-item log-prob
    cum = torch.zeros(B, dtype=torch.float64)  # (R,) joint log-prob (float64: PAD_LOGP stays exact)
    counts = elig.new_counts(B)
    for t in range(k):
        lp = _logits(scores)
        if normalize:
            lp = torch.log_softmax(lp, dim=1)
        lp = elig.apply(lp.cpu(), rowmap, slate, counts)
        stuck = torch.isinf(lp).all(1)
        lp[stuck, 0] = PAD_LOGP
        nb = len(rowmap) // B  # beams per user: 1 at the first step, then min(W, ...)
        # the W best extensions of a user are each among the W best of their own beam: select per row
        # first, then across the user's beams (never materialises a (B, W * V) float64 matrix)
        Wr = min(W, V)
        row_lp, row_item = lp.topk(Wr, dim=1)  # (R, Wr)
        cand = (cum[:, None] + row_lp.double()).view(B, nb * Wr)
        val, idx = cand.topk(min(W, nb * Wr), dim=1)  # (B, W')
        rows = (torch.arange(B)[:, None] * nb + idx // Wr).flatten()  # parent decoding row
        item = row_item[rows, (idx % Wr).flatten()]
        item_lp = lp[rows, item]
        dead = torch.isinf(val.flatten()) | (item == 0)
        item = item.masked_fill(dead, 0)
        item_lp = item_lp.masked_fill(dead, -torch.inf)
        cum, rowmap = val.flatten(), rowmap[rows]
        slate = torch.cat([slate[rows], item[:, None]], 1)
        step_lp = torch.cat([step_lp[rows], item_lp[:, None]], 1)
        counts = elig.count(counts[rows], item)
        if t < k - 1:
            cache = dec.reorder(cache, rows)
            scores, cache = dec.extend(cache, item)
    best = torch.arange(B) * (len(rowmap) // B)  # topk sorts: beam 0 of each user is the best
    return Slates(slate[best].numpy(), step_lp[best].numpy().astype(np.float32))


# --- sampling ---------------------------------------------------------------------------------------
def sample(
    model: Recommender,
    histories: Histories,
    k: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    constraints: Constraints | None = None,
    use_cache: bool | None = None,
    batch_size: int = 256,
) -> Slates:
    """Draw a list of k distinct items autoregressively: each item from softmax(logits / temperature)
    restricted to the eligible items and to the top-p nucleus, conditioned on the items drawn before.

    temperature -> 0 approaches greedy decoding (temperature = 0 is exactly greedy); top_p < 1 keeps the
    smallest set of most likely items whose probability reaches top_p. Draws are reproducible: the
    noise for (seed, user, history, step, item) comes from a counter-based hash, so a user gets the same
    list alone or in any batch."""
    check_strategy(model, "sample")
    _check_k(k)
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    dec = decoder_for(model, use_cache)
    return _chunks(
        histories,
        constraints,
        batch_size,
        lambda h, c, _: _sample_chunk(dec, h, k, temperature, top_p, seed, c),
    )


def _sample_chunk(
    dec, hist: Histories, k: int, temperature: float, top_p: float, seed: int, c: Constraints
) -> Slates:
    B = len(hist)
    scores, cache = dec.start(hist)
    V = scores.shape[1]
    elig = Eligibility(c, hist, V - 1)
    rowmap = torch.arange(B)
    slate = torch.zeros(B, 0, dtype=torch.long)
    step_lp = torch.zeros(B, 0)
    counts = elig.new_counts(B)
    keys = row_keys(hist, seed)
    for t in range(k):
        logits = _logits(scores).cpu()
        model_lp = torch.log_softmax(logits, dim=1)
        z = elig.apply(logits, rowmap, slate, counts)
        stuck = torch.isinf(z).all(1)
        if temperature > 0:
            # best logit moved to 0 first, in float64: a tiny temperature tends to greedy, never to inf - inf
            z = (z.double() - z.amax(1, keepdim=True).double().clamp_min(-1e300)) / temperature
            if top_p < 1:
                z = z.masked_fill(~nucleus(z, top_p), -torch.inf)
            z = z.double() + gumbel(keys, t, V)  # Gumbel-max: argmax is a draw from softmax(z)
        item = z.argmax(1).masked_fill(stuck, 0)
        item_lp = model_lp.gather(1, item[:, None])[:, 0].masked_fill(stuck, -torch.inf)
        slate = torch.cat([slate, item[:, None]], 1)
        step_lp = torch.cat([step_lp, item_lp[:, None]], 1)
        counts = elig.count(counts, item)
        if t < k - 1:
            scores, cache = dec.extend(cache, item)
    return Slates(slate.numpy(), step_lp.numpy().astype(np.float32))
