"""Next-item training pieces shared by SASRec and HSTU: length-bucketed windows, the full and sampled
softmax losses, the optimiser and its learning-rate schedule.

Batching: **length bucketing**. Each user's training sequence (inputs s[:-1], targets s[1:]) is cut
into windows of at most `max_len` positions, newest window first. Every epoch the windows are sorted
by length (random tie-break), cut into batches of neighbours holding ~`batch_tokens` padded positions
(and at most `batch_seqs` windows), and the batch order is shuffled; each batch is right-padded only to
its own longest window, so padding is a few percent of the tokens instead of most of them (Amazon-style
data: median length ~6 vs max_len 200). Right padding also means pads sit after every real item, so
plain causal attention needs no padding mask.

Loss: full softmax cross-entropy over the catalogue at every real position ("ce"), or, for catalogues
too large for that, sampled softmax over the batch's own targets plus `n_negatives` uniform items with
the logQ correction of Yi et al. (RecSys 2019) ("sampled"); "auto" picks by catalogue size.
Optimiser AdamW, linear warmup then cosine decay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from genrec.data.dataset import Dataset
from genrec.models.optim import RowWiseAdamW


def pack_sorted(lengths: np.ndarray, budget: int, max_rows: int | None = None) -> list[tuple[int, int]]:
    """Greedy (start, end) runs over ascending `lengths`: each run as long as its rows padded to its
    longest (the last) fit `budget` tokens and it holds at most `max_rows` rows; at least one row."""
    runs, s, n = [], 0, len(lengths)
    while s < n:
        w = min(budget, n - s, max_rows or n)  # a run never holds more rows than the budget has tokens
        cost = np.arange(1, w + 1) * lengths[s : s + w]  # tokens of the run s..s+j: increasing
        e = s + max(1, int(np.searchsorted(cost, budget, side="right")))
        runs.append((s, e))
        s = e
    return runs


class TrainingWindows:
    """Training windows over the flat item array of `Dataset.train` (vectorised, no per-user loop).

    A user's newest window is always their last `max_len` pairs (what inference reads). The older
    pairs are cut every `max_len` back from there, or, with `shift=True`, at a new random offset each
    epoch (`batches`): the same target is then read with a different amount of context each time."""

    def __init__(
        self, data: Dataset, max_len: int, side: np.ndarray | None = None, shift: bool = False
    ) -> None:
        h = data.train
        self.items = torch.from_numpy(h.items)
        self.side = None if side is None else torch.from_numpy(side)  # side token per item (or None)
        self.ts = torch.from_numpy(h.timestamps) if h.timestamps is not None else torch.zeros_like(self.items)
        self.max_len, self.shift, self._first = max_len, shift, h.indptr[:-1]
        self._pairs = np.maximum(h.lengths - 1, 0)  # (input, target) pairs per user
        self._cut(np.zeros(len(h), dtype=np.int64))
        self.n_tokens = int(self.length.sum())

    def _cut(self, offset: np.ndarray) -> None:
        """Windows with the older pairs' first cut `offset` (U,) in [0, max_len) before the newest window
        (0: every max_len)."""
        L, pairs = self.max_len, self._pairs
        older = np.maximum(pairs - L, 0)  # pairs before the newest window
        first = np.where(offset > 0, offset, L)  # length of the newest older window (when there is one)
        n_old = np.where(older > 0, 1 + -(-np.maximum(older - first, 0) // L), 0)
        n_win = (pairs > 0) + n_old
        user = np.repeat(np.arange(len(pairs)), n_win)
        j = np.arange(n_win.sum()) - np.repeat(np.cumsum(n_win) - n_win, n_win)  # 0 = newest
        n, old, head = pairs[user], older[user], first[user]
        # j = 0: the newest window, [n - L, n); j = 1: [old - head, old); j >= 2: L each further back
        end = np.where(j == 0, n, np.where(j == 1, old, old - head - (j - 2) * L))
        begin = np.where(j == 0, n - np.minimum(n, L), np.maximum(end - np.where(j == 1, head, L), 0))
        self.user = user
        self.start = self._first[user] + begin  # flat index of the window's first input item
        self.length = end - begin

    def __len__(self) -> int:
        return len(self.start)

    def batches(
        self, batch_tokens: int, rng: np.random.Generator, batch_seqs: int | None = None
    ) -> list[np.ndarray]:
        """Length-bucketed batches of window indices, in random order, each padded to at most
        `batch_tokens` positions and holding at most `batch_seqs` windows. With `shift`, the older
        windows are cut anew first; the batches index this epoch's windows."""
        if self.shift:
            self._cut(rng.integers(0, self.max_len, len(self._pairs)))
        order = np.lexsort((rng.random(len(self)), self.length))
        batches = [order[a:b] for a, b in pack_sorted(self.length[order], batch_tokens, batch_seqs)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def gather(self, idx: np.ndarray) -> tuple[torch.Tensor, ...]:
        """Right-padded (B, T) inputs, timestamps, targets for windows `idx` (T = longest of them)."""
        start, length = torch.from_numpy(self.start[idx]), torch.from_numpy(self.length[idx])
        T = int(length.max())
        offs = torch.arange(T)[None, :]
        valid = offs < length[:, None]
        pos = (start[:, None] + offs).clamp(max=len(self.items) - 2)
        inputs = torch.where(valid, self.items[pos], 0)
        targets = torch.where(valid, self.items[pos + 1], 0)
        ts = torch.where(valid, self.ts[pos], 0)
        return inputs, ts, targets

    def gather_next_ts(self, idx: np.ndarray) -> torch.Tensor:
        """Right-padded (B, T) timestamps of the targets of windows `idx` (0 at padding)."""
        start, length = torch.from_numpy(self.start[idx]), torch.from_numpy(self.length[idx])
        offs = torch.arange(int(length.max()))[None, :]
        pos = (start[:, None] + offs).clamp(max=len(self.items) - 2)
        return torch.where(offs < length[:, None], self.ts[pos + 1], 0)

    def gather_future(self, idx: np.ndarray, k: int) -> torch.Tensor:
        """Right-padded (B, T, k): the k items after each position's target in the user's training
        history (0 past its end or at padding). Windows only bound the inputs: a target near a window's
        end still sees its user's later items."""
        start, length = torch.from_numpy(self.start[idx]), torch.from_numpy(self.length[idx])
        end = torch.from_numpy(self._first[self.user[idx]] + self._pairs[self.user[idx]] + 1)  # (B,)
        offs = torch.arange(int(length.max()))[None, :]
        pos = start[:, None, None] + offs[..., None] + 2 + torch.arange(k)  # (B, T, k) flat indices
        ok = (offs < length[:, None])[..., None] & (pos < end[:, None, None])
        return torch.where(ok, self.items[pos.clamp(max=len(self.items) - 1)], 0)

    def gather_before(self, idx: np.ndarray, n_rows: int) -> torch.Tensor:
        """(B, n_rows) bool: the items of each window's user before the window's first input."""
        first = self._first[self.user[idx]]
        n = self.start[idx] - first  # (B,) items before the window
        row = np.repeat(np.arange(len(idx)), n)
        flat = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + np.repeat(first, n)
        out = torch.zeros(len(idx), n_rows, dtype=torch.bool)
        out[torch.from_numpy(row), self.items[torch.from_numpy(flat)]] = True
        return out

    def gather_side(self, idx: np.ndarray) -> torch.Tensor:
        """Right-padded (B, T) side tokens of the inputs of windows `idx` (0 = pad / unknown)."""
        start, length = torch.from_numpy(self.start[idx]), torch.from_numpy(self.length[idx])
        offs = torch.arange(int(length.max()))[None, :]
        pos = (start[:, None] + offs).clamp(max=len(self.items) - 2)
        return torch.where(offs < length[:, None], self.side[pos], 0)


@dataclass
class SeenItems:
    """The items a user had before each loss row's target: those before the window (`before`, (B, V)
    bool) and the window's inputs up to the row's position. `inputs` (B, T) the windows; `row`, `pos`
    (N,) each loss row's window and position."""

    before: torch.Tensor
    inputs: torch.Tensor
    row: torch.Tensor
    pos: torch.Tensor

    def mask(self, s: int, e: int, targets: torch.Tensor, future: torch.Tensor | None = None) -> torch.Tensor:
        """(e - s, V) bool for loss rows s..e-1: True where an item was seen, never on the rows' targets
        (C,) nor their later targets (C, k) (data with repeats), nor on padding's column, which the
        caller handles."""
        keep = targets[:, None] if future is None else torch.cat([targets[:, None], future], 1)
        row, pos = self.row[s:e], self.pos[s:e]
        m = self.before[row]  # (C, V), a copy
        T = self.inputs.shape[1]
        prefix = self.inputs[row] * (torch.arange(T, device=pos.device)[None] <= pos[:, None])  # (C, T)
        m.scatter_(1, prefix, True)
        m.scatter_(1, keep, False)
        m[:, 0] = False
        return m


class ChunkedSoftmaxCE(torch.autograd.Function):
    """Full-softmax cross-entropy without materialising the (N, n_items) logits for autograd.

    With label smoothing e the target distribution is (1 - e) on the target plus e spread evenly over
    the V - 1 real items: loss = logsumexp - (1 - e) logit_t - e mean_j logit_j (j >= 1), the same as
    F.cross_entropy(label_smoothing) except that padding gets no share.

    Rows are processed in cache-sized chunks: logits -> log-sum-exp -> softmax -> gradient in one pass,
    so the forward already holds both gradients and backward only scales them. On CPU this is ~3x
    faster than F.cross_entropy on the full logit matrix (which is written, read and written again
    three times, ~400 MB per batch at max_len 200 on ML-1M) and needs a few MB instead.
    """

    @staticmethod
    def forward(
        ctx,
        h: torch.Tensor,
        emb: torch.Tensor,
        targets: torch.Tensor,
        smoothing: float = 0.0,
        future: torch.Tensor | None = None,
        future_w: torch.Tensor | None = None,
        seen: SeenItems | None = None,
    ) -> torch.Tensor:
        """future, future_w: optional (N, k) later items and their target shares (`future_weights`);
        seen: items left out of each row's softmax."""
        N, V = h.shape[0], emb.shape[0]
        chunk = max(64, (1 << 21) // V)  # ~8 MB of logits per chunk
        grad_h, grad_e = torch.empty_like(h), torch.zeros_like(emb)
        total = h.new_zeros((), dtype=torch.float64)
        for s in range(0, N, chunk):
            hc, tc = h[s : s + chunk], targets[s : s + chunk]
            logits = hc @ emb.T  # (C, V)
            logits[:, 0] = -torch.inf  # padding is never a target
            if seen is not None:
                fc = None if future is None else future[s : s + chunk]
                logits.masked_fill_(seen.mask(s, s + len(tc), tc, fc), -torch.inf)
            target_logit = logits.gather(1, tc[:, None])
            if smoothing:  # the smoothed target's share of the loss: e (logit_t - mean real logit)
                total += smoothing * (target_logit[:, 0] - logits[:, 1:].mean(1)).double().sum()
            if future is not None:  # later items' shares: w_j (logit_t - logit_j)
                fi, fw = future[s : s + chunk], future_w[s : s + chunk]
                fl = logits.gather(1, fi).masked_fill(fw == 0, 0.0)
                total += (fw * (target_logit - fl)).double().sum()
            m = logits.amax(1, keepdim=True)
            p = logits.sub_(m).exp_()  # one exp pass, in place
            z = p.sum(1, keepdim=True)
            total += (z.log() + m - target_logit).sum()
            p.div_(z)  # softmax
            keep = 1.0 - smoothing - (0.0 if future is None else fw.sum(1))  # the target's share
            p[torch.arange(len(tc)), tc] -= keep  # d loss / d logits
            if smoothing:
                p[:, 1:] -= smoothing / (V - 1)
            if future is not None:
                p.scatter_add_(1, fi, -fw)
            grad_h[s : s + chunk] = p @ emb
            grad_e.addmm_(p.T, hc)
        ctx.save_for_backward(grad_h, grad_e)
        ctx.n = N
        return (total / N).to(h.dtype)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        grad_h, grad_e = ctx.saved_tensors
        scale = g / ctx.n
        return grad_h * scale, grad_e * scale, None, None, None, None, None


def future_weights(future: torch.Tensor, weight: float) -> torch.Tensor:
    """(N, k) ids of later items (0 = none) -> (N, k) target shares: `weight` split evenly over a row's
    real ones (a row without any keeps the whole share on its next item)."""
    real = (future != 0).float()
    return real * (weight / real.sum(1, keepdim=True).clamp(min=1))


def next_item_loss(
    h: torch.Tensor,
    targets: torch.Tensor,
    emb: torch.Tensor,
    kind: str,
    log_q: torch.Tensor | None,
    n_negatives: int,
    sparse: bool = False,
    smoothing: float = 0.0,
    future: torch.Tensor | None = None,
    future_weight: float = 0.0,
    seen: SeenItems | None = None,
) -> torch.Tensor:
    """Mean next-item loss. h (N, D) hidden states of real positions, targets (N,), emb (n_items+1, D).
    sparse: the sampled rows' gradient as a sparse tensor (row-wise optimiser of huge tables).
    smoothing: label smoothing, spread over the real items (full softmax) or the candidates (sampled).
    future (N, k): the items after each target (0 = none); they share `future_weight` of the target
    probability (full softmax only). seen: items left out of each row's softmax (full softmax only; not
    with label smoothing, whose share would fall on them)."""
    if seen is not None and (kind != "ce" or smoothing):
        raise ValueError("mask_seen needs the full softmax (loss=ce) and no label smoothing")
    fw = None if future is None else future_weights(future, future_weight)
    if kind == "ce" and not h.is_cuda and torch.is_grad_enabled():
        return ChunkedSoftmaxCE.apply(h.float(), emb.float(), targets, smoothing, future, fw, seen)
    if kind == "ce":
        logits = h @ emb[1:].T  # (N, n_items): padding is never a target, nor gets a smoothing share
        if seen is not None:
            logits = logits.masked_fill(seen.mask(0, len(targets), targets, future)[:, 1:], -torch.inf)
        if fw is None:
            return F.cross_entropy(logits.float(), targets - 1, label_smoothing=smoothing)
        logp = F.log_softmax(logits.float(), -1)
        nll = -logp.gather(1, targets[:, None] - 1)[:, 0]
        later = -(fw * logp.gather(1, (future - 1).clamp(min=0))).sum(1)
        loss = (1 - smoothing - fw.sum(1)) * nll + later - smoothing * logp.mean(1)
        return loss.mean()
    if future is not None:
        raise ValueError("future targets need the full softmax (loss=ce)")
    # sampled softmax: candidates = the batch's distinct targets + uniform negatives
    negs = torch.randint(1, emb.shape[0], (n_negatives,), device=h.device)
    cand = torch.unique(torch.cat([targets, negs]))  # (C,) sorted
    logits = (h @ F.embedding(cand, emb, sparse=sparse).T).float() - log_q[
        cand
    ]  # logQ correction: q = expected draws of the item
    label = torch.searchsorted(cand, targets)
    return F.cross_entropy(logits, label, label_smoothing=smoothing)


def sampling_log_q(data: Dataset, tokens_per_batch: float, n_negatives: int) -> torch.Tensor:
    """log of the expected number of times each item enters a batch's candidate set."""
    pop = np.bincount(data.train.items, minlength=data.n_items + 1).astype(np.float64)
    p = pop / max(pop.sum(), 1)
    q = np.minimum(1.0, tokens_per_batch * p) + n_negatives / data.n_items
    return torch.from_numpy(np.log(q)).float()


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(net: torch.nn.Module, cfg, sparse: bool = False) -> torch.optim.Optimizer:
    table = net.item_emb.weight if sparse else None
    decay = [p for p in net.parameters() if p.dim() >= 2 and p is not table]
    no_decay = [p for p in net.parameters() if p.dim() < 2]  # biases, norms, relative-bias tables
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if table is None:
        return torch.optim.AdamW(groups, lr=cfg.resolved_lr(), betas=(0.9, 0.98))
    groups.append({"params": [table], "weight_decay": 0.0})
    return RowWiseAdamW(groups, lr=cfg.resolved_lr(), betas=(0.9, 0.98), sparse_lr=cfg.sparse_lr)


def loss_kind(loss: str, sampled_above: int, n_items: int) -> str:
    if loss != "auto":
        return loss
    return "sampled" if n_items > sampled_above else "ce"
