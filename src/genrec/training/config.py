"""Settings of the training loop, shared by every model (`--set threads=1` works for any model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class TrainConfig:
    seed: int = 0  # one seed for weights, data order, dropout and validation sampling
    threads: int = 0  # torch CPU threads while fitting; 0 = all cores (1 if the machine is already busy)
    max_minutes: float = 0.0  # wall-clock budget over the whole fit, checked between epochs; 0 = none
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: a CUDA GPU when one is visible
    amp: bool = True  # bf16 autocast of training steps (GPU only)
    # torch.compile of the trained networks (dynamic shapes: windows vary in length). auto: on a GPU only,
    # where eager steps are bound by kernel launches (HSTU small on an H200: 19.8 s/epoch compiled
    # against 103.7 eager, same load); on a CPU compiled epochs are slower, not faster (HSTU base on
    # ml-1m-u2999: 154 s against 128 s eager for the second epoch, after 220 s against 131 s for the first)
    compile: Literal["auto", "on", "off"] = "auto"
    log: Literal["none", "csv", "tensorboard", "mlflow"] = "csv"  # curves for dashboards: RUN/logs/

    def validate(self) -> None:
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0 = all cores), got {self.threads}")
        if not self.max_minutes >= 0:
            raise ValueError(f"max_minutes must be >= 0 (0 = no budget), got {self.max_minutes}")
        if self.log not in ("none", "csv", "tensorboard", "mlflow"):
            raise ValueError(f"log must be one of none, csv, tensorboard, mlflow, got {self.log!r}")
        if self.compile not in ("auto", "on", "off"):
            raise ValueError(f"compile must be one of auto, on, off, got {self.compile!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be one of auto, cpu, cuda, got {self.device!r}")
