"""The optimiser of the sequence models when the item table is too large for Adam's state.

AdamW keeps two float32 moments per weight: for a 10M x 64 item table that is 5.1 GB of state on top of
the 2.6 GB table, and every step reads and writes all of it although a batch touches a few thousand
rows. `RowWiseAdamW` runs AdamW on the dense parameters and row-wise AdaGrad (one accumulator per row,
as in large-scale recommender training) on parameters with sparse gradients: 40 MB of state for 10M
rows, and a step touches only the rows of the batch. Sparse rows get no weight decay (a row untouched for
many steps would otherwise shrink at every step it is not seen).
"""

from __future__ import annotations

import torch


class RowWiseAdamW(torch.optim.Optimizer):
    """AdamW on dense gradients, row-wise AdaGrad (lr `sparse_lr`) on sparse ones (nn.Embedding with
    sparse=True). One scheduler drives both: it scales each group's lr by the same factor."""

    def __init__(
        self,
        params,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        sparse_lr: float = 0.05,
    ) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})
        self.sparse_ratio = sparse_lr / lr  # the sparse rows follow the schedule at their own scale

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if p.grad.is_sparse:
                    g = p.grad.coalesce()
                    rows, vals = g.indices()[0], g.values()  # (R,), (R, D)
                    if "sum" not in state:
                        state["sum"] = torch.zeros(p.shape[0], device=p.device, dtype=torch.float32)
                    acc = state["sum"].index_add_(0, rows, vals.float().pow(2).mean(1))[rows]
                    step = vals / (acc.sqrt() + eps)[:, None]
                    p.index_add_(0, rows, step.to(p.dtype), alpha=-lr * self.sparse_ratio)
                    continue
                if "exp_avg" not in state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
                m.lerp_(p.grad, 1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                if wd:
                    p.mul_(1 - lr * wd)
                denom = (v / (1 - b2**t)).sqrt_().add_(eps)
                p.addcdiv_(m, denom, value=-lr / (1 - b1**t))
        return None


def dense_grads(params) -> list[torch.Tensor]:
    """The parameters whose gradients are dense (what global-norm clipping measures)."""
    return [p for p in params if p.grad is None or not p.grad.is_sparse]
