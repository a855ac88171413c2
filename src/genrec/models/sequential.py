"""What SASRec and HSTU share: the config (size presets + training settings), input padding, and the
Recommender / IncrementalModel plumbing around a causal network.

A network (`SeqNet`) maps item ids (and timestamps) to one hidden state per position:

    hidden, cache = net(items, ts, left_pad=..., want_cache=...)   # items (B, T) -> hidden (B, T, D)
    hidden, cache = net.step(cache, items, ts)                      # one new position per row: (B, D)

A model may also read one side token per position (`side=` (B, T) ints, 0 = unknown); see
`SequentialRecommender.side_tokens` and HSTU's `side_tokens` setting.

and scores are `hidden @ net.item_vectors().T` (the item vectors are shared by input and output);
with `temperature` > 0 both sides are scaled to unit length first and the product divided by it.

Content-aware items (`item_text`): an item's vector is its ID embedding plus a learned projection of
its text's sentence vector (MiniLM by default; frozen, stored with the model). An item seen a few times
in training borrows from items whose text is similar, and an item never seen in training still has a
meaningful vector, so the transducer can recommend it (cold start).
Training (right-padded, whole sequences, every position a target): `Trainable` below, with the batching
and losses of genrec.models.next_item; the loop itself is genrec.training's.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genrec.data.dataset import Dataset, Histories
from genrec.models.base import (
    AddsItems,
    DotProductScores,
    Fitting,
    IncrementalModel,
    IterativeRecommender,
    MeasuresCompute,
    ModelConfig,
    Phase,
    Recommender,
    StepContext,
    WarmStartable,
    check_average_decay,
    check_lr_drops,
    grow_into,
)
from genrec.models.next_item import (
    SeenItems,
    TrainingWindows,
    loss_kind,
    lr_factor,
    make_optimizer,
    next_item_loss,
    pack_sorted,
    sampling_log_q,
)
from genrec.models.text import encode_item_texts, encoder_from_state, item_texts

LOSSES = ("auto", "ce", "sampled")
log = logging.getLogger("genrec")


@dataclass
class SequentialConfig(ModelConfig):
    """Architecture size + training settings of a sequential model. 0 = take the value from `size`."""

    SIZES: ClassVar[dict[str, dict[str, float]]] = {}  # preset -> {dim, n_layers, n_heads, lr}
    # size=auto: base from this many training targets (next-item positions) up, small below. HSTU's
    # validation NDCG@10, base vs small: ml-1m-u2999 (479k targets) 0.2242 vs 0.2065 (3 seeds each);
    # amazon-beauty (131k) 0.0726 vs 0.0717; ml-latest-small (99k) 0.0840 vs 0.0833 (1 seed each);
    # ml-100k (97k) 0.1327 vs 0.1383 (3 seeds each; HSTU base then had 4 layers and no weight average).
    # More weights pay off only with more data. Large is never picked: it has not converged within an
    # hour on 2 CPU cores
    AUTO_BASE_TARGETS: ClassVar[int] = 300_000

    size: str = "auto"  # a SIZES preset, or auto: resolved from the training data when fitting
    dim: int = 0  # hidden size D (0: from the size preset)
    n_layers: int = 0
    n_heads: int = 0
    max_len: int = 200  # most recent items read per user; longer training sequences are cut into windows
    # fixed: older history cut every max_len back from the newest window; shifted: at a new random
    # offset each epoch, so a target is read with different context (genrec.models.next_item)
    windows: Literal["fixed", "shifted"] = "fixed"
    dropout: float = 0.3
    # training: share of the input items hidden (read as the empty item 0; positions and times stay), so
    # a prediction cannot lean on any one earlier item. Targets are never hidden.
    item_dropout: float = 0.0
    # --- training (the loop in genrec.training; batches and loss in genrec.models.next_item) ---
    epochs: int = 200  # upper bound; early stopping usually ends training first
    # a step holds at most `batch_tokens` padded positions and at most `batch_seqs` sequences
    # (length-bucketed). The token bound keeps long-history steps (MovieLens: 200-item windows) the
    # same size; the sequence bound gives sparse data enough updates per epoch: with tokens alone,
    # Amazon Beauty (~150k training tokens, median history 4) got 75 steps per epoch and learned ~2x
    # slower per epoch (validation NDCG@10 0.027 vs 0.049 after 4 epochs with 512-token steps),
    # while 512-token steps on ML-1M hold only ~2 users and learn worse (validation 0.152 vs 0.169
    # after 8 epochs)
    batch_tokens: int = 2048
    batch_seqs: int = 64
    lr: float = 0.0  # AdamW's peak rate (0: from the size preset)
    weight_decay: float = 0.1  # AdamW, on weight matrices and embeddings (not on biases / norms)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decay from lr to lr * min_lr_ratio over `epochs`
    grad_clip: float = 1.0  # max global grad norm; 0 = off
    patience: int = 5  # early stopping: validation NDCG@10 evaluations without improvement
    # where early stopping would stop (patience evaluations without gain), instead go back to the best
    # weights and continue at lr x lr_drop_factor; at most lr_drops times, then early stopping. A drop
    # never ends a run earlier than without it
    lr_drops: int = 2
    lr_drop_factor: float = 0.3
    eval_every: int = 1  # epochs between validation evaluations
    # > 0: validate and keep a moving average of the weights, this decay per update (Phase.average_decay)
    average_decay: float = 0.0
    # ce: full softmax; sampled: in-batch + uniform negatives with logQ; auto: by catalogue size
    loss: Literal["auto", "ce", "sampled"] = "auto"
    sampled_above: int = 100_000  # auto switches to sampled softmax above this many items
    n_negatives: int = 1024  # uniform negatives per batch (sampled softmax)
    label_smoothing: float = 0.0  # share of the target's probability spread evenly over all real items
    # > 0: the next `future_targets` items after the target (the user's later training items) share
    # `future_weight` of its probability: where the order of close actions is loose (a burst of
    # ratings), the item after next is nearly as good an answer. Full softmax only.
    future_targets: int = 0
    future_weight: float = 0.2
    # on: items the user had before a target (earlier in their training history) are left out of its
    # softmax, as evaluation leaves a user's history out of the ranking: the model need not learn to
    # push them down. Full softmax only. auto: on with the full softmax when no user has an item twice
    # in training (with repeats, a seen item can be the right answer: --dedup none --include-seen) and
    # a history covers on average at least SEEN_SHARE of the catalogue (where it covers less, the few
    # seen items are the hardest negatives there are, and pushing them down helps).
    # Off by default: it lifts every MovieLens set (histories 1.7-6.2% of the catalogue; HSTU base on
    # ml-1m-u2999, validation NDCG@10 0.2410 / 0.2413 against 0.2354 / 0.2334) but costs
    # amazon-beauty, whose histories cover 0.06% (0.0705 against 0.0741)
    mask_seen: Literal["off", "on", "auto"] = "off"
    # > 0: score = cosine(user, item) / temperature (both vectors unit length, as in the HSTU paper's
    # training); 0: plain dot product, whose vector norms also carry popularity and confidence
    temperature: float = 0.0
    # sparse item-table gradients + row-wise AdaGrad for the table (models/optim.py): a step touches only
    # the batch's rows and the table's optimiser state is one number per row. auto: with sampled softmax
    # (huge catalogues) in one process; off keeps AdamW on every weight
    sparse_items: Literal["auto", "on", "off"] = "auto"
    sparse_lr: float = 0.05  # row-wise AdaGrad's learning rate for the item table (before the schedule)
    # item vector = ID embedding + W . text vector (see top). auto: on when the dataset has item text and
    # the item table is dense (a sparse table is for catalogues too big for a text vector per item)
    item_text: Literal["auto", "on", "off"] = "auto"
    text_encoder: str = "minilm"  # minilm | tfidf | a local sentence-transformers folder

    def resolved(self, name: str, size: str = "") -> int:
        """dim, n_layers or n_heads: the set value, else the size preset's."""
        return int(self._preset(name, size))

    def resolved_lr(self, size: str = "") -> float:
        return float(self._preset("lr", size))

    def _preset(self, name: str, size: str) -> float:
        v = getattr(self, name)
        if v:
            return v
        size = size or self.size
        if size == "auto":
            raise ValueError(
                f"{type(self).__name__}.size=auto is chosen from the training data when fitting; "
                "set size to one of " + ", ".join(self.SIZES) + " to build a network without data"
            )
        return self.SIZES[size][name]

    def auto_size(self, n_targets: int) -> str:
        """The preset size=auto picks for training data with `n_targets` next-item targets."""
        return "base" if n_targets >= self.AUTO_BASE_TARGETS else "small"

    def validate(self) -> None:
        cls = type(self).__name__
        if self.size not in (*self.SIZES, "auto"):
            raise ValueError(f"{cls}.size must be auto or one of {', '.join(self.SIZES)}, got {self.size!r}")
        for f in ("dim", "n_layers", "n_heads"):
            if getattr(self, f) < 0:
                raise ValueError(
                    f"{cls}.{f} must be >= 0 (0 = from the size preset), got {getattr(self, f)!r}"
                )
        positive = (
            "max_len",
            "epochs",
            "batch_tokens",
            "batch_seqs",
            "patience",
            "eval_every",
            "n_negatives",
            "sampled_above",
        )
        for f in positive:
            if not (isinstance(getattr(self, f), int) and getattr(self, f) > 0):
                raise ValueError(f"{cls}.{f} must be a positive integer, got {getattr(self, f)!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"{cls}.dropout must be in [0, 1), got {self.dropout!r}")
        if self.future_targets < 0:
            raise ValueError(f"{cls}.future_targets must be >= 0, got {self.future_targets!r}")
        if not (0 <= self.future_weight and self.future_weight + self.label_smoothing < 1):
            raise ValueError(
                f"{cls}.future_weight must be >= 0 and below 1 - label_smoothing, got {self.future_weight!r}"
            )
        if not 0 <= self.item_dropout < 1:
            raise ValueError(f"{cls}.item_dropout must be in [0, 1), got {self.item_dropout!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"{cls}.label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if not (self.lr >= 0 and math.isfinite(self.lr)):
            raise ValueError(f"{cls}.lr must be >= 0 (0 = from the size preset), got {self.lr!r}")
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise ValueError(f"{cls}.temperature must be >= 0 (0 = dot product), got {self.temperature!r}")
        for f in ("weight_decay", "warmup_steps", "grad_clip"):
            if getattr(self, f) < 0:
                raise ValueError(f"{cls}.{f} must be >= 0, got {getattr(self, f)!r}")
        check_lr_drops(self)
        check_average_decay(self)
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"{cls}.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"{cls}.loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.mask_seen not in ("off", "on", "auto"):
            raise ValueError(f"{cls}.mask_seen must be one of off, on, auto, got {self.mask_seen!r}")
        if self.mask_seen != "off" and self.label_smoothing:
            raise ValueError(f"{cls}.mask_seen needs label_smoothing=0 (its share would fall on seen items)")
        if self.windows not in ("fixed", "shifted"):
            raise ValueError(f"{cls}.windows must be fixed or shifted, got {self.windows!r}")
        if self.sparse_items not in ("auto", "on", "off"):
            raise ValueError(f"{cls}.sparse_items must be one of auto, on, off, got {self.sparse_items!r}")
        if self.sparse_items == "on" and self.loss == "ce":
            raise ValueError(
                f"{cls}.sparse_items=on needs loss=sampled (a full softmax touches every row); "
                "set loss=sampled or sparse_items=auto"
            )
        if not self.sparse_lr > 0:
            raise ValueError(f"{cls}.sparse_lr must be > 0, got {self.sparse_lr!r}")
        if self.item_text not in ("auto", "on", "off"):
            raise ValueError(f"{cls}.item_text must be one of auto, on, off, got {self.item_text!r}")
        if self.item_text == "on" and self.sparse_items == "on":
            raise ValueError(
                f"{cls}.item_text=on needs a dense item table; set sparse_items=off or item_text=off"
            )
        for size in ("small", "base") if self.size == "auto" else (self.size,):
            dim, heads = self.resolved("dim", size), self.resolved("n_heads", size)
            if dim % heads:
                raise ValueError(f"{cls}.dim ({dim}) must be divisible by n_heads ({heads}) at size {size}")


class TextItems(nn.Module):
    """Frozen text vectors of the items (n_items + 1, E), row 0 (padding) zero, projected to width D."""

    def __init__(self, vectors: torch.Tensor, dim: int) -> None:
        super().__init__()
        self.register_buffer("vectors", vectors)
        self.proj = nn.Linear(vectors.shape[1], dim, bias=False)
        nn.init.normal_(self.proj.weight, std=0.02)

    def forward(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """(..., D) content part of the given items' vectors, or of every item when items is None."""
        return self.proj(self.vectors if items is None else self.vectors[items])


class Dropout(nn.Dropout):
    """nn.Dropout with the keep-mask drawn as `rand >= p`: the same distribution, but on a CPU
    bernoulli_ costs ~2.5x what rand + compare does (benchmarks/dropout_masks.py: a base HSTU training
    step is 1.14x as fast with these masks)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * keep_mask(x.shape, self.p, x.device)


# mask_seen=auto's least mean history share of the catalogue: MovieLens training histories cover
# 1.7-6.2%, amazon-beauty's 0.06% (where masking loses); 0.5% lies a factor 3.4 below the one, 9 above
# the other
SEEN_SHARE = 0.005


def distinct_pairs(h: Histories) -> int:
    """How many distinct (user, item) pairs the histories hold."""
    return len(np.unique(h.row_ids() * (int(h.items.max(initial=0)) + 1) + h.items))


def history_share(h: Histories, n_items: int) -> float:
    """The mean share of the catalogue a history covers (distinct items / n_items; users with none
    left out)."""
    return distinct_pairs(h) / max(1, np.count_nonzero(h.lengths)) / max(1, n_items)


def has_repeats(h: Histories) -> bool:
    """Whether some user has the same item more than once."""
    return distinct_pairs(h) < len(h.items)


def keep_mask(
    shape: torch.Size | tuple[int, ...], p: float, device: torch.device, scale: torch.Tensor | float = 1.0
) -> torch.Tensor:
    """Dropout's keep-mask times `scale`: scale / (1 - p) with probability 1 - p, else 0. A tensor scale
    broadcasts into the mask in the same op."""
    return (torch.rand(shape, device=device) >= p) * (scale / (1 - p))


class SeqNet(nn.Module):
    """Interface of the causal networks (see module docstring)."""

    item_emb: nn.Embedding
    dim: int

    def __init__(self) -> None:
        super().__init__()
        self.item_text: TextItems | None = None  # attached by SequentialRecommender when item_text is on
        self.item_dropout = 0.0  # set by SequentialRecommender (SequentialConfig.item_dropout)

    def item_input(self, items: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, D) item vectors (ID embedding + text part)."""
        if self.training and self.item_dropout:
            items = items.masked_fill(torch.rand(items.shape, device=items.device) < self.item_dropout, 0)
        e = self.item_emb(items)
        return e if self.item_text is None else e + self.item_text(items)

    def item_vectors(self) -> torch.Tensor:
        """(n_items + 1, D) every item's vector: the output layer (scores = hidden @ item_vectors().T)."""
        w = self.item_emb.weight
        return w if self.item_text is None else w + self.item_text()

    def forward(self, items, ts, left_pad: bool, want_cache: bool = False):  # pragma: no cover - interface
        raise NotImplementedError

    def step(self, cache: dict, items: torch.Tensor, ts: torch.Tensor | None):  # pragma: no cover
        raise NotImplementedError


def left_padded(h: Histories, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Most recent `max_len` items and timestamps (zeros when the data has none), left-padded: (B, T)."""
    T = max(1, min(max_len, int(h.lengths.max(initial=1))))
    items = torch.from_numpy(h.padded(T))
    if h.timestamps is None:
        return items, torch.zeros_like(items)
    return items, torch.from_numpy(Histories(h.indptr, h.timestamps).padded(T))


def next_times(h: Histories, ts: torch.Tensor) -> torch.Tensor:
    """(B, T) the time of the action each left-padded position predicts: the next action's, and for the
    last position the request's (`h.request_ts`; without it, the last action's own)."""
    last = ts[:, -1] if h.request_ts is None else torch.from_numpy(h.request_ts)
    return torch.cat([ts[:, 1:], last[:, None]], 1)


def length_batches(lengths: np.ndarray, budget: int) -> list[np.ndarray]:
    """Row indices in batches of similar length: rows sorted by length, each batch as many rows as fit
    `budget` tokens once padded to its longest row (at least one row per batch)."""
    order = np.argsort(lengths, kind="stable")
    return [order[a:b] for a, b in pack_sorted(np.maximum(lengths[order], 1), budget)]


def reorder_cache(cache: Any, index: torch.Tensor) -> Any:
    """Select rows (dim 0) of every tensor in a nested cache."""
    if isinstance(cache, torch.Tensor):
        return cache.index_select(0, index.to(cache.device))
    if isinstance(cache, dict):
        return {k: reorder_cache(v, index) for k, v in cache.items()}
    if isinstance(cache, (list, tuple)):
        return type(cache)(reorder_cache(v, index) for v in cache)
    return cache


class SequentialRecommender(
    IterativeRecommender, IncrementalModel, DotProductScores, WarmStartable, AddsItems, MeasuresCompute
):
    """Recommender + IncrementalModel + DotProductScores around a SeqNet. Subclasses set name,
    config_cls, build_net. With item text (item_text), items join the catalogue by their text alone."""

    config_cls = SequentialConfig
    next_item_logits = True  # scores are next-item logits (trained with a softmax over the items)
    reads_next_times = False  # the net takes next_ts: each position's next action's time (next_times)
    embedding_scoring = "score(user, item) = user_vector . item_vector (next-item logit)"
    # Tokens per forward pass at inference. Users are sorted by history length and packed up to this
    # many (rows x longest history) per pass: on a CPU, attention's (B, H, T, T) tensors then stay
    # cache-sized and short histories are not padded to the longest in the batch, which makes scoring
    # 3-25x faster than fixed 256-row batches (benchmarks/inference_batches.py). A GPU wants big passes.
    score_tokens: ClassVar[dict[str, int]] = {"cpu": 2048, "cuda": 65536}

    def __init__(self, config: SequentialConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.net: SeqNet | None = None
        self._init_from: SequentialRecommender | None = None
        self._text: torch.Tensor | None = None  # (n_items + 1, E) item text vectors when item_text is on
        self.text_encoder_state_: dict | None = None  # encodes the text of items added later
        self._table: tuple[tuple, torch.Tensor] | None = None  # (weights' versions, item_vectors())

    def build_net(self, n_items: int) -> SeqNet:
        raise NotImplementedError

    def _new_net(self, n_items: int) -> SeqNet:
        """build_net + the text part of the item vectors when the model reads item text."""
        net = self.build_net(n_items)
        net.item_dropout = self.config.item_dropout
        if self._text is not None:
            net.item_text = TextItems(self._text, net.item_emb.embedding_dim)
        return net

    def _text_vectors(self, data: Dataset) -> torch.Tensor | None:
        """(n_items + 1, E) unit text vectors (zero for padding and items without text), or None when
        item_text is off, or auto and the data has no text or the item table is sparse."""
        cfg = self.config
        texts = item_texts(data)
        before = self._init_from
        if before is not None and cfg.item_text == "auto":  # fine-tuning keeps the trained model's inputs
            if before._text is None:
                return None
            if texts is None:  # the old items keep their vectors, items added since have none
                self.text_encoder_state_ = before.text_encoder_state_
                grown = torch.zeros(data.n_items + 1, before._text.shape[1])
                grown[: len(before._text)] = before._text[: data.n_items + 1]
                return grown
        if cfg.item_text == "off" or (cfg.item_text == "auto" and (texts is None or self._sparse)):
            return None
        if texts is None:
            raise ValueError(
                f"{data.name}: item_text=on needs item text (titles, categories, ...) and this dataset has "
                "none; give the items a metadata file or set item_text=off"
            )
        if self._sparse:
            raise ValueError(f"{self.name}: item_text=on needs a dense item table (sparse_items is on)")
        t = time.time()
        X, enc = encode_item_texts(texts, cfg.text_encoder, data.name)
        empty = np.array([not str(x).strip() for x in texts[1:]], dtype=bool)
        X[empty] = 0  # no text: the ID embedding alone
        self.text_encoder_state_ = enc.state()
        self.fit_info_.update(text_encoder=enc.spec, text_dim=X.shape[1], text_seconds=time.time() - t)
        return torch.from_numpy(np.concatenate([np.zeros((1, X.shape[1]), np.float32), X]))

    # --- AddsItems: cold start through the text part of the item vectors ----------------------
    @torch.no_grad()
    def add_items(self, texts: list[str]) -> np.ndarray:
        """New items known by their text only (ID embedding zero until a retrain); returns their ids."""
        net = self._require_net()
        if net.item_text is None or self.text_encoder_state_ is None:
            raise ValueError(
                f"model {self.name!r} was trained without item text and knows items only by their ids; "
                "retrain it with --set item_text=on (data with item titles or descriptions) to add items"
            )
        texts = [str(t).strip() for t in texts]
        X = torch.from_numpy(
            np.asarray(encoder_from_state(self.text_encoder_state_).encode(texts), np.float32)
        )
        X[torch.tensor([not t for t in texts], dtype=torch.bool)] = 0
        old = net.item_emb
        first = self.n_items_ + 1
        self.n_items_ += len(texts)
        net.item_emb = nn.Embedding(self.n_items_ + 1, old.embedding_dim, padding_idx=0).to(old.weight.device)
        net.item_emb.weight.zero_()
        net.item_emb.weight[:first] = old.weight
        vectors = torch.cat([net.item_text.vectors, X.to(net.item_text.vectors.device)])
        net.item_text.vectors = vectors
        self._text = vectors
        return np.arange(first, self.n_items_ + 1)

    def item_codes(self, items: np.ndarray) -> list[str]:
        rows = self._require_net().item_emb.weight.detach()[
            torch.as_tensor(np.asarray(items, dtype=np.int64))
        ]
        has_id = (rows != 0).any(1).tolist()
        return [
            "text vector + ID embedding" if h else "text vector only (no interactions yet)" for h in has_id
        ]

    def side_tokens(self, histories: Histories) -> np.ndarray | None:
        """Side token (int64, 0 = unknown) of every entry of `histories.items`, or None when the model
        reads no side information (the default) or the histories carry none."""
        return None

    def _net_inputs(self, histories: Histories, ts: torch.Tensor) -> dict[str, torch.Tensor]:
        """The net's extra inputs for left-padded `histories` with timestamps `ts` (B, T): "side", the
        side tokens, when the model reads some; "next_ts" (see `next_times`) when it reads them."""
        out = {}
        if self.reads_next_times:
            out["next_ts"] = next_times(histories, ts).to(self._device())
        tokens = self.side_tokens(histories)
        if tokens is not None:
            padded = Histories(histories.indptr, tokens).padded(ts.shape[1])
            out["side"] = torch.from_numpy(padded).to(self._device())
        return out

    # --- Trainable (the loop is genrec.training's) ---------------------------------------------
    def start_from(self, trained: Recommender) -> None:
        self._init_from = trained

    def prepare_training(self, data: Dataset) -> list[Phase]:
        cfg = self.config
        self.n_items_ = data.n_items
        self._windows = TrainingWindows(
            data, cfg.max_len, self.side_tokens(data.train), shift=cfg.windows == "shifted"
        )
        if len(self._windows) == 0:
            raise ValueError(f"{data.name}: no user has 2+ training interactions; nothing to train on")
        if cfg.size == "auto":  # fine-tuning keeps the trained network's size
            trained = self._init_from
            size = trained.config.size if trained else cfg.auto_size(self._windows.n_tokens)
            self.config = cfg = dataclasses.replace(cfg, size=size)
            log.info("%s size auto: %s (%s training targets)", self.name, size, f"{self._windows.n_tokens:,}")
        self._loss = loss_kind(cfg.loss, cfg.sampled_above, data.n_items)
        needs_ce = (
            ("future_targets", cfg.future_targets > 0, "future_targets=0"),
            ("mask_seen", cfg.mask_seen == "on", "mask_seen=off"),
        )
        for opt, used, off in needs_ce:
            if used and self._loss != "ce":
                raise ValueError(
                    f"{self.name}: {opt} needs the full softmax (this catalogue gets {self._loss}); "
                    f"set loss=ce or {off}"
                )
        if cfg.sparse_items == "on" and self._loss != "sampled":
            raise ValueError(
                f"{self.name}: sparse_items=on needs loss=sampled (this catalogue gets {self._loss})"
            )
        # sparse gradients are not averaged across processes: under torchrun auto keeps them dense
        one_process = not (torch.distributed.is_available() and torch.distributed.is_initialized())
        self._sparse = cfg.sparse_items == "on" or (
            cfg.sparse_items == "auto" and self._loss == "sampled" and one_process
        )
        self._text = self._text_vectors(data)
        self._steps_per_epoch = len(
            self._windows.batches(cfg.batch_tokens, np.random.default_rng(0), cfg.batch_seqs)
        )
        share = history_share(data.train, data.n_items)
        self._mask_seen = cfg.mask_seen == "on" or (
            cfg.mask_seen == "auto"
            and self._loss == "ce"
            and share >= SEEN_SHARE
            and not has_repeats(data.train)
        )
        self._log_q = None
        if self._loss == "sampled":
            tokens_per_step = self._windows.n_tokens / self._steps_per_epoch
            self._log_q = sampling_log_q(data, tokens_per_step, cfg.n_negatives)
        self.fit_info_.update(
            loss=self._loss,
            config=config_summary(cfg),
            windows=len(self._windows),
            target_tokens=self._windows.n_tokens,
            steps_per_epoch=self._steps_per_epoch,
            mask_seen=self._mask_seen,
            history_share=round(float(share), 5),
        )
        return [
            Phase(
                "train",
                cfg.epochs,
                cfg.patience,
                cfg.eval_every,
                lr_drops=cfg.lr_drops,
                lr_drop_factor=cfg.lr_drop_factor,
                average_decay=cfg.average_decay,
            )
        ]

    def setup_phase(self, phase: Phase, data: Dataset, device: torch.device) -> Fitting:
        cfg = self.config
        net = self._new_net(data.n_items)
        if self._init_from is not None:  # fine-tuning: start at the trained weights, new items fresh
            grow_into(net, self._init_from._state()["net"])
        net.item_emb.sparse = self._sparse
        self.net = net.to(device)
        if self._log_q is not None:
            self._log_q = self._log_q.to(device)
        opt = make_optimizer(net, cfg, self._sparse)
        total = cfg.epochs * self._steps_per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_factor(s, cfg.warmup_steps, total, cfg.min_lr_ratio)
        )
        return Fitting({"net": net}, {"main": opt}, {"main": sched}, cfg.grad_clip)

    def batches(self, phase: Phase, data: Dataset, rng: np.random.Generator) -> list[np.ndarray]:
        return self._windows.batches(self.config.batch_tokens, rng, self.config.batch_seqs)

    def train_step(self, batch: np.ndarray, ctx: StepContext) -> dict[str, float]:
        net, w = self._require_net(), self._windows
        inputs, ts, targets = (ctx.to(t) for t in w.gather(batch))
        side = {} if w.side is None else {"side": ctx.to(w.gather_side(batch))}
        if self.reads_next_times:
            side["next_ts"] = ctx.to(w.gather_next_ts(batch))
        hidden, _ = net(inputs, ts, left_pad=False, **side)
        real = targets != 0
        k = self.config.future_targets
        future = {} if not k else {"future": ctx.to(w.gather_future(batch, k))[real]}
        if self._mask_seen:
            row, pos = real.nonzero(as_tuple=True)  # each loss row's window and position
            before = ctx.to(w.gather_before(batch, net.item_emb.num_embeddings))
            future["seen"] = SeenItems(before, inputs, row, pos)
        loss = next_item_loss(
            self._query(hidden[real]),
            targets[real],
            self._output(net.item_vectors()),
            self._loss,
            self._log_q,
            self.config.n_negatives,
            sparse=self._sparse,
            smoothing=self.config.label_smoothing,
            future_weight=self.config.future_weight,
            **future,
        )
        ctx.update(loss)
        return {"loss": float(loss.detach()), "n": int(real.sum())}

    def compute_profile(self, data: Dataset) -> dict[str, float]:
        """Parameters and training FLOPs, from the net and what fit_info_ recorded (so a loaded model
        answers too). Per target: 3 x the forward pass (backward = 2 x forward) of 2 x non-embedding
        parameters (the blocks' matrix products, the input's text projection), 4 x layers x D x mean
        window length (attention scores and their weighted sum over the window as computed), 2 x D x
        scored items (the catalogue, or the sampled negatives and the batch's targets) and, with item
        text, the projection of every item's text vector once per step."""
        net, cfg, info = self._require_net(), self.config, self.fit_info_
        total = sum(p.numel() for p in net.parameters())
        body = total - sum(m.weight.numel() for m in net.modules() if isinstance(m, nn.Embedding))
        dim, layers = cfg.resolved("dim"), cfg.resolved("n_layers")
        tokens, windows, steps = info["target_tokens"], info["windows"], info["steps_per_epoch"]
        targets_per_step = tokens / max(steps, 1)
        scored = data.n_items if info["loss"] == "ce" else cfg.n_negatives + targets_per_step
        forward = 2.0 * body + 4.0 * layers * dim * tokens / max(windows, 1) + 2.0 * dim * scored
        if net.item_text is not None:  # the output table's text part: (n_items + 1, E) @ (E, D) per step
            forward += 2.0 * net.item_text.proj.weight.numel() * (data.n_items + 1) / targets_per_step
        curve = [r for p in info.get("phases", []) for r in p["curve"]]
        trained = sum(r.get("examples_per_s", 0.0) * r["seconds"] for r in curve)  # all processes
        return {
            "params": total,
            "non_embedding_params": body,
            "flops_per_target": 3.0 * forward,
            "trained_targets": trained,
            "train_flops": 3.0 * forward * trained,
        }

    # --- Recommender -------------------------------------------------------------------------
    def _require_net(self) -> SeqNet:
        if self.net is None:
            raise RuntimeError(f"{self.name}: the model is not trained; call fit() or Recommender.load()")
        return self.net

    def _device(self) -> torch.device:
        return next(self._require_net().parameters()).device

    # --- DotProductScores: score = user_embeddings @ item_embeddings().T ---------------------
    @torch.no_grad()
    def user_embeddings(self, histories: Histories) -> torch.Tensor:
        """(B, D) final hidden state after each history."""
        net = self._require_net()
        net.eval()
        dev = self._device()
        out = torch.empty(len(histories), net.dim)
        budget = self.score_tokens.get(dev.type, self.score_tokens["cuda"])
        for rows in length_batches(np.minimum(histories.lengths, self.config.max_len), budget):
            chunk = histories.take(rows)
            items, ts = left_padded(chunk, self.config.max_len)
            hidden, _ = net(items.to(dev), ts.to(dev), left_pad=True, **self._net_inputs(chunk, ts))
            out[torch.from_numpy(rows)] = self._query(hidden[:, -1]).float().cpu()
        return out

    def _query(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., D) hidden states -> user vectors: unit length / temperature when temperature > 0."""
        t = self.config.temperature
        return F.normalize(hidden, dim=-1) / t if t else hidden

    def _output(self, vectors: torch.Tensor) -> torch.Tensor:
        """(n_items + 1, D) item vectors as scored: unit length when temperature > 0 (padding stays 0)."""
        return F.normalize(vectors, dim=-1) if self.config.temperature else vectors

    @torch.no_grad()
    def item_embeddings(self) -> torch.Tensor:
        """(n_items + 1, D) output item vectors; row 0 is padding."""
        return self._item_table().cpu()

    def _item_table(self) -> torch.Tensor:
        """item_vectors() as float, recomputed only when a weight it reads changed (an optimiser step or
        a load bumps the tensor's version): the text part costs a (n_items, E) x (E, D) product."""
        net = self._require_net()
        weights = [p for n, p in net.named_parameters() if n.startswith(("item_emb.", "item_text."))]
        key = tuple((id(p), p._version) for p in weights)
        if self._table is None or self._table[0] != key:
            with torch.no_grad():
                self._table = (key, self._output(net.item_vectors()).detach().float())
        return self._table[1]

    @torch.no_grad()
    def scores_from_embeddings(self, users: torch.Tensor) -> torch.Tensor:
        return self._scores(users.to(self._require_net().item_emb.weight.device))

    def _scores(self, hidden: torch.Tensor) -> torch.Tensor:
        scores = hidden.float() @ self._item_table().T
        scores[:, 0] = -torch.inf
        return scores.cpu()

    @torch.no_grad()
    def score(self, histories: Histories) -> torch.Tensor:
        return self.scores_from_embeddings(self.user_embeddings(histories))

    # --- IncrementalModel ---------------------------------------------------------------------
    @torch.no_grad()
    def start(self, histories: Histories) -> tuple[torch.Tensor, dict]:
        """Encode histories (left-padded, one pass) and keep every layer's keys/values."""
        net = self._require_net()
        net.eval()
        items, ts = left_padded(histories, self.config.max_len)
        hidden, cache = net(
            items.to(self._device()),
            ts.to(self._device()),
            left_pad=True,
            want_cache=True,
            **self._net_inputs(histories, ts),
        )
        return self._scores(self._query(hidden[:, -1])), cache

    @torch.no_grad()
    def extend(self, cache: dict, items: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Append one item per row; attends to the cached keys/values, so the cost is one position.
        An appended (generated) item has no side token: it is 'unknown', as in `extend_histories`."""
        net = self._require_net()
        net.eval()
        hidden, cache = net.step(cache, items.to(self._device()).long(), None)
        return self._scores(self._query(hidden)), cache

    def reorder(self, cache: dict, index: torch.Tensor) -> dict:
        return reorder_cache(cache, index)

    # --- persistence -------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"net": self._require_net().state_dict(), "text_encoder": self.text_encoder_state_}

    def _load_state(self, state: dict[str, Any]) -> None:
        self._text = state["net"].get("item_text.vectors")
        self.text_encoder_state_ = state.get("text_encoder")
        self.net = self._new_net(self.n_items_)
        self.net.load_state_dict(state["net"])
        self.net.eval()


def config_summary(cfg: SequentialConfig) -> dict[str, Any]:
    """The config with the size preset resolved (for logs and fit_info)."""
    d = dataclasses.asdict(cfg)
    for f in ("dim", "n_layers", "n_heads"):
        d[f] = cfg.resolved(f)
    d["lr"] = cfg.resolved_lr()
    return d


def init_weights(module: nn.Module, dim: int) -> None:
    """Small normal init (as in GPT-2 / nanoGPT); embeddings scaled to unit-ish dot products."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=1.0 / math.sqrt(dim))
            if m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()


def pad_positions(items: torch.Tensor) -> torch.Tensor:
    """Number of leading pads per row of a left-padded (B, T) batch: (B,)."""
    return (items == 0).long().cumprod(1).sum(1)
