"""The one training loop. Every model is fitted through `fit`; iterative models (`Trainable`) supply
their phases, batches and step, and everything else happens here:

- epochs of `model.batches` -> `model.train_step`, whose `ctx.update(loss)` runs backward, gradient
  clipping, the optimiser and its schedule (bf16 autocast on a GPU);
- validation with genrec.evaluation.evaluate on `data.valid` every `eval_every` epochs, early stopping
  after `patience` evaluations without gain, the best epoch's weights restored at the end of a phase;
  with `Phase.average_decay`, validation and the kept model use a moving average of the weights;
- `max_minutes` over the whole fit, checked between epochs (every phase still runs one epoch, so no
  network is left untrained), `threads`, one `seed`;
- a checkpoint after every epoch; `resume` continues from it with the same RNG state, so the loss curve
  continues exactly; Ctrl-C leaves the last completed epoch's checkpoint and raises TrainingInterrupted;
- progress: a tqdm bar on a terminal, one line per epoch on stderr, and a plain log line (train.log) at
  least every 30 s; callbacks receive every epoch's row (TensorBoard / MLflow loggers plug in here);
- data-parallel training when launched by torchrun (genrec.training.distributed): each process takes
  its share of every epoch's batches, gradients are averaged at each update, validation is split
  across processes; rank 0 alone logs, shows progress and writes checkpoints.

Models without epochs are fitted here too: `Tunable` models (EASE) by a search on validation, the
others by their closed-form `fit`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from genrec.data.dataset import Dataset, EvalSet
from genrec.evaluation import evaluate
from genrec.models.base import (
    Fitting,
    MeasuresCompute,
    Phase,
    Recommender,
    StepContext,
    Trainable,
    Tunable,
)
from genrec.models.optim import dense_grads
from genrec.training import distributed
from genrec.training.config import TrainConfig

log = logging.getLogger("genrec")
CHECKPOINT = "last.pt"
LOG_EVERY_S = 30.0


class TrainingInterrupted(Exception):
    """Ctrl-C during training; `checkpoint` holds the last completed epoch (None if there is none),
    `epoch` counts the epochs in it (over all phases)."""

    def __init__(self, checkpoint: Path | None, epoch: int) -> None:
        super().__init__(f"training interrupted after {epoch} completed epoch(s)")
        self.checkpoint, self.epoch = checkpoint, epoch


class Callback:
    """Hooks for loggers; every method is optional."""

    def on_epoch_end(self, model: Recommender, phase: Phase, row: dict[str, float]) -> None:
        pass

    def on_fit_end(self, model: Recommender, info: dict[str, Any]) -> None:
        pass


def fit(
    model: Recommender,
    data: Dataset,
    config: TrainConfig | None = None,
    *,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: tuple[Callback, ...] = (),
    progress: bool | None = None,
    exclude_seen: bool = True,
) -> Recommender:
    """Fit any registered model on `data` (train; early stopping and searches on `data.valid` only).

    `exclude_seen`: validation ranks without the user's history, as the final evaluation does; False
    for runs that recommend items already seen (repeat consumption, `--include-seen`), so early stopping
    and searches choose under the protocol the run is measured and served with."""
    config = config or TrainConfig()
    config.validate()
    if resume and not isinstance(model, Trainable):
        raise ValueError(f"model {model.name!r} trains in one step; there is no checkpoint to resume from")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads or auto_threads())
    try:
        seed_everything(config.seed)
        t0 = time.time()
        if isinstance(model, Trainable):
            ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
            _Loop(model, data, config, ckpt, callbacks, progress, exclude_seen).run(resume)
        elif isinstance(model, Tunable):
            search(model, data, config, progress, exclude_seen)
        else:
            model.fit(data)
        model.fit_info_.setdefault("train_seconds", time.time() - t0)
        if isinstance(model, MeasuresCompute):
            model.fit_info_.update(model.compute_profile(data))
        model.fit_info_["threads"] = torch.get_num_threads()
        model.fit_info_["seed"] = config.seed
        for cb in callbacks:
            cb.on_fit_end(model, model.fit_info_)
        return model
    finally:
        torch.set_num_threads(old_threads)


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def auto_threads() -> int:
    """All cores (shared by the processes of a torchrun launch on this machine), or 1 when the machine
    is already busy: with other processes on the cores, OpenMP threads of small ops spin-wait on each
    other (measured: 2 threads 16x slower than 1 at load 10)."""
    cores = max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    return 1 if os.getloadavg()[0] >= (os.cpu_count() or 1) else cores


def pick_device(config: TrainConfig) -> torch.device:
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but no CUDA GPU is visible; use device=auto or cpu")
    return torch.device("cuda" if config.device != "cpu" and torch.cuda.is_available() else "cpu")


def default_metric(data: Dataset) -> str:
    # held-out users have many targets each: the Mult-VAE paper's selection metric; one target: NDCG@10
    return "ndcg@100" if data.protocol == "users" else "ndcg@10"


def validation_users(data: Dataset, n: int, seed: int) -> EvalSet:
    """`data.valid`, or a fixed random sample of `n` of its users (n = 0: all)."""
    if n <= 0 or len(data.valid) <= n:
        return data.valid
    rows = np.sort(np.random.default_rng([seed, 7]).choice(len(data.valid), n, replace=False))
    return EvalSet(data.valid.history.take(rows), data.valid.targets.take(rows))


def validate_shared(
    model: Recommender, evalset: EvalSet, metric: str, batch_size: int = 1024, exclude_seen: bool = True
) -> float:
    """`validate`, with the users split across the processes of a distributed run (the same value on
    every process: the mean over all users)."""
    if not distributed.active():
        return validate(model, evalset, metric, batch_size, exclude_seen)
    rank, n = distributed.world()
    rows = np.arange(rank, len(evalset), n)
    part = EvalSet(evalset.history.take(rows), evalset.targets.take(rows))
    local = validate(model, part, metric, batch_size, exclude_seen) * len(rows) if len(rows) else 0.0
    total, count = distributed.all_sum([local, float(len(rows))])
    return total / max(count, 1.0)


def validate(
    model: Recommender, evalset: EvalSet, metric: str, batch_size: int = 1024, exclude_seen: bool = True
) -> float:
    k = int(metric.split("@")[1])
    return float(
        evaluate(model.score, evalset, ks=(k,), exclude_seen=exclude_seen, batch_size=batch_size)[metric]
    )


# --- search on validation (closed-form models with a tuned setting) -----------------------------------
def search(
    model: Tunable,
    data: Dataset,
    config: TrainConfig,
    progress: bool | None = None,
    exclude_seen: bool = True,
) -> None:
    """Keep the candidate with the best validation metric. The curve of a regularisation strength is
    unimodal, so the search stops at the first candidate 2% below the best."""
    metric = default_metric(data)
    tried: dict[str, float] = {}
    best: tuple[float, dict, dict] | None = None
    bar = tqdm(
        desc=f"{model.name} search (valid {metric})",
        unit="candidate",
        leave=False,
        disable=progress is False or None,
        file=sys.stderr,
    )
    candidates = model.candidates(data)
    for setting in candidates:
        value = validate(model, data.valid, metric, exclude_seen=exclude_seen)
        tried[_label(setting)] = value
        bar.update()
        bar.set_postfix(**setting, **{metric: f"{value:.4f}"})
        log.info("%s %s: valid %s %.4f", model.name, _label(setting), metric, value)
        if best is None or value > best[0]:
            best = (value, setting, model._state())
        elif value < best[0] * 0.98:
            break
    bar.close()
    if best is None:
        raise ValueError(f"{model.name}: no candidate settings to try")
    if len(tried) > 1:
        model._load_state(best[2])
    model.fit_info_.update(
        search={"metric": metric, "tried": tried}, best_valid=best[0], valid_metric=metric, **best[1]
    )


def _label(setting: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in setting.items())


# --- the loop for iterative models ---------------------------------------------------------------------
class _Loop:
    def __init__(
        self,
        model: Trainable,
        data: Dataset,
        config: TrainConfig,
        ckpt: Path | None,
        callbacks: tuple[Callback, ...],
        progress: bool | None,
        exclude_seen: bool = True,
    ) -> None:
        self.model, self.data, self.config, self.ckpt = model, data, config, ckpt
        self.exclude_seen = exclude_seen
        self.callbacks, self.progress = callbacks, progress
        self.device = pick_device(config)
        distributed.init(self.device)  # a torchrun launch: join its process group (no-op otherwise)
        self.rank, self.world = distributed.world() if distributed.active() else (0, 1)
        self.main = self.rank == 0  # logs, progress and checkpoints
        if not self.main:
            self.progress = False
        on_gpu = self.device.type == "cuda"
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if config.amp and on_gpu
            else contextlib.nullcontext()
        )
        self.compile = config.compile == "on" or (config.compile == "auto" and on_gpu)
        self.budget_s = config.max_minutes * 60
        # everything that must survive a restart; module and optimiser states are saved beside it
        self.state: dict[str, Any] = {
            "phase": 0,
            "epoch": 0,
            "step": 0,
            "elapsed": 0.0,
            "rows": [],
            "best": None,
            "best_epoch": 0,
            "bad": 0,
            "drops": 0,
            "done": [],
            "from_epoch": 0,
        }
        self.best_modules: dict[str, dict] | None = None
        self.best_full: dict[str, Any] | None = None  # for a next phase that continues from the best epoch
        self.finished_modules: list[dict[str, dict]] = []
        self.average: WeightAverage | None = None  # the current phase's, when it averages weights
        self.saved_epochs = 0  # epochs (over all phases) in the checkpoint on disk

    # --- the run ----------------------------------------------------------------------------------------
    def run(self, resume: bool) -> None:
        model, data = self.model, self.data
        phases = model.prepare_training(data)
        if not phases:
            raise ValueError(f"{model.name}: no training phases")
        saved = self._load_checkpoint() if resume else None
        if saved is not None:
            self.state = saved["loop"]
            # replay the finished phases' outcomes (e.g. tiger's codes from its trained RQ-VAE)
            for p, done in enumerate(self.state["done"]):
                fitting = model.setup_phase(phases[p], data, self.device)
                _load_modules(fitting, saved["finished_modules"][p])
                model.end_phase(phases[p], data, done["best_row"])
            self.finished_modules = saved["finished_modules"]
            where = (
                f"epoch {self.state['epoch']} of phase {phases[self.state['phase']].name}"
                if self.state["phase"] < len(phases)
                else "the end of training"
            )
            log.info("resumed from %s after %s", self.ckpt, where)
        t_start = time.time() - self.state["elapsed"]
        try:
            while self.state["phase"] < len(phases):
                p = self.state["phase"]
                phase = phases[p]
                inside = saved is not None and saved["current"] is not None  # resumed inside this phase
                if saved is not None and not inside:  # resumed at its start: build its nets as a run would
                    torch.set_rng_state(saved["torch_rng"].cpu())
                fitting = model.setup_phase(phase, data, self.device)
                if inside:
                    _restore_fitting(fitting, saved["current"])
                    torch.set_rng_state(saved["torch_rng"].cpu())
                elif phase.continue_from_best:
                    self._continue_from_best(fitting)
                if distributed.active():
                    distributed.broadcast_parameters(fitting.modules)
                self.average = WeightAverage(fitting, phase.average_decay) if phase.average_decay else None
                if self.average is not None and inside:
                    self.average.load_state_dict(saved["current"]["average"])
                saved = None
                if self.compile:
                    # auto: a network the compiler cannot handle runs eagerly (with a warning) instead of
                    # failing a run the user never asked to compile
                    torch._dynamo.config.suppress_errors = self.config.compile == "auto"
                    for m in fitting.modules.values():  # in place: state_dict keys stay the same
                        m.compile(dynamic=True)
                keep_full = p + 1 < len(phases) and phases[p + 1].continue_from_best
                self._run_phase(phase, fitting, t_start, keep_full, len(phases) > 1)
        except KeyboardInterrupt:
            ckpt = self.ckpt if self.ckpt is not None and self.ckpt.exists() else None
            raise TrainingInterrupted(ckpt, self.saved_epochs) from None
        self._summarise(time.time() - t_start)

    def _run_phase(
        self, phase: Phase, fitting: Fitting, t_start: float, keep_full: bool, named: bool
    ) -> None:
        model, st = self.model, self.state
        metric = phase.metric or default_metric(self.data)
        valid = validation_users(self.data, phase.eval_users, self.config.seed) if phase.patience else None
        stopped_by = "epochs"
        label = f"{model.name} {phase.name}" if named else model.name
        while st["epoch"] < phase.epochs:
            if phase.patience and st["bad"] >= phase.patience:
                stopped_by = "early stopping"
                break
            over = bool(self.budget_s) and time.time() - t_start > self.budget_s and st["epoch"] > 0
            if distributed.active():  # every process stops at the same epoch, or a collective hangs
                over = distributed.all_sum([float(over)])[0] > 0
            if over:
                stopped_by = "time budget"
                break
            epoch = st["epoch"] + 1
            row = self._epoch(phase, fitting, epoch, label)
            if valid is not None and (epoch % phase.eval_every == 0 or epoch == phase.epochs):
                for m in fitting.modules.values():
                    m.eval()
                with self._averaged():  # the snapshots below are of the weights that were validated
                    row["valid_" + metric] = value = validate_shared(
                        model, valid, metric, phase.eval_batch, self.exclude_seen
                    )
                    improved = st["best"] is None or value > st["best"]
                    if improved:
                        st.update(best=value, best_epoch=epoch, bad=0)
                        self.best_modules = _snapshot_modules(fitting)
                        if keep_full:
                            self.best_full = self._full_state(fitting)
                if not improved:
                    st["bad"] += 1
                    if st.get("drops", 0) < phase.lr_drops and st["bad"] >= phase.patience:
                        self._drop_lr(phase, fitting)
                        row["lr_drop"] = st["drops"]
            st["rows"].append(row)
            st["epoch"] = epoch
            st["elapsed"] = time.time() - t_start
            self._save_checkpoint(fitting)
            self._report(label, phase, row, metric)
            for cb in self.callbacks:
                cb.on_epoch_end(model, phase, row)
        if self.best_modules is not None:
            _load_modules(fitting, self.best_modules)
        elif self.average is not None:  # no validation: keep the average of the last updates
            self.average.swap()
        self.average = None
        for m in fitting.modules.values():
            m.eval()
        rows = st["rows"]
        best_row = next((r for r in rows if r["epoch"] == st["best_epoch"]), rows[-1] if rows else {})
        st["done"].append(
            {
                "name": phase.name,
                "metric": metric if valid is not None else None,
                "best_epoch": st["best_epoch"],
                "best_valid": st["best"],
                "stopped_by": stopped_by,
                "epochs": st["epoch"],
                "from_epoch": st["from_epoch"],
                "curve": rows,
                "best_row": best_row,
            }
        )
        model.end_phase(phase, self.data, best_row)
        self.finished_modules.append(_snapshot_modules(fitting))
        st.update(
            phase=st["phase"] + 1, epoch=0, rows=[], best=None, best_epoch=0, bad=0, drops=0, from_epoch=0
        )
        self.best_modules = None
        self._save_checkpoint(None)

    def _drop_lr(self, phase: Phase, fitting: Fitting) -> None:
        """Validation has stalled: go back to the best epoch's weights and take smaller steps from there
        (the schedule keeps its shape, every learning rate is scaled). The optimiser moments are kept."""
        st = self.state
        if self.best_modules is not None:
            _load_modules(fitting, self.best_modules)
        if self.average is not None:  # the average restarts from the weights gone back to
            self.average.reset()
        f = phase.lr_drop_factor
        for name, opt in fitting.optimizers.items():
            sched = fitting.schedulers.get(name)
            if sched is not None:
                sched.base_lrs = [b * f for b in sched.base_lrs]
            for g in opt.param_groups:
                g["lr"] *= f
                if "initial_lr" in g:
                    g["initial_lr"] *= f
        st.update(drops=st.get("drops", 0) + 1, bad=0)
        log.info("validation stalled: back to epoch %d, learning rate x%g", st["best_epoch"], f)

    def _epoch(self, phase: Phase, fitting: Fitting, epoch: int, label: str) -> dict[str, float]:
        model, st = self.model, self.state
        for m in fitting.modules.values():
            m.train()
        rng = np.random.default_rng([self.config.seed, st["phase"], epoch])  # order: (seed, phase, epoch)
        batches = model.batches(phase, self.data, rng)  # the same order on every process
        if distributed.active():
            batches = distributed.Shard(batches, self.rank, self.world)
        sums: dict[str, float] = {}
        n_examples, t0, last_log = 0, time.time(), time.time()
        ctx = StepContext(step=st["step"], device=self.device, update=self._updater(fitting))
        bar = tqdm(
            batches,
            desc=f"{label} {epoch}/{phase.epochs}",
            unit="batch",
            leave=False,
            disable=None if self.progress is None else not self.progress,
            file=sys.stderr,
        )
        for i, batch in enumerate(bar, 1):
            ctx.step = st["step"]
            with self.autocast:
                out = model.train_step(batch, ctx)
            st["step"] += self.world  # steps count batches: N processes take N per update
            n_examples += int(out.get("n", 0))
            for k, v in out.items():
                if k != "n":
                    sums[k] = sums.get(k, 0.0) + float(v)
            losses = {k: f"{v / i:.4f}" for k, v in sums.items() if k.endswith("loss")}
            if i % 10 == 0 or i == len(batches):
                bar.set_postfix(losses)
            if self.main and time.time() - last_log >= LOG_EVERY_S:  # a plain line for train.log
                last_log = time.time()
                rate = i / (last_log - t0)
                log.info(
                    "%s epoch %d/%d: batch %d/%d, %s, %.1f batches/s, epoch ETA %.0fs",
                    label,
                    epoch,
                    phase.epochs,
                    i,
                    len(batches),
                    ", ".join(f"{k} {v}" for k, v in losses.items()),
                    rate,
                    (len(batches) - i) / max(rate, 1e-9),
                )
        seconds = time.time() - t0
        n = max(len(batches), 1)
        if distributed.active():  # losses averaged over the processes, examples summed
            keys = sorted(sums)
            *totals, n_examples = distributed.all_sum([*(sums[k] for k in keys), float(n_examples)])
            sums, n = dict(zip(keys, totals)), n * self.world
        row = {"epoch": epoch, "seconds": seconds, **{k: v / n for k, v in sums.items()}}
        if fitting.optimizers:  # the learning rate at the epoch's end (schedules and plateau drops)
            row["lr"] = float(next(iter(fitting.optimizers.values())).param_groups[0]["lr"])
        if n_examples:
            row["examples_per_s"] = n_examples / max(seconds, 1e-9)
        for k, v in model.end_epoch(phase).items():
            row[k] = float(v)
        # end_epoch may change weights from what one process saw (tiger's dead codes): rank 0's wins
        if distributed.active() and not distributed.in_sync(fitting.modules):
            distributed.broadcast_parameters(fitting.modules)
            self.state["resyncs"] = self.state.get("resyncs", 0) + 1
        if not all(math.isfinite(v) for k, v in row.items() if k.endswith("loss")):
            raise FloatingPointError(
                f"{model.name}: non-finite loss in epoch {epoch} ({_fmt(row)}); "
                "lower the learning rate (--set lr=...)"
            )
        return row

    def _updater(self, fitting: Fitting):
        def update(loss: torch.Tensor, optimizer: str = "main") -> None:
            opt = fitting.optimizers[optimizer]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if distributed.active():
                distributed.average_gradients([p for g in opt.param_groups for p in g["params"]])
            if fitting.grad_clip:
                # sparse rows (a huge item table) are left out: row-wise AdaGrad normalises each row
                params = dense_grads(p for g in opt.param_groups for p in g["params"])
                torch.nn.utils.clip_grad_norm_(params, fitting.grad_clip)
            opt.step()
            if self.average is not None:
                self.average.update()
            sched = fitting.schedulers.get(optimizer)
            if sched is not None:  # a schedule counts the model's batches, and N processes take N
                for _ in range(self.world):
                    sched.step()

        return update

    def _report(self, label: str, phase: Phase, row: dict[str, float], metric: str) -> None:
        if not self.main:
            return
        st = self.state
        msg = f"{label} epoch {row['epoch']}/{phase.epochs}: {_fmt(row)}"
        if "valid_" + metric in row:
            msg += f" (best {st['best']:.4f} @ {st['best_epoch']})"
        if self.budget_s:
            msg += f", {st['elapsed'] / 60:.1f} of {self.budget_s / 60:g} min"
        log.info(msg)
        if self.progress is not False:
            tqdm.write(msg, file=sys.stderr)

    def _summarise(self, seconds: float) -> None:
        done = self.state["done"]
        last = done[-1]
        info = self.model.fit_info_
        info.update(
            stopped_by=last["stopped_by"],
            epochs=sum(d["epochs"] - d["from_epoch"] for d in done),
            best_epoch=last["best_epoch"],
            best_valid=last["best_valid"],
            valid_metric=last["metric"],
            train_seconds=seconds,
            seconds_per_epoch=float(np.mean([r["seconds"] for r in last["curve"]])) if last["curve"] else 0.0,
            device=str(self.device),
            processes=self.world,
            resyncs=self.state.get("resyncs", 0),  # epochs that ended with different weights per process
            phases=[{k: v for k, v in d.items() if k != "best_row"} for d in done],
        )

    @contextlib.contextmanager
    def _averaged(self):
        """The averaged weights in the modules for the duration (a no-op without averaging)."""
        if self.average is None:
            yield
            return
        self.average.swap()
        try:
            yield
        finally:
            self.average.swap()

    # --- checkpoints ----------------------------------------------------------------------------------
    def _full_state(self, fitting: Fitting) -> dict[str, Any]:
        return copy.deepcopy(
            {
                "modules": {k: m.state_dict() for k, m in fitting.modules.items()},
                "optimizers": {k: o.state_dict() for k, o in fitting.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in fitting.schedulers.items()},
                "torch_rng": torch.get_rng_state(),
                "step": self.state["step"],
                "rows": list(self.state["rows"]),
                "epoch": self.state["epoch"] + 1,
            }
        )

    def _continue_from_best(self, fitting: Fitting) -> None:
        full = self.best_full
        if full is None:
            raise RuntimeError("continue_from_best: the previous phase kept no best state")
        _restore_fitting(fitting, full)
        torch.set_rng_state(full["torch_rng"])
        prev = self.state["done"][-1]
        self.state.update(
            step=full["step"],
            epoch=prev["best_epoch"],
            best=prev["best_valid"],
            best_epoch=prev["best_epoch"],
            bad=0,
            from_epoch=prev["best_epoch"],
            rows=[r for r in prev["curve"] if r["epoch"] <= prev["best_epoch"]],
        )
        self.best_modules = _snapshot_modules(fitting)
        self.best_full = None

    def _save_checkpoint(self, fitting: Fitting | None) -> None:
        if self.ckpt is None or not self.main:  # one writer; the states are the same on every process
            return
        payload = {
            "loop": self.state,
            "config": self._identity(),
            "current": None
            if fitting is None
            else {
                "modules": {k: m.state_dict() for k, m in fitting.modules.items()},
                "optimizers": {k: o.state_dict() for k, o in fitting.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in fitting.schedulers.items()},
                "average": None if self.average is None else self.average.state_dict(),
            },
            "best_modules": self.best_modules,
            "best_full": self.best_full,
            "finished_modules": self.finished_modules,
            "torch_rng": torch.get_rng_state(),
        }
        self.ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.ckpt.with_suffix(".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, self.ckpt)  # atomic: an interrupted save never leaves a broken checkpoint
        st = self.state
        done = sum(d["epochs"] - d["from_epoch"] for d in st["done"])
        self.saved_epochs = done + st["epoch"] - st["from_epoch"]

    def _identity(self) -> dict[str, Any]:
        cfg = self.model.config
        return {
            "model": self.model.name,
            "config": dataclasses.asdict(cfg),
            "n_items": self.data.n_items,
            "seed": self.config.seed,
        }

    def _load_checkpoint(self) -> dict[str, Any]:
        if self.ckpt is None or not self.ckpt.exists():
            raise FileNotFoundError(f"resume: no checkpoint at {self.ckpt}; train without --resume first")
        saved = torch.load(self.ckpt, map_location=self.device, weights_only=True)
        if saved["config"] != self._identity():
            raise ValueError(
                f"resume: {self.ckpt} was written with different model settings or data; "
                "resume with the same settings or train a new run"
            )
        self.best_modules, self.best_full = saved["best_modules"], saved["best_full"]
        return saved


class WeightAverage:
    """An exponential moving average of a phase's trained parameters (Polyak averaging). The decay
    ramps up as min(decay, (1 + n) / (10 + n)) over the first updates, so the average is not held back
    by the weights it started from."""

    def __init__(self, fitting: Fitting, decay: float) -> None:
        seen: set[int] = set()
        self.params = [
            p
            for m in fitting.modules.values()
            for p in m.parameters()
            if p.requires_grad and not (id(p) in seen or seen.add(id(p)))
        ]
        self.decay = decay
        self.reset()

    def reset(self) -> None:
        """Start again from the current weights."""
        self.shadow = [p.detach().clone() for p in self.params]
        self.n = 0

    @torch.no_grad()
    def update(self) -> None:
        self.n += 1
        d = min(self.decay, (1 + self.n) / (10 + self.n))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - d)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the live weights and the average, in place (optimisers keep their parameters)."""
        for p, s in zip(self.params, self.shadow):
            live = p.detach().clone()
            p.copy_(s)
            s.copy_(live)

    def state_dict(self) -> dict[str, Any]:
        return {"shadow": self.shadow, "n": self.n}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for s, saved in zip(self.shadow, state["shadow"], strict=True):
            s.copy_(saved)
        self.n = state["n"]


def _snapshot_modules(fitting: Fitting) -> dict[str, dict]:
    return {k: {n: t.detach().clone() for n, t in m.state_dict().items()} for k, m in fitting.modules.items()}


def _load_modules(fitting: Fitting, states: dict[str, dict]) -> None:
    for k, m in fitting.modules.items():
        m.load_state_dict(states[k])


def _restore_fitting(fitting: Fitting, state: dict[str, Any]) -> None:
    _load_modules(fitting, state["modules"])
    for k, o in fitting.optimizers.items():
        o.load_state_dict(state["optimizers"][k])
    for k, s in fitting.schedulers.items():
        s.load_state_dict(state["schedulers"][k])


def _fmt(row: dict[str, float]) -> str:
    """A log row as plain numbers: 'loss 5.1234, valid ndcg@10 0.1234, 12.3s'."""
    parts = [
        f"{k.replace('_', ' ')} {v:.4f}" if k != "lr" else f"lr {v:.3g}"
        for k, v in row.items()
        if k not in ("epoch", "seconds", "examples_per_s", "lr_drop")
    ]
    if "lr_drop" in row:
        parts.append(f"stalled: back to the best epoch, lr drop {row['lr_drop']}")
    if "examples_per_s" in row:
        parts.append(f"{row['examples_per_s']:,.0f} ex/s")
    parts.append(f"{row['seconds']:.1f}s")
    return ", ".join(parts)
