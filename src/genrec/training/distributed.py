"""Data-parallel training on `torch.distributed`, launched by torchrun (or `genrec train --nproc N`).

    torchrun --standalone --nproc-per-node 2 -m genrec train --synthetic --model sasrec --out RUN
    torchrun --nnodes 2 --node-rank 0 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \
        --nproc-per-node 8 -m genrec train ...          # and --node-rank 1 on the second machine

Every process builds the same model from the same seed (rank 0's weights are broadcast anyway) and
reads the same epoch order; process r takes batches r, r + N, r + 2N, ... (`Shard`), so one step of N
processes covers N batches. After each backward pass the gradients of the optimiser's parameters are
averaged over the processes with one all-reduce of a flat buffer: the arithmetic of
DistributedDataParallel, without its module wrapper, which would need every model's forward pass to
go through it (genrec's models call their networks inside `train_step`). Validation users are split
across processes and the metric's sum is all-reduced, so early stopping decides the same on every
rank. Rank 0 alone logs, shows progress, writes checkpoints and the run directory.

`batch_size` is per process: N processes train with a global batch of N x batch_size. To keep the
global batch of a one-process run, divide batch_size by N; to keep batch_size, scale the learning rate
with the global batch (linear for SGD, about sqrt(N) for Adam) and expect to need a warm-up.

Backends: gloo on CPU, nccl on CUDA. A checkpoint holds the weights, optimiser states and loop state,
which do not depend on the number of processes: a run checkpointed by N processes resumes with any
other number (the remaining epochs are then split the new way).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) unless launched by torchrun with several processes."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main() -> bool:
    return world()[0] == 0


def init(device: torch.device) -> bool:
    """Join the process group torchrun describes (env:// rendezvous); False when there is none."""
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend)
        # Without an explicit destroy, gloo's worker threads outlive the interpreter's teardown and a
        # process that has finished its work can still die of SIGABRT on exit.
        atexit.register(_destroy)
    return True


def _destroy() -> None:
    if not dist.is_initialized():
        return
    # Tear down together: a rank whose peer has already closed its connections can die of SIGABRT in
    # gloo's teardown. The wait is bounded, so a process whose peer has failed still exits.
    if dist.get_world_size() > 1 and dist.get_backend() == "gloo":
        try:
            dist.monitored_barrier(timeout=timedelta(seconds=60))
        except RuntimeError:
            pass
    dist.destroy_process_group()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class Shard(Sequence):
    """Process `rank`'s share of an epoch's batches: every `world`-th one, the same count on every rank
    (a collective step needs every process; the last few batches that do not fill a step are left
    out, a different few each epoch since the order is reshuffled). With fewer batches than processes,
    every process takes every batch: the averaged gradient is then one process's, so training is the
    same as in one process, only not faster."""

    def __init__(self, batches: Sequence[Any], rank: int, world: int) -> None:
        self.batches, self.rank = batches, rank
        self.world = world if len(batches) >= world else 1
        if self.world == 1:
            self.rank = 0

    def __len__(self) -> int:
        return len(self.batches) // self.world

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.batches[i * self.world + self.rank]


def broadcast_parameters(modules: dict[str, torch.nn.Module]) -> None:
    """Start every process from rank 0's weights and buffers."""
    for m in modules.values():
        for t in [*m.parameters(), *m.buffers()]:
            dist.broadcast(t.data, src=0)


def in_sync(modules: dict[str, torch.nn.Module]) -> bool:
    """True when every process holds the same weights (compared by a float64 fingerprint; averaged
    gradients keep them bitwise equal, so any difference is real)."""
    fp = torch.stack([t.detach().double().sum() for m in modules.values() for t in m.state_dict().values()])
    fp = fp.cpu()
    hi, lo = fp.clone(), -fp
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    dist.all_reduce(lo, op=dist.ReduceOp.MAX)
    return bool(torch.equal(hi, -lo))


def average_gradients(params: list[torch.Tensor]) -> None:
    """Average the gradients of `params` over the processes: one all-reduce of a flat buffer. A
    parameter without a gradient on some process counts as zero there; one without a gradient on every
    process keeps none (so the optimiser skips it, as it would in one process)."""
    if not params:
        return
    if any(p.grad is not None and p.grad.is_sparse for p in params):
        raise ValueError(
            "sparse gradients (sparse_items=on) are not averaged across processes; "
            "train with sparse_items=auto or off under torchrun"
        )
    grads = [
        p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), device=p.device) for p in params
    ]
    has = torch.tensor([p.grad is not None for p in params], dtype=grads[0].dtype, device=grads[0].device)
    flat = torch.cat([*grads, has])
    dist.all_reduce(flat)
    sizes = [p.numel() for p in params]
    *parts, seen = flat.split([*sizes, len(params)])
    parts = [g / dist.get_world_size() for g in parts]
    for p, g, s in zip(params, parts, seen.tolist()):
        if p.grad is not None:
            p.grad.copy_(g.view_as(p))
        elif s > 0:
            p.grad = g.view_as(p).clone()


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum over the processes."""
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def barrier() -> None:
    if active():
        dist.barrier()
