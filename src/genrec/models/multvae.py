"""Mult-VAE and Mult-DAE (Liang, Krishnan, Hoffman & Jebara, "Variational Autoencoders for
Collaborative Filtering", WWW 2018).

A user is their binary item vector x (I items). The encoder reads the L2-normalised, dropped-out x;
the decoder outputs logits f(z) over all items and the likelihood is multinomial:

    log p(x | z) = sum_i x_i log softmax(f(z))_i
    Mult-VAE:  loss = -E_q[log p(x | z)] + beta * KL(q(z | x) || N(0, I)),  beta annealed 0 -> cap
    Mult-DAE:  loss = -log p(x | g(x))    (deterministic bottleneck, no KL)

"Best beta" as in the paper (section 2.2.2): a first run anneals beta linearly towards `beta_max`
while recording validation NDCG; the beta at the best validation epoch becomes the cap of the final
run (annealing stops there). `fit_info_` keeps both curves and the chosen beta.

Scoring a history is folding in: any history vector (also of a user never seen in training) is
encoded and decoded; z = mu at inference. Inputs are sparse (`SparseLinear`), never users x items.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from genrec.data.dataset import Dataset, Histories
from genrec.models.base import ModelConfig, Recommender, check_positive, grow_into
from genrec.models.sparse_input import SparseLinear, SparseRows


@dataclass
class MultDAEConfig(ModelConfig):
    hidden: list[int] = field(default_factory=lambda: [600, 200])  # encoder I -> 600 -> 200, decoder mirrors
    dropout: float = 0.5  # input dropout on the normalised user vector
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 500
    epochs: int = 200  # upper bound; early stopping on validation NDCG
    patience: int = 20  # epochs without a validation improvement before stopping
    seed: int = 0

    def validate(self) -> None:
        check_positive(self, "lr", "batch_size", "epochs", "patience")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"{type(self).__name__}.hidden must be a non-empty list of sizes, "
                             f"got {self.hidden}")
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
            raise ValueError("MultVAEConfig.beta_cap must be >= 0 or None (pick on validation), "
                             f"got {self.beta_cap}")
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
        return h.index_fill(1, torch.zeros(1, dtype=torch.long), -torch.inf)  # (B, I+1), padding never wins


class MultDAE(Recommender):
    """Mult-DAE: denoising autoencoder with a multinomial likelihood (Liang et al. 2018)."""

    name = "multdae"
    config_cls = MultDAEConfig
    variational = False
    warm_starts = True
    next_item_logits = True  # multinomial likelihood: softmax(scores) is the distribution over items

    # --- training ------------------------------------------------------------------------------
    def fit(self, data: Dataset) -> MultDAE:
        self.n_items_ = data.n_items
        self.fit_info_ = {"metric": self._metric(data)}
        train_users = np.flatnonzero(data.train.lengths > 0)
        if len(train_users) == 0:
            raise ValueError(f"{data.name}: no training interactions to fit {self.name} on")
        self._train(data, train_users, cap=None, record="curve")
        self.__dict__.pop("_snapshot", None)
        return self

    @staticmethod
    def _metric(data: Dataset) -> str:
        # the paper's model selection metric under strong generalization; the LOO table's otherwise
        return "ndcg@100" if data.protocol == "users" else "ndcg@10"

    def _train(self, data: Dataset, users: np.ndarray, cap: float | None, record: str,
               anneal_steps: int = 0, beta_max: float = 1.0, resume: dict | None = None) -> float:
        """One training run with early stopping; keeps the best-validation weights. Returns best metric.

        `resume`: the snapshot a previous run took at its best epoch (weights, optimizer, RNG states,
        step, curve so far); training continues from there exactly as a fresh run with the same seed
        would have reached it.
        """
        from genrec.evaluation import evaluate  # evaluation sits above models

        cfg = self.config
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.net_ = AutoEncoder(self.n_items_, cfg.hidden, self.variational, cfg.dropout)
        if self.warm_start is not None:
            grow_into(self.net_, self.warm_start._state()["net"])
        opt = torch.optim.Adam(self.net_.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        metric, k = self.fit_info_["metric"], int(self.fit_info_["metric"].split("@")[1])
        curve: list[dict[str, float]] = []
        best, best_state, best_epoch, step, start = -1.0, None, 0, 0, 1
        if resume is not None:
            self.net_.load_state_dict(resume["net"])
            opt.load_state_dict(resume["opt"])
            rng.bit_generator.state = resume["rng"]
            torch.set_rng_state(resume["torch_rng"])
            step, best_epoch, curve = resume["step"], resume["epoch"], list(resume["curve"])
            best, best_state, start = curve[-1]["valid_" + metric], resume["net"], resume["epoch"] + 1
        for epoch in range(start, cfg.epochs + 1):
            t0 = time.perf_counter()
            self.net_.train()
            perm = rng.permutation(users)
            sums = {"loss": 0.0, "nll": 0.0, "kl": 0.0}
            for s in range(0, len(perm), cfg.batch_size):
                x = SparseRows.from_histories(data.train.take(perm[s : s + cfg.batch_size]), self.n_items_)
                beta = beta_schedule(step, anneal_steps, beta_max, cap) if self.variational else 0.0
                nll, kl = self._losses(x)
                loss = nll + beta * kl
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                n = x.n_rows
                sums["loss"] += float(loss.detach()) * n
                sums["nll"] += float(nll.detach()) * n
                sums["kl"] += float(kl.detach()) * n
            seconds = time.perf_counter() - t0
            self.net_.eval()
            # validation in training-sized batches: peak memory follows batch_size, not the user count
            value = evaluate(self.score, data.valid, ks=(k,), batch_size=cfg.batch_size)[metric]
            row = {"epoch": epoch, "seconds": seconds, "valid_" + metric: value,
                   **{key: v / len(perm) for key, v in sums.items()}}
            if self.variational:
                row["beta"] = beta_schedule(step, anneal_steps, beta_max, cap)
            curve.append(row)
            if not np.isfinite(row["loss"]):
                raise FloatingPointError(f"{self.name}: training loss became {row['loss']} at epoch {epoch}; "
                                         "lower lr (--set lr=...)")
            if value > best:
                best, best_epoch, best_state = value, epoch, copy.deepcopy(self.net_.state_dict())
                self._snapshot = {"net": best_state, "opt": copy.deepcopy(opt.state_dict()),
                                  "rng": copy.deepcopy(rng.bit_generator.state),
                                  "torch_rng": torch.get_rng_state(), "step": step, "epoch": epoch,
                                  "curve": list(curve)}
            elif epoch - best_epoch >= cfg.patience:
                break
        self.net_.load_state_dict(best_state)
        self.net_.eval()
        self.fit_info_[record] = curve
        self.fit_info_[record + "_best_epoch"] = best_epoch
        self.fit_info_["valid_" + metric] = best
        self.fit_info_["epoch_seconds"] = float(np.mean([r["seconds"] for r in curve]))
        ran = len(curve) - (resume["epoch"] if resume else 0)
        self.fit_info_["epochs_trained"] = self.fit_info_.get("epochs_trained", 0) + ran
        return best

    def _losses(self, x: SparseRows) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch-mean multinomial NLL and KL (0 for the DAE)."""
        mu, logvar = self.net_.encode(x)
        if logvar is not None:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # reparameterisation
            kl = 0.5 * (-logvar + logvar.exp() + mu.pow(2) - 1).sum(1).mean()
        else:
            z, kl = mu, torch.zeros(())
        logp = F.log_softmax(self.net_.decode(z), dim=1)  # (B, I+1)
        nll = -logp[x.rows, x.items].sum() / x.n_rows  # only the user's items: x_i = 1
        return nll, kl

    # --- inference -----------------------------------------------------------------------------
    @torch.no_grad()
    def score(self, histories: Histories) -> torch.Tensor:
        """Fold-in: logits of every item given each history vector (z = mu). (B, I+1)."""
        was_training = self.net_.training
        self.net_.eval()
        mu, _ = self.net_.encode(SparseRows.from_histories(histories, self.n_items_))
        out = self.net_.decode(mu)
        self.net_.train(was_training)
        return out

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

    def fit(self, data: Dataset) -> MultVAE:
        cfg = self.config
        self.n_items_ = data.n_items
        self.fit_info_ = {"metric": self._metric(data)}
        users = np.flatnonzero(data.train.lengths > 0)
        if len(users) == 0:
            raise ValueError(f"{data.name}: no training interactions to fit {self.name} on")
        n_batches = -(-len(users) // cfg.batch_size)
        anneal = cfg.anneal_steps or cfg.epochs * n_batches
        self.fit_info_["anneal_steps"] = anneal
        cap = cfg.beta_cap
        if cap is None:
            # search run: anneal towards beta_max, record validation NDCG per epoch, take the best beta
            self._train(data, users, cap=None, record="beta_search", anneal_steps=anneal,
                        beta_max=cfg.beta_max)
            search = self.fit_info_["beta_search"]
            cap = search[self.fit_info_["beta_search_best_epoch"] - 1]["beta"]
            self.fit_info_["beta_search_valid"] = self.fit_info_["valid_" + self.fit_info_["metric"]]
            # the final run (anneal to the chosen beta, then hold it) equals the search run up to the
            # chosen epoch, so it continues from the snapshot taken there instead of restarting
            resume = self._snapshot
        else:
            resume = None
        self.fit_info_["beta"] = cap
        self._train(data, users, cap=cap, record="curve", anneal_steps=anneal, beta_max=cfg.beta_max,
                    resume=resume)
        self.__dict__.pop("_snapshot", None)
        return self
