"""The trainer shared by SASRec and HSTU: next-item prediction at every position of whole sequences.

Batching: **length bucketing**. Each user's training sequence (inputs s[:-1], targets s[1:]) is cut
into windows of at most `max_len` positions, newest window first. Every epoch the windows are sorted
by length (random tie-break), cut into batches of neighbours holding ~`batch_tokens` padded positions
(and at most `batch_seqs` windows),
and the batch order is shuffled; each batch is right-padded only to its own longest window, so padding
is a few percent of the tokens instead of most of them (Amazon-style data: median length ~6 vs
max_len 200). Right padding also means pads sit after every real item, so plain causal attention
needs no padding mask.

Loss: full softmax cross-entropy over the catalogue at every real position ("ce"), or, for catalogues
too large for that, sampled softmax over the batch's own targets plus `n_negatives` uniform items with
the logQ correction of Yi et al. (RecSys 2019) ("sampled"); "auto" picks by catalogue size.
Optimiser AdamW, linear warmup then cosine decay, global grad-norm clipping, early stopping on
validation NDCG@10 (genrec.evaluation.evaluate on dataset.valid), the best weights restored at the end.
A checkpoint is written after every epoch; `resume` continues from it with the same RNG state, so the
loss curve continues exactly. bf16 autocast and torch.compile are used only on a GPU.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from genrec.data.dataset import Dataset
from genrec.evaluation import evaluate
from genrec.models.sequential import SequentialRecommender, config_summary

log = logging.getLogger("genrec")
CHECKPOINT = "last.pt"


class TrainingWindows:
    """Training windows over the flat item array of `Dataset.train` (vectorised, no per-user loop)."""

    def __init__(self, data: Dataset, max_len: int, side: np.ndarray | None = None) -> None:
        h = data.train
        self.items = torch.from_numpy(h.items)
        self.side = None if side is None else torch.from_numpy(side)  # side token per item (or None)
        self.ts = torch.from_numpy(h.timestamps) if h.timestamps is not None else torch.zeros_like(self.items)
        pairs = np.maximum(h.lengths - 1, 0)  # (input, target) pairs per user
        n_win = -(-pairs // max_len)  # ceil
        user = np.repeat(np.arange(len(h)), n_win)
        j = np.arange(n_win.sum()) - np.repeat(np.cumsum(n_win) - n_win, n_win)  # window index, 0 = newest
        end = np.repeat(pairs, n_win) - j * max_len  # exclusive end (in pairs) of the window
        begin = np.maximum(end - max_len, 0)
        self.start = h.indptr[user] + begin  # flat index of the window's first input item
        self.length = end - begin
        self.n_tokens = int(self.length.sum())

    def __len__(self) -> int:
        return len(self.start)

    def batches(self, batch_tokens: int, rng: np.random.Generator, batch_seqs: int | None = None
                ) -> list[np.ndarray]:
        """Length-bucketed batches of window indices, in random order, each padded to at most
        `batch_tokens` positions and holding at most `batch_seqs` windows."""
        order = np.lexsort((rng.random(len(self)), self.length))
        lens = self.length[order]
        batches, start = [], 0
        for i in range(len(order)):  # ascending lengths: a batch's padded size is count * newest length
            n = i + 1 - start
            if (n * lens[i] > batch_tokens or (batch_seqs is not None and n > batch_seqs)) and i > start:
                batches.append(order[start:i])
                start = i
        batches.append(order[start:])
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

    def gather_side(self, idx: np.ndarray) -> torch.Tensor:
        """Right-padded (B, T) side tokens of the inputs of windows `idx` (0 = pad / unknown)."""
        start, length = torch.from_numpy(self.start[idx]), torch.from_numpy(self.length[idx])
        offs = torch.arange(int(length.max()))[None, :]
        pos = (start[:, None] + offs).clamp(max=len(self.items) - 2)
        return torch.where(offs < length[:, None], self.side[pos], 0)


def auto_threads() -> int:
    """All cores, or 1 when the machine is already busy: with other processes on the cores, OpenMP
    threads of small ops spin-wait on each other (measured here: 2 threads 16x slower than 1 at load 10)."""
    cores = os.cpu_count() or 1
    return 1 if os.getloadavg()[0] >= cores else cores


def pick_device(cfg) -> torch.device:
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but no CUDA GPU is visible; use device=auto or cpu")
    return torch.device("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")


def loss_kind(cfg, n_items: int) -> str:
    if cfg.loss != "auto":
        return cfg.loss
    return "sampled" if n_items > cfg.sampled_above else "ce"


class ChunkedSoftmaxCE(torch.autograd.Function):
    """Full-softmax cross-entropy without materialising the (N, n_items) logits for autograd.

    Rows are processed in cache-sized chunks: logits -> log-sum-exp -> softmax -> gradient in one pass,
    so the forward already holds both gradients and backward only scales them. On CPU this is ~3x
    faster than F.cross_entropy on the full logit matrix (which is written, read and written again
    three times, ~400 MB per batch at max_len 200 on ML-1M) and needs a few MB instead.
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor, emb: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        N, V = h.shape[0], emb.shape[0]
        chunk = max(64, (1 << 21) // V)  # ~8 MB of logits per chunk
        grad_h, grad_e = torch.empty_like(h), torch.zeros_like(emb)
        total = h.new_zeros((), dtype=torch.float64)
        for s in range(0, N, chunk):
            hc, tc = h[s : s + chunk], targets[s : s + chunk]
            logits = hc @ emb.T  # (C, V)
            logits[:, 0] = -torch.inf  # padding is never a target
            target_logit = logits.gather(1, tc[:, None])
            m = logits.amax(1, keepdim=True)
            p = logits.sub_(m).exp_()  # one exp pass, in place
            z = p.sum(1, keepdim=True)
            total += (z.log() + m - target_logit).sum()
            p.div_(z)  # softmax
            p[torch.arange(len(tc)), tc] -= 1.0  # d loss / d logits
            grad_h[s : s + chunk] = p @ emb
            grad_e.addmm_(p.T, hc)
        ctx.save_for_backward(grad_h, grad_e)
        ctx.n = N
        return (total / N).to(h.dtype)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        grad_h, grad_e = ctx.saved_tensors
        scale = g / ctx.n
        return grad_h * scale, grad_e * scale, None


def next_item_loss(h: torch.Tensor, targets: torch.Tensor, emb: torch.Tensor, kind: str,
                   log_q: torch.Tensor | None, n_negatives: int) -> torch.Tensor:
    """Mean next-item loss. h (N, D) hidden states of real positions, targets (N,), emb (n_items+1, D)."""
    if kind == "ce" and not h.is_cuda and torch.is_grad_enabled():
        return ChunkedSoftmaxCE.apply(h.float(), emb.float(), targets)
    if kind == "ce":
        logits = h @ emb.T  # (N, n_items + 1)
        logits[:, 0] = -torch.inf  # padding is never a target
        return F.cross_entropy(logits.float(), targets)
    # sampled softmax: candidates = the batch's distinct targets + uniform negatives
    negs = torch.randint(1, emb.shape[0], (n_negatives,), device=h.device)
    cand = torch.unique(torch.cat([targets, negs]))  # (C,) sorted
    logits = (h @ emb[cand].T).float() - log_q[cand]  # logQ correction: q = expected draws of the item
    label = torch.searchsorted(cand, targets)
    return F.cross_entropy(logits, label)


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


def make_optimizer(net: torch.nn.Module, cfg) -> torch.optim.AdamW:
    decay = [p for p in net.parameters() if p.dim() >= 2]
    no_decay = [p for p in net.parameters() if p.dim() < 2]  # biases, norms, relative-bias tables
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98))


def fit_sequential(model: SequentialRecommender, data: Dataset, progress: bool | None = None) -> None:
    """Train `model.net` on `data.train`; early-stop on `data.valid`. Fills model.fit_info_."""
    cfg = model.config
    torch.set_num_threads(cfg.threads or auto_threads())
    device = pick_device(cfg)
    on_gpu = device.type == "cuda"
    seed = int(torch.initial_seed()) % 2**63
    net = model.initial_net(data.n_items).to(device)
    model.net = net
    windows = TrainingWindows(data, cfg.max_len, model.side_tokens(data.train))
    if len(windows) == 0:
        raise ValueError(f"{data.name}: no user has 2+ training interactions; nothing to train on")
    kind = loss_kind(cfg, data.n_items)
    steps_per_epoch = len(windows.batches(cfg.batch_tokens, np.random.default_rng(0), cfg.batch_seqs))
    log_q = None
    if kind == "sampled":
        log_q = sampling_log_q(data, windows.n_tokens / steps_per_epoch, cfg.n_negatives).to(device)
    opt = make_optimizer(net, cfg)
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, cfg.warmup_steps, total, cfg.min_lr_ratio))
    fwd = torch.compile(net) if cfg.compile and on_gpu else net
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if cfg.amp and on_gpu
                else contextlib.nullcontext())

    state: dict[str, Any] = {"epoch": 0, "losses": [], "valid_ndcg": [], "best": -1.0, "best_epoch": 0,
                             "bad": 0, "best_net": None, "seconds": []}
    ckpt = Path(model.checkpoint_dir) / CHECKPOINT if model.checkpoint_dir else None
    if model.resume:
        if ckpt is None or not ckpt.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt}; train without --resume first")
        saved = torch.load(ckpt, map_location=device, weights_only=False)
        if saved["config"] != config_summary(cfg):
            raise ValueError(f"--resume: {ckpt} was written with different model settings; "
                             "resume with the same settings or train a new run")
        net.load_state_dict(saved["net"])
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        state, seed = saved["state"], saved["seed"]
        torch.set_rng_state(saved["torch_rng"])
        log.info("resumed from %s after epoch %d", ckpt, state["epoch"])

    log.info("%s: %d windows, %d target tokens, %d steps/epoch, loss=%s, device=%s, threads=%d, "
             "batching=length-bucketed", model.name, len(windows), windows.n_tokens, steps_per_epoch, kind,
             device, torch.get_num_threads())
    t_start = time.time() - sum(state["seconds"])
    stop_reason = "epochs"
    while state["epoch"] < cfg.epochs:
        epoch = state["epoch"]
        if state["bad"] >= cfg.patience:
            stop_reason = "early stopping"
            break
        if cfg.max_minutes and time.time() - t_start > cfg.max_minutes * 60:
            stop_reason = "time budget"
            break
        net.train()
        t0 = time.time()
        rng = np.random.default_rng([seed, epoch])  # data order depends on (seed, epoch) only
        total_loss, n_batches = 0.0, 0
        bar = tqdm(windows.batches(cfg.batch_tokens, rng, cfg.batch_seqs),
                   desc=f"{model.name} epoch {epoch + 1}", unit="batch",
                   leave=False, disable=None if progress is None else not progress)
        for idx in bar:
            inputs, ts, targets = (t.to(device, non_blocking=True) for t in windows.gather(idx))
            side = {} if windows.side is None else {"side": windows.gather_side(idx).to(device)}
            with autocast:
                hidden, _ = fwd(inputs, ts, left_pad=False, **side)
                real = targets != 0
                loss = next_item_loss(hidden[real], targets[real], net.item_emb.weight, kind, log_q,
                                      cfg.n_negatives)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            total_loss += float(loss.detach())
            n_batches += 1
            if n_batches % 20 == 0:
                bar.set_postfix(loss=f"{total_loss / n_batches:.4f}")
        state["losses"].append(total_loss / max(n_batches, 1))
        state["seconds"].append(time.time() - t0)
        state["epoch"] = epoch + 1
        msg = f"epoch {epoch + 1}: loss {state['losses'][-1]:.4f} ({state['seconds'][-1]:.1f}s)"
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            ndcg = evaluate(model.score, data.valid, ks=(10,))["ndcg@10"]
            state["valid_ndcg"].append((epoch + 1, ndcg))
            if ndcg > state["best"]:
                state.update(best=ndcg, best_epoch=epoch + 1, bad=0,
                             best_net={k: v.detach().clone() for k, v in net.state_dict().items()})
            else:
                state["bad"] += 1
            msg += f", valid NDCG@10 {ndcg:.4f} (best {state['best']:.4f} @ {state['best_epoch']})"
        log.info(msg)
        if progress is not False:
            tqdm.write(f"{model.name} {msg}")
        if ckpt is not None:
            save_checkpoint(ckpt, {"net": net.state_dict(), "opt": opt.state_dict(),
                                   "sched": sched.state_dict(), "state": state, "seed": seed,
                                   "torch_rng": torch.get_rng_state(), "config": config_summary(cfg)})
    if state["best_net"] is not None:
        net.load_state_dict(state["best_net"])
    net.eval()
    secs = state["seconds"]
    model.fit_info_.update(
        epochs=state["epoch"], best_epoch=state["best_epoch"], best_valid_ndcg10=state["best"],
        stopped_by=stop_reason, losses=state["losses"], valid_ndcg10=state["valid_ndcg"],
        seconds_per_epoch=float(np.mean(secs)) if secs else 0.0, train_seconds=float(sum(secs)),
        seed=seed, loss=kind, device=str(device), threads=torch.get_num_threads(),
        batching="length-bucketed windows", config=config_summary(cfg))


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write atomically, so an interrupted save never leaves a broken checkpoint behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
