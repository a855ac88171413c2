"""CFGAN (Chae, Kang, Kim & Lee, "CFGAN: A Generic Collaborative Filtering Framework based on
Generative Adversarial Networks", CIKM 2018), user-based.

The generator G reads a user's history vector c_u (the condition) and emits a purchase vector
r_hat_u in [0, 1]^I. The discriminator D sees (c_u, r) and tells the real purchase vector
r_u = e_u (the user's binary history) from the generated one. Without more, G wins by
outputting all ones, so the paper adds, per user and batch, samples of unpurchased items:

    PM (partial masking):       D sees r_hat_u * (e_u + k_u), k_u = S_PM share of the unpurchased items,
                                so G must put 0 there to look real;
    ZR (zero reconstruction):   G pays alpha * sum_{j in ZR_u} r_hat_uj^2 on S_ZR unpurchased items;
    ZP:                         both (the paper's best).

    J_D = -[log D(e_u | c_u) + log(1 - D(r_hat_u * (e_u + k_u) | c_u))]
    J_G = -log D(r_hat_u * (e_u + k_u) | c_u) + alpha * ZR_u       (non-saturating G loss)

Training alternates one D update and one G update per minibatch of users (the paper's Algorithm 1),
with D learning slower than G; Glorot-initialised weights as the authors' code. The loop (epochs,
validation every `eval_every` epochs, early stopping) is genrec.training's.

Scores are G's pre-sigmoid outputs (same order as r_hat_u, no ties from saturation). Any history
vector can be scored, which is folding in for users never seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from genrec.data.dataset import Dataset, Histories
from genrec.models.base import Fitting, IterativeRecommender, ModelConfig, Phase, StepContext, check_positive
from genrec.models.sparse_input import SparseLinear, SparseRows, training_users

SCHEMES = ("ZR", "PM", "ZP")


@dataclass
class CFGANConfig(ModelConfig):
    scheme: str = "ZP"  # ZR | PM | ZP (both)
    zr_ratio: float = 0.7  # S_ZR: share of a user's unpurchased items in the zero-reconstruction sample
    pm_ratio: float = 0.7  # S_PM: share of a user's unpurchased items partially masked
    zr_coef: float = 0.1  # alpha, weight of the ZR penalty (the paper's best is around 0.1)
    g_hidden: int = 400
    d_hidden: int = 125
    lr_g: float = 1e-3
    lr_d: float = 1e-4  # D learns slower than G: a D that wins every minibatch gives G no usable gradient
    reg_g: float = 1e-3  # L2 on G's weights (0.5 * sum w^2), as the authors' implementation
    reg_d: float = 0.0
    batch_size: int = 32  # small batches: many updates per epoch on small user sets
    d_steps: int = 1  # D updates per minibatch (Algorithm 1 of the paper)
    g_steps: int = 1  # G updates per minibatch, after D's
    epochs: int = 300  # upper bound; early stopping on validation NDCG
    eval_every: int = 5
    patience: int = 6  # validation evaluations without improvement before stopping (30 epochs)

    def validate(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"CFGANConfig.scheme must be one of {', '.join(SCHEMES)}, got {self.scheme!r}")
        for f in ("zr_ratio", "pm_ratio"):
            if not 0 <= getattr(self, f) <= 1:
                raise ValueError(f"CFGANConfig.{f} must be in [0, 1], got {getattr(self, f)}")
        check_positive(
            self,
            "g_hidden",
            "d_hidden",
            "lr_g",
            "lr_d",
            "batch_size",
            "d_steps",
            "g_steps",
            "epochs",
            "eval_every",
            "patience",
        )
        for f in ("zr_coef", "reg_g", "reg_d"):
            if getattr(self, f) < 0:
                raise ValueError(f"CFGANConfig.{f} must be >= 0, got {getattr(self, f)}")


class Generator(nn.Module):
    """c_u (sparse, I+1) -> sigmoid hidden -> logits of r_hat_u (B, I+1)."""

    def __init__(self, n_items: int, hidden: int) -> None:
        super().__init__()
        self.inp = SparseLinear(n_items + 1, hidden)
        self.out = nn.Linear(hidden, n_items + 1)

    def forward(self, c: SparseRows) -> torch.Tensor:
        h = torch.sigmoid(self.inp(c.items, c.offsets, torch.ones_like(c.items, dtype=torch.float)))
        return self.out(h)  # (B, I+1) logits; r_hat = sigmoid(logits)


class Discriminator(nn.Module):
    """(c_u, r) -> logit of "r is u's real purchase vector"; c_u enters sparsely, r densely."""

    def __init__(self, n_items: int, hidden: int) -> None:
        super().__init__()
        self.cond = SparseLinear(n_items + 1, hidden)
        self.vec = nn.Linear(n_items + 1, hidden, bias=False)
        self.out = nn.Linear(hidden, 1)

    def forward(self, c: SparseRows, r: torch.Tensor) -> torch.Tensor:
        # concat(c, r) @ W == c @ W_c + r @ W_r
        ones = torch.ones_like(c.items, dtype=torch.float)
        h = torch.sigmoid(self.cond(c.items, c.offsets, ones) + self.vec(r))
        return self.out(h).squeeze(1)  # (B,)


def _xavier(module: nn.Module) -> None:
    """Glorot-uniform weights, zero biases, as the authors' TensorFlow code. EmbeddingBag's own N(0, 1)
    init would sum ~100 unit-variance weights per user into the sigmoid hidden layer and saturate it."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.EmbeddingBag)):
            nn.init.xavier_uniform_(m.weight)
        if isinstance(getattr(m, "bias", None), nn.Parameter):
            nn.init.zeros_(m.bias)


def _l2(module: nn.Module) -> torch.Tensor:
    return 0.5 * sum(p.pow(2).sum() for p in module.parameters())


class CFGAN(IterativeRecommender):
    """CFGAN: conditional GAN over users' purchase vectors with ZR / PM negatives (Chae et al. 2018)."""

    name = "cfgan"
    config_cls = CFGANConfig

    # --- Trainable (the loop is genrec.training's) ---------------------------------------------
    def prepare_training(self, data: Dataset) -> list[Phase]:
        cfg = self.config
        self.n_items_ = data.n_items
        self._train, self._users = data.train, training_users(data, self.name)
        self.fit_info_ = {}
        return [Phase("train", cfg.epochs, cfg.patience, cfg.eval_every, eval_batch=cfg.batch_size)]

    def setup_phase(self, phase: Phase, data: Dataset, device: torch.device) -> Fitting:
        cfg = self.config
        self.gen_ = Generator(self.n_items_, cfg.g_hidden)
        self.dis_ = Discriminator(self.n_items_, cfg.d_hidden)
        _xavier(self.gen_)
        _xavier(self.dis_)
        self.gen_.to(device)
        self.dis_.to(device)
        return Fitting(
            {"gen": self.gen_, "dis": self.dis_},
            {
                "g": torch.optim.Adam(self.gen_.parameters(), lr=cfg.lr_g),
                "d": torch.optim.Adam(self.dis_.parameters(), lr=cfg.lr_d),
            },
        )

    def batches(self, phase: Phase, data: Dataset, rng: np.random.Generator) -> list[np.ndarray]:
        perm, bs = rng.permutation(self._users), self.config.batch_size
        return [perm[s : s + bs] for s in range(0, len(perm), bs)]

    def train_step(self, users: np.ndarray, ctx: StepContext) -> dict[str, float]:
        """The paper's Algorithm 1 alternates per minibatch: D never goes stale for a whole epoch, so G
        cannot drift into D's blind spots instead of reproducing the purchases. G's loss is computed
        after D's update, against the updated D."""
        cfg = self.config
        x = SparseRows.from_histories(self._train.take(users), self.n_items_).to(ctx.device)
        d = np.zeros(3)  # loss, mean D(real), mean D(fake)
        for _ in range(cfg.d_steps):
            d_loss, p_real, p_fake = self._d_loss(x)
            ctx.update(d_loss, "d")
            d += [float(d_loss.detach()), float(p_real), float(p_fake)]
        g = np.zeros(3)  # loss, adversarial part, ZR part
        for _ in range(cfg.g_steps):
            g_loss, adv, zr = self._g_loss(x)
            ctx.update(g_loss, "g")  # also fills D's gradients; D's next update clears them first
            g += [float(g_loss.detach()), float(adv), float(zr)]
        d, g = d / cfg.d_steps, g / cfg.g_steps
        return {
            "d_loss": d[0],
            "d_real": d[1],
            "d_fake": d[2],
            "g_loss": g[0],
            "g_adv": g[1],
            "g_zr": g[2],
            "n": x.n_rows,
        }

    def _negatives(self, e: torch.Tensor, ratio: float) -> torch.Tensor:
        """(B, I+1) float mask: each unpurchased item (not padding) sampled with probability `ratio`."""
        k = (torch.rand_like(e) < ratio) & (e == 0)
        k[:, 0] = False
        return k.float()

    def _fake(self, x: SparseRows, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """G's purchase vector as D sees it (masked by e_u + k_u), and G's logits."""
        logits = self.gen_(x)
        mask = e + self._negatives(e, self.config.pm_ratio) if self.config.scheme != "ZR" else e
        return torch.sigmoid(logits) * mask, logits

    def _d_loss(self, x: SparseRows) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e = x.dense(self.n_items_)  # (B, I+1) real purchase vector: batch-sized
        with torch.no_grad():
            fake, _ = self._fake(x, e)
        d_real, d_fake = self.dis_(x, e), self.dis_(x, fake)
        loss = F.binary_cross_entropy_with_logits(
            d_real, torch.ones_like(d_real)
        ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        if self.config.reg_d > 0:
            loss = loss + self.config.reg_d * _l2(self.dis_)
        return loss, torch.sigmoid(d_real).mean().detach(), torch.sigmoid(d_fake).mean().detach()

    def _g_loss(self, x: SparseRows) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e = x.dense(self.n_items_)
        fake, logits = self._fake(x, e)
        d_fake = self.dis_(x, fake)
        adv = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
        zr = adv.new_zeros(())
        if self.config.scheme != "PM":
            zr_mask = self._negatives(e, self.config.zr_ratio)
            zr = (torch.sigmoid(logits).pow(2) * zr_mask).sum(1).mean()  # push sampled non-purchases to 0
        loss = adv + self.config.zr_coef * zr + self.config.reg_g * _l2(self.gen_)
        return loss, adv.detach(), zr.detach()

    @torch.no_grad()
    def score(self, histories: Histories) -> torch.Tensor:
        """Fold-in: G's logits for each history vector, (B, I+1); column 0 (padding) is -inf."""
        was_training = self.gen_.training
        self.gen_.eval()
        logits = self.gen_(SparseRows.from_histories(histories, self.n_items_).to(self.gen_.out.bias.device))
        self.gen_.train(was_training)
        return logits.float().cpu().index_fill(1, torch.zeros(1, dtype=torch.long), -torch.inf)

    def _state(self) -> dict[str, Any]:
        return {"gen": self.gen_.state_dict()}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.gen_ = Generator(self.n_items_, self.config.g_hidden)
        self.gen_.load_state_dict(state["gen"])
        self.gen_.eval()
