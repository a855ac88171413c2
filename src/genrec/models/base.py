"""The one contract every genrec model implements (scikit-learn / implicit style), and the optional
abilities a model declares by subclassing a Protocol below.

    model = get_model_class("ease")(EASEConfig(l2=500.0))
    genrec.training.fit(model, dataset)      # closed form (`fit`), a validation search (`Tunable`) or
                                             # the one training loop (`Trainable`)
    scores = model.score(histories)          # (B, n_items + 1) float tensor, column 0 = padding
    model.save(path); model = Recommender.load(path)

Lists are written by genrec.generation only, from `score` (and `IncrementalModel` / `CodeTrieModel`
for beam search and sampling). Callers depend on the Protocols (`isinstance(model, IncrementalModel)`),
never on a model's class or on probing for attributes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from genrec.data.dataset import Dataset, Histories


@dataclass
class ModelConfig:
    """Base for model configs; fields must be JSON-serialisable scalars or lists."""

    def validate(self) -> None:
        """Raise ValueError naming the bad field. Subclasses extend."""


class Recommender:
    """Base class. Subclasses set `name`, `config_cls` and implement score/_state/_load_state, plus
    `fit` (closed-form models) or `Trainable` (iterative models)."""

    name: ClassVar[str] = "base"
    config_cls: ClassVar[type[ModelConfig]] = ModelConfig
    # True when softmax(scores) is the model's distribution over the next item (scores are logits or
    # log-probabilities): beam search and sampling need that; generation refuses them for other models
    next_item_logits: ClassVar[bool] = False

    @property
    def reads_request_time(self) -> bool:
        """True when a row's scores depend on when it is scored (`Histories.request_ts`), not only on
        its history: a cached user state then holds for one request time."""
        return False

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        config = config or self.config_cls()
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        self.config.validate()
        self.n_items_: int = 0
        self.fit_info_: dict[str, Any] = {}

    # --- to implement ------------------------------------------------------------------------
    def fit(self, data: Dataset) -> Recommender:
        """Closed-form fit on `data.train`. Iterative models are fitted by genrec.training.fit."""
        raise TypeError(f"{self.name} is trained by the training loop: genrec.training.fit(model, data)")

    def score(self, histories: Histories) -> torch.Tensor:
        """Scores of every item for each history row: (B, n_items + 1), higher is better."""
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        """Learned state: a nested dict of tensors / arrays and JSON values (lists, numbers, strings)."""
        raise NotImplementedError

    def _load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # --- persistence: weights in safetensors, everything else in JSON --------------------------
    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors, values, arrays = flatten_state(self._state())
        meta = {
            "model": self.name,
            "config": dataclasses.asdict(self.config),
            "n_items": self.n_items_,
            "fit_info": self.fit_info_,
            "state": values,
            "numpy": arrays,
        }
        save_file(tensors, str(path / "model.safetensors"))
        (path / "model.json").write_text(json.dumps(meta, indent=2, default=_json_default))

    @staticmethod
    def load(path: str | Path) -> Recommender:
        from genrec.models import get_model_class

        path = Path(path)
        if not (path / "model.json").exists():
            raise FileNotFoundError(f"{path}: no model.json here; is this a genrec run or model directory?")
        meta = json.loads((path / "model.json").read_text())
        cls = get_model_class(meta["model"])
        model = cls(cls.config_cls(**meta["config"]))
        model.n_items_ = meta["n_items"]
        model.fit_info_ = meta.get("fit_info", {})
        tensors = load_file(str(path / "model.safetensors"))
        model._load_state(unflatten_state(tensors, meta["state"], meta["numpy"]))
        return model


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (np.ndarray, torch.Tensor)):
        return v.tolist()
    raise TypeError(f"cannot save {type(v).__name__} in model.json")


def flatten_state(state: dict[str, Any], prefix: str = "") -> tuple[dict[str, torch.Tensor], dict, list[str]]:
    """Split a nested state into flat {"a/b/c": tensor} for safetensors, the JSON rest, and the keys
    that were numpy arrays (restored as arrays)."""
    tensors: dict[str, torch.Tensor] = {}
    values: dict[str, Any] = {}
    arrays: list[str] = []
    for k, v in state.items():
        if "/" in k:
            raise ValueError(f"state key {k!r} may not contain '/'")
        key = prefix + k
        if isinstance(v, dict):
            t, rest, a = flatten_state(v, key + "/")
            tensors.update(t)
            arrays += a
            values[k] = rest
        elif isinstance(v, torch.Tensor):
            tensors[key] = v.detach().cpu().contiguous()
        elif isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
            tensors[key] = torch.from_numpy(np.ascontiguousarray(v))
            arrays.append(key)
        else:
            values[k] = v.tolist() if isinstance(v, np.ndarray) else v
    return tensors, values, arrays


def unflatten_state(tensors: dict[str, torch.Tensor], values: dict, arrays: Sequence[str]) -> dict:
    out: dict[str, Any] = json.loads(json.dumps(values))  # a private copy
    numpy_keys = set(arrays)
    for key, t in tensors.items():
        *parents, leaf = key.split("/")
        d = out
        for p in parents:
            d = d.setdefault(p, {})
        d[leaf] = t.numpy() if key in numpy_keys else t
    return out


# --- optional abilities ---------------------------------------------------------------------------
@runtime_checkable
class IncrementalModel(Protocol):
    """Autoregressive decoding with a cache (SASRec, HSTU): beam search and sampling extend a prefix by
    one position per generated item instead of re-scoring it."""

    def start(self, histories: Histories) -> tuple[torch.Tensor, Any]:
        """Encode each history once: next-item scores (B, n_items + 1) and a cache of the prefix."""
        ...

    def extend(self, cache: Any, items: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Append one item per row (`items`: (B,) internal ids) reusing the cache; return the
        next-item scores (B, n_items + 1) and the grown cache. Cost ~ one position, not the prefix."""
        ...

    def reorder(self, cache: Any, index: torch.Tensor) -> Any:
        """Cache rows for beam search: new row j is old row `index[j]` (rows may repeat)."""
        ...


class CodeTrie(Protocol):
    """Prefix tree of the items' code tuples (semantic IDs): level l has one node per distinct prefix
    of length l + 1; every leaf is one item."""

    node_parent: list[torch.Tensor]  # per level, (M_l,) parent node at level l - 1 (0 = the root at level 0)
    leaf_item: torch.Tensor  # (M_last,) internal item id of each leaf


@runtime_checkable
class CodeTrieModel(Protocol):
    """Items are generated as code tuples, one level of a code trie at a time (tiger): beam search
    decodes over the trie, so only real items come out."""

    def code_trie(self) -> CodeTrie: ...

    def node_log_probs(self, histories: Histories) -> list[torch.Tensor]:
        """Per trie level, (B, M_l) log p(node's code | history, node's prefix) for every node."""
        ...


@runtime_checkable
class ExportsEmbeddings(Protocol):
    """Latent features for `genrec export`: item vectors, and user vectors where the model has them."""

    embedding_scoring: ClassVar[str]  # how the vectors give scores, in words (saved with the export)

    def item_embeddings(self) -> torch.Tensor:
        """(n_items + 1, D) item vectors; row 0 is padding."""
        ...

    def user_embeddings(self, histories: Histories) -> torch.Tensor | None:
        """(B, D) vectors of the histories, or None when the model has no user space."""
        ...


@runtime_checkable
class DotProductScores(ExportsEmbeddings, Protocol):
    """`score(h)` equals `scores_from_embeddings(user_embeddings(h))`, i.e. user vectors @
    item_embeddings().T with column 0 at -inf, so a server may cache a user's vector and score with one
    matrix product."""

    def scores_from_embeddings(self, users: torch.Tensor) -> torch.Tensor:
        """(B, n_items + 1) scores of (B, D) user vectors."""
        ...


@runtime_checkable
class AddsItems(Protocol):
    """Items can join the catalogue without retraining (items known by their content, e.g. tiger)."""

    def add_items(self, texts: list[str]) -> np.ndarray:
        """Give new items (by their text) internal ids n_items + 1, ...; returns those ids."""
        ...

    def item_codes(self, items: np.ndarray) -> list[str]:
        """How the model knows these items, for people (e.g. their semantic IDs)."""
        ...


@runtime_checkable
class MeasuresCompute(Protocol):
    """A model that states its size and training cost, for scaling curves (NDCG against parameters and
    training FLOPs); genrec.training.fit records it in fit_info_."""

    def compute_profile(self, data: Dataset) -> dict[str, float]:
        """After training (or loading): "params" (all), "non_embedding_params" (without embedding
        tables), "flops_per_target" (forward + backward FLOPs of one trained target, on average),
        "trained_targets" (over every epoch) and "train_flops" (their product)."""
        ...


@runtime_checkable
class WarmStartable(Protocol):
    """Fine-tuning (genrec update): training starts at a trained model's weights; rows of items added
    since then start freshly initialised."""

    def start_from(self, trained: Recommender) -> None: ...


@runtime_checkable
class Tunable(Protocol):
    """A closed-form model with a setting chosen on validation (EASE's lambda): genrec.training.fit
    evaluates each candidate the model yields and keeps the best."""

    def candidates(self, data: Dataset) -> Iterator[dict[str, Any]]:
        """Fit one candidate per setting to try; after each yield the model holds that candidate."""
        ...


# --- iterative models: what the one training loop (genrec.training.loop) drives ---------------------
@dataclass
class Phase:
    """One stage of a model's training (most models have one; tiger trains its RQ-VAE first)."""

    name: str
    epochs: int
    patience: int = 0  # validation evaluations without improvement before stopping; 0 = no validation
    eval_every: int = 1  # epochs between validation evaluations
    eval_users: int = 0  # validation users sampled for early stopping (0 = all)
    eval_batch: int = 1024  # users per scoring call during validation
    metric: str = ""  # validation metric; "" = ndcg@10, or ndcg@100 under the held-out-users protocol
    continue_from_best: bool = False  # start at the previous phase's best epoch (weights, optimisers, RNG)
    # where early stopping would end the phase (`patience` evaluations without gain): back to the best
    # epoch's weights with every learning rate x lr_drop_factor, at most `lr_drops` times, then stop
    lr_drops: int = 0
    lr_drop_factor: float = 0.3
    # > 0: validation, early stopping and the kept model use an exponential moving average of the
    # weights over updates, with this decay per update (training itself steps the live weights)
    average_decay: float = 0.0


@dataclass
class Fitting:
    """What the loop drives in one phase: the networks it trains and the optimisers that update them."""

    modules: dict[str, nn.Module]  # snapshotted at the best validation epoch, checkpointed every epoch
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = field(default_factory=dict)  # by optimizer
    grad_clip: float = 0.0  # max global gradient norm per update; 0 = off


@dataclass
class StepContext:
    """Handed to `train_step`: the global update count and `update(loss, optimizer)`, which runs the
    backward pass, gradient clipping, the optimiser and its schedule (the loop owns all of these)."""

    step: int
    device: torch.device
    update: Callable[..., None]

    def to(self, t: torch.Tensor) -> torch.Tensor:
        """A CPU batch tensor on the training device. To a GPU through pinned (page-locked) memory, so
        the copy is asynchronous and overlaps the previous step's kernels."""
        if self.device.type != "cuda":
            return t
        return t.pin_memory().to(self.device, non_blocking=True)


@runtime_checkable
class Trainable(Protocol):
    """An iterative model: it supplies phases, batches and a step; genrec.training runs the epochs,
    validation, early stopping, budgets, checkpoints, progress and Ctrl-C."""

    def prepare_training(self, data: Dataset) -> list[Phase]:
        """Everything before the first epoch that is not a network (text vectors, id tables, ...)."""
        ...

    def setup_phase(self, phase: Phase, data: Dataset, device: torch.device) -> Fitting:
        """Build the phase's networks (fresh, or from `start_from`) and their optimisers."""
        ...

    def batches(self, phase: Phase, data: Dataset, rng: np.random.Generator) -> Sequence[Any]:
        """One epoch's batches, in order; `rng` depends on (seed, phase, epoch) only."""
        ...

    def train_step(self, batch: Any, ctx: StepContext) -> dict[str, float]:
        """Losses of one batch; call `ctx.update(loss)` once per optimiser update. Key "n" (optional):
        examples in the batch, for the throughput shown while training."""
        ...

    def end_epoch(self, phase: Phase) -> dict[str, float]:
        """After an epoch's updates (e.g. reset dead codes); extra values for the epoch's log row."""
        ...

    def end_phase(self, phase: Phase, data: Dataset, best: dict[str, Any]) -> None:
        """After a phase, its best weights restored; `best` is the best epoch's log row."""
        ...


class IterativeRecommender(Recommender, Trainable):
    """Base of iterative models: no-op hooks; subclasses implement prepare_training, setup_phase,
    batches and train_step."""

    def end_epoch(self, phase: Phase) -> dict[str, float]:
        return {}

    def end_phase(self, phase: Phase, data: Dataset, best: dict[str, Any]) -> None:
        return None


# --- helpers shared by model files ----------------------------------------------------------------
def grow_into(net: torch.nn.Module, old: dict[str, torch.Tensor]) -> None:
    """Load `old` (a state dict of the same network for a smaller catalogue) into `net`.

    Every tensor is copied into the leading corner of its new-shaped counterpart: item-indexed rows and
    columns of the old ids keep their trained values, the rows of items added since (new ids are
    appended after the old ones) keep their fresh initialisation.
    """
    new = net.state_dict()
    if set(new) != set(old):
        raise ValueError(f"warm start: parameters differ ({sorted(set(new) ^ set(old))[:4]} ...)")
    with torch.no_grad():
        for k, t in new.items():
            o = old[k]
            if t.dim() != o.dim() or any(a < b for a, b in zip(t.shape, o.shape)):
                raise ValueError(
                    f"warm start: {k} has shape {tuple(o.shape)} in the old model and {tuple(t.shape)} now; "
                    "only the catalogue may grow (same architecture settings)"
                )
            t[tuple(slice(0, n) for n in o.shape)] = o


def history_matrix(histories: Histories, n_items: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Dense binary (B, n_items + 1) user-item matrix of a batch (batch-sized, never users x items)."""
    x = torch.zeros(len(histories), n_items + 1, dtype=dtype)
    x[torch.from_numpy(histories.row_ids()), torch.from_numpy(histories.items)] = 1
    return x


def check_positive(config: ModelConfig, *names: str) -> None:
    for n in names:
        v = getattr(config, n)
        if not v > 0:
            raise ValueError(f"{type(config).__name__}.{n} must be > 0, got {v!r}")


def check_lr_drops(config: ModelConfig) -> None:
    """`lr_drops` / `lr_drop_factor` of a config whose training phase takes `Phase.lr_drops`."""
    cls, drops, factor = type(config).__name__, config.lr_drops, config.lr_drop_factor  # type: ignore[attr-defined]
    if not (isinstance(drops, int) and drops >= 0):
        raise ValueError(f"{cls}.lr_drops must be an integer >= 0, got {drops!r}")
    if not 0 < factor < 1:
        raise ValueError(f"{cls}.lr_drop_factor must be in (0, 1), got {factor!r}")


def check_average_decay(config: ModelConfig) -> None:
    """`average_decay` of a config whose training phase takes `Phase.average_decay`."""
    decay = config.average_decay  # type: ignore[attr-defined]
    if not 0 <= decay < 1:
        raise ValueError(f"{type(config).__name__}.average_decay must be in [0, 1) (0 = off), got {decay!r}")
