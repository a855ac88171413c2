"""Mult-VAE and Mult-DAE (Liang, Krishnan, Hoffman & Jebara, "Variational Autoencoders for
Collaborative Filtering", WWW 2018).

A user is their binary item vector x (I items). The encoder reads the L2-normalised, dropped-out x;
the decoder outputs logits f(z) over all items and the likelihood is multinomial:

    log p(x | z) = sum_i x_i log softmax(f(z))_i
    Mult-VAE:  loss = -E_q[log p(x | z)] + beta * KL(q(z | x) || N(0, I)),  beta annealed 0 -> cap
    Mult-DAE:  loss = -log p(x | g(x))    (deterministic bottleneck, no KL)

"Best beta" as in the paper (section 2.2.2), two training phases: "beta search" anneals beta linearly
towards `beta_max` while recording validation NDCG; the beta at its best validation epoch becomes the
cap of the "final" phase, which continues from that epoch (annealing stops at the cap). `fit_info_`
keeps both phases' curves and the chosen `beta`. The loop is genrec.training's.

Scoring a history is folding in: any history vector (also of a user never seen in training) is
encoded and decoded; z = mu at inference. Inputs are sparse (`SparseLinear`), never users x items.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from genrec.data.dataset import Dataset, Histories
from genrec.models.base import (
    Fitting,
    IterativeRecommender,
    ModelConfig,
    Phase,
    Recommender,
    StepContext,
    WarmStartable,
    check_positive,
    grow_into,
)
from genrec.models.sparse_input import SparseLinear, SparseRows, training_users


@dataclass
class MultDAEConfig(ModelConfig):
    hidden: list[int] = field(default_factory=lambda: [600, 200])  # encoder I -> 600 -> 200, decoder mirrors
    dropout: float = 0.5  # input dropout on the normalised user vector
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 500
    epochs: int = 200  # upper bound; early stopping on validation NDCG
    patience: int = 20  # epochs without a validation improvement before stopping

    def validate(self) -> None:
        check_positive(self, "lr", "batch_size", "epochs", "patience")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(
                f"{type(self).__name__}.hidden must be a non-empty list of sizes, got {self.hidden}"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"{type(self).__name__}.dropout must be in [0, 1), got {self.dropout}")
        if self.weight_decay < 0:
            raise ValueError(f"{type(self).__name__}.weight_decay must be >= 0, got {self.weight_decay}")


@dataclass
class MultVAEConfig(MultDAEConfig):
    beta_cap: float | None = None  # final KL weight; None = pick it on validation from an annealing run
    beta_max: float = 1.0  # where the beta-search run anneals to
    anneal_steps: int = 0  # updates from beta 0 to beta_max; 0 = spread over the search run's epochs

    def validate(self) -> None:
        super().validate()
        check_positive(self, "beta_max")
        if self.beta_cap is not None and self.beta_cap < 0:
            raise ValueError(
                f"MultVAEConfig.beta_cap must be >= 0 or None (pick on validation), got {self.beta_cap}"
            )
        if self.anneal_steps < 0:
            raise ValueError(f"MultVAEConfig.anneal_steps must be >= 0, got {self.anneal_steps}")


def beta_schedule(step: int, anneal_steps: int, beta_max: float, cap: float | None = None) -> float:
    """KL weight after `step` updates: linear 0 -> beta_max over `anneal_steps`, stopped at `cap`."""
    beta = beta_max * min(1.0, step / max(anneal_steps, 1))
    return beta if cap is None else min(beta, cap)


class AutoEncoder(nn.Module):
    """tanh MLP [I -> h_0 -> ... -> h_k -> ... -> h_0 -> I]; variational: the h_k layer is (mu, logvar)."""

    def __init__(self, n_items: int, hidden: list[int], variational: bool, dropout: float) -> None:
        super().__init__()
        self.variational, self.dropout, self.n_items = variational, dropout, n_items
        enc_out = [*hidden[:-1], hidden[-1] * (2 if variational else 1)]
        self.inp = SparseLinear(n_items + 1, enc_out[0])  # (B, I+1) sparse -> (B, h_0)
        self.enc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(hidden[:-1], enc_out[1:]))
        dec = [*hidden[::-1], n_items + 1]
        self.dec = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dec[:-1], dec[1:]))
        for lin in [*self.enc, *self.dec]:  # the paper's reference init: Xavier weights, tiny biases
            nn.init.xavier_uniform_(lin.weight)
            nn.init.normal_(lin.bias, std=1e-3)
        nn.init.xavier_uniform_(self.inp.bag.weight)
        nn.init.normal_(self.inp.bias, std=1e-3)

    def _input_weights(self, x: SparseRows) -> torch.Tensor:
        # L2-normalised binary rows: every non-zero is 1 / sqrt(row length)
        w = torch.rsqrt(x.lengths.clamp(min=1).float())[x.rows]
        if self.training and self.dropout > 0:
            w = w * torch.bernoulli(torch.full_like(w, 1 - self.dropout)) / (1 - self.dropout)
        return w

    def encode(self, x: SparseRows) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mu, logvar) for the VAE, (code, None) for the DAE; (B, h_k) each."""
        return self._encode_from(self.inp(x.items, x.offsets, self._input_weights(x)))

    def encode_dense(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Dense reference path on a (B, I+1) binary matrix (tests only; no dropout)."""
        return self._encode_from(self.inp.dense(F.normalize(x, dim=1)))

    def _encode_from(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        for lin in self.enc:
            h = lin(torch.tanh(h))
        if not self.variational:
            return torch.tanh(h), None
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = z
        for i, lin in enumerate(self.dec):
            h = lin(h if i == 0 else torch.tanh(h))
        pad = torch.zeros(1, dtype=torch.long, device=h.device)
        return h.index_fill(1, pad, -torch.inf)  # (B, I+1), padding never wins


class MultDAE(IterativeRecommender, WarmStartable):
    """Mult-DAE: denoising autoencoder with a multinomial likelihood (Liang et al. 2018)."""

    name = "multdae"
    config_cls = MultDAEConfig
    variational = False
    next_item_logits = True  # decoder outputs are the logits of the multinomial over items

    def __init__(self, config: MultDAEConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self._init_from: Recommender | None = None

    # --- Trainable (the loop is genrec.training's) ---------------------------------------------
    def start_from(self, trained: Recommender) -> None:
        self._init_from = trained

    def prepare_training(self, data: Dataset) -> list[Phase]:
        cfg = self.config
        self.n_items_ = data.n_items
        self._train, self._users = data.train, training_users(data, self.name)
        self.fit_info_ = {}
        return [Phase("train", cfg.epochs, cfg.patience, eval_batch=cfg.batch_size)]

    def setup_phase(self, phase: Phase, data: Dataset, device: torch.device) -> Fitting:
        cfg = self.config
        net = AutoEncoder(self.n_items_, cfg.hidden, self.variational, cfg.dropout)
        if self._init_from is not None:  # fine-tuning: start at the trained weights, new items fresh
            grow_into(net, self._init_from._state()["net"])
        self.net_ = net.to(device)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        return Fitting({"net": net}, {"main": opt})

    def batches(self, phase: Phase, data: Dataset, rng: np.random.Generator) -> list[np.ndarray]:
        perm, bs = rng.permutation(self._users), self.config.batch_size
        return [perm[s : s + bs] for s in range(0, len(perm), bs)]

    def train_step(self, users: np.ndarray, ctx: StepContext) -> dict[str, float]:
        x = SparseRows.from_histories(self._train.take(users), self.n_items_).to(ctx.device)
        nll, kl = self._losses(x)
        loss = nll + self._beta(ctx.step) * kl
        ctx.update(loss)
        self._steps = ctx.step + 1
        return {
            "loss": float(loss.detach()),
            "nll": float(nll.detach()),
            "kl": float(kl.detach()),
            "n": x.n_rows,
        }

    def _beta(self, step: int) -> float:
        return 0.0

    def _losses(self, x: SparseRows) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch-mean multinomial NLL and KL (0 for the DAE)."""
        mu, logvar = self.net_.encode(x)
        if logvar is not None:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # reparameterisation
            kl = 0.5 * (-logvar + logvar.exp() + mu.pow(2) - 1).sum(1).mean()
        else:
            z, kl = mu, mu.new_zeros(())
        logp = F.log_softmax(self.net_.decode(z), dim=1)  # (B, I+1)
        nll = -logp[x.rows, x.items].sum() / x.n_rows  # only the user's items: x_i = 1
        return nll, kl

    # --- inference -----------------------------------------------------------------------------
    @torch.no_grad()
    def score(self, histories: Histories) -> torch.Tensor:
        """Fold-in: logits of every item given each history vector (z = mu). (B, I+1)."""
        was_training = self.net_.training
        self.net_.eval()
        device = self.net_.inp.bias.device
        mu, _ = self.net_.encode(SparseRows.from_histories(histories, self.n_items_).to(device))
        out = self.net_.decode(mu)
        self.net_.train(was_training)
        return out.float().cpu()

    @torch.no_grad()
    def score_dense(self, x: torch.Tensor) -> torch.Tensor:
        """Same as `score` from a dense (B, I+1) binary matrix: the reference for the sparse path."""
        self.net_.eval()
        return self.net_.decode(self.net_.encode_dense(x)[0])

    def _state(self) -> dict[str, Any]:
        return {"net": self.net_.state_dict()}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.net_ = AutoEncoder(self.n_items_, self.config.hidden, self.variational, self.config.dropout)
        self.net_.load_state_dict(state["net"])
        self.net_.eval()


class MultVAE(MultDAE):
    """Mult-VAE^PR: variational autoencoder, multinomial likelihood, annealed KL (Liang et al. 2018)."""

    name = "multvae"
    config_cls = MultVAEConfig
    variational = True

    def prepare_training(self, data: Dataset) -> list[Phase]:
        """Search phase + final phase, or one phase when `beta_cap` is given (see the module docstring)."""
        cfg = self.config
        train = super().prepare_training(data)[0]
        n_batches = -(-len(self._users) // cfg.batch_size)
        self._anneal = cfg.anneal_steps or cfg.epochs * n_batches
        self._cap = cfg.beta_cap
        self.fit_info_.update(anneal_steps=self._anneal, beta=self._cap)
        if self._cap is not None:
            return [train]
        # the final run (anneal to the chosen beta, then hold it) equals the search run up to the chosen
        # epoch, so it continues from the search's state at that epoch instead of restarting
        return [
            dataclasses.replace(train, name="beta search"),
            dataclasses.replace(train, name="final", continue_from_best=True),
        ]

    def end_epoch(self, phase: Phase) -> dict[str, float]:
        # the beta reached at the end of the epoch: the one its weights were trained to
        return {"beta": self._beta(self._steps)}

    def end_phase(self, phase: Phase, data: Dataset, best: dict[str, Any]) -> None:
        if phase.name == "beta search":  # the final phase anneals up to the best epoch's beta only
            self._cap = self.fit_info_["beta"] = best["beta"]

    def _beta(self, step: int) -> float:
        return beta_schedule(step, self._anneal, self.config.beta_max, self._cap)
