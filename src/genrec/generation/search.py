"""Generating a list of N distinct items: top-k, autoregressive beam search, temperature / top-p
sampling. Every strategy is batched over users and honours the same `Constraints`.

Scores are treated as next-item logits. Beam search and sampling report, for every item, the model's
log-probability of that item given the history *and the items generated before it* (log-softmax over
the whole catalogue, before constraints, temperature or nucleus); top-k reports the raw model score.

    slates = generate(model, histories, k=10, strategy="beam", beam_size=4,
                      constraints=Constraints(blocked=ids, category_cap=3, item_category=ds.item_category))
    slates.items   # (B, k) internal item ids, 0 where fewer than k items are eligible
    slates.scores  # (B, k), -inf at those padding slots
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genrec.data.dataset import Histories
from genrec.generation.constraints import Constraints, Eligibility
from genrec.generation.decoders import StaticDecoder, decoder_for
from genrec.generation.topk import top_k

STRATEGIES = ("topk", "beam", "sample")
# a row with no eligible item left emits padding (item 0) at this finite log-prob, so such beams sort
# below every complete beam but keep the order of their real prefixes (never -inf, which ties)
PAD_LOGP = -1e6


@dataclass
class Slates:
    items: np.ndarray  # (B, k) int64 internal item ids; 0 = padding (not enough eligible items)
    scores: np.ndarray  # (B, k) float32; -inf at padding


def generate(
    model,
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
) -> Slates:
    """One list of `k` distinct items per history row (see the module docstring).

    use_cache: None = the KV cache when the model has one, else recompute the prefix; False = always
    recompute (the baseline); True = require the cache.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if strategy == "topk":
        return top_k_slates(model, histories, k, constraints, batch_size=batch_size)
    if strategy == "beam":
        return beam_search(model, histories, k, beam_size, constraints, use_cache=use_cache,
                           batch_size=batch_size)
    return sample(model, histories, k, temperature, top_p, seed, constraints, use_cache=use_cache,
                  batch_size=batch_size)


def _check_k(k: int) -> None:
    if not (isinstance(k, (int, np.integer)) and k >= 1):
        raise ValueError(f"k must be a positive integer, got {k!r}")


def _chunks(histories: Histories, batch_size: int, fn) -> Slates:
    """Run `fn` on user chunks (bounds the (users x beams x items) score matrices) and stack."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    parts = [fn(histories.take(slice(s, s + batch_size))) for s in range(0, len(histories), batch_size)]
    if not parts:
        return Slates(np.zeros((0, 0), np.int64), np.zeros((0, 0), np.float32))
    return Slates(np.concatenate([p.items for p in parts]), np.concatenate([p.scores for p in parts]))


def _logits(scores: torch.Tensor) -> torch.Tensor:
    s = scores.float().clone()
    s[:, 0] = -torch.inf
    return s


# --- top-k ------------------------------------------------------------------------------------------
def top_k_slates(model, histories: Histories, k: int, constraints: Constraints | None = None,
                 batch_size: int = 256) -> Slates:
    """The k best-scored eligible items of one forward pass. With a category cap the list is filled
    greedily in score order, skipping items whose category is full."""
    _check_k(k)
    c = constraints or Constraints()
    if c.category_cap is None:  # one topk call
        def fn(h: Histories) -> Slates:
            items, scores = top_k(model.score(h), h, k, c.exclude_seen, c.allowed, c.blocked)
            return Slates(items.astype(np.int64), scores.astype(np.float32))
        return _chunks(histories, batch_size, fn)
    return _chunks(histories, batch_size,
                   lambda h: _beam_chunk(StaticDecoder(model), h, k, 1, c, normalize=False))


# --- beam search ------------------------------------------------------------------------------------
def beam_search(model, histories: Histories, k: int, beam_size: int = 4,
                constraints: Constraints | None = None, use_cache: bool | None = None,
                batch_size: int = 256) -> Slates:
    """Autoregressive beam search for the list of k distinct items with the highest joint log-probability
    sum_t log p(i_t | history, i_<t). The model encodes each history once (`start`), then every step
    appends one item per beam (`extend`) after regrouping the cache rows by surviving beam (`reorder`).
    `beam_size=1` is greedy decoding."""
    _check_k(k)
    if not (isinstance(beam_size, (int, np.integer)) and beam_size >= 1):
        raise ValueError(f"beam_size must be a positive integer, got {beam_size!r}")
    dec = decoder_for(model, use_cache)
    c = constraints or Constraints()
    return _chunks(histories, batch_size, lambda h: _beam_chunk(dec, h, k, beam_size, c))


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
def sample(model, histories: Histories, k: int, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
           constraints: Constraints | None = None, use_cache: bool | None = None,
           batch_size: int = 256) -> Slates:
    """Draw a list of k distinct items autoregressively: each item from softmax(logits / temperature)
    restricted to the eligible items and to the top-p nucleus, conditioned on the items drawn before.

    temperature -> 0 approaches greedy decoding (temperature = 0 is exactly greedy); top_p < 1 keeps the
    smallest set of most likely items whose probability reaches top_p. Draws are reproducible: the
    noise for (seed, user, history, step, item) comes from a counter-based hash, so a user gets the same
    list alone or in any batch."""
    _check_k(k)
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    dec = decoder_for(model, use_cache)
    c = constraints or Constraints()
    return _chunks(histories, batch_size, lambda h: _sample_chunk(dec, h, k, temperature, top_p, seed, c))


def _sample_chunk(dec, hist: Histories, k: int, temperature: float, top_p: float, seed: int,
                  c: Constraints) -> Slates:
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
            z = z / temperature
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


def nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """(R, V) bool: the smallest set of most likely items whose softmax mass reaches `top_p`
    (the most likely item is always kept)."""
    probs = torch.softmax(logits.float(), dim=1)
    sp, order = probs.sort(dim=1, descending=True)
    before = sp.cumsum(1) - sp  # mass of the strictly more likely items
    keep_sorted = (before < top_p) & (sp > 0)
    keep_sorted[:, 0] = True
    return torch.zeros_like(keep_sorted).scatter_(1, order, keep_sorted)


# --- reproducible noise -------------------------------------------------------------------------------
M32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2^32 for x in [0, 2^32) without overflowing int64 (split c into 16-bit halves)."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & M32


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xorshift-multiply, "lowbias32"); a bijection on [0, 2^32)."""
    x = x & M32
    x = _mul32(x ^ (x >> 16), 0x7FEB352D)
    x = _mul32(x ^ (x >> 15), 0x846CA68B)
    return x ^ (x >> 16)


def row_keys(h: Histories, seed: int) -> torch.Tensor:
    """(B,) 32-bit key per row from (seed, user id, history contents): independent of the batch."""
    items = torch.from_numpy(h.items)
    pos = torch.arange(len(items)) - torch.from_numpy(np.repeat(h.indptr[:-1], h.lengths))
    per_item = mix32(items + mix32(pos + 0x9E3779B9))
    content = torch.zeros(len(h), dtype=torch.long).index_add_(0, torch.from_numpy(h.row_ids()), per_item)
    s = mix32(torch.tensor(seed & M32))
    return mix32(mix32(s ^ torch.from_numpy(h.users)) + content)


def gumbel(keys: torch.Tensor, step: int, V: int) -> torch.Tensor:
    """(R, V) float64 standard Gumbel noise, a pure function of (row key, step, item)."""
    s = mix32(keys + (step + 1) * 0x9E3779B9)
    u = (mix32(s[:, None] ^ torch.arange(V)[None, :]).double() + 0.5) / 2.0**32
    return -torch.log(-torch.log(u))
