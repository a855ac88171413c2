"""Training curves to files a dashboard reads, through the loop's callback: `--log csv|tensorboard|mlflow`.

    RUN/logs/curves.csv          csv: one row per epoch (phase, epoch, and every value of the row)
    RUN/logs/tensorboard/        tensorboard: event files (`tensorboard --logdir RUN/logs/tensorboard`)
    RUN/logs/mlruns/             mlflow: a local file store (`mlflow ui --backend-store-uri RUN/logs/mlruns`)

Everything stays on local disk: no server is needed to write, only to look.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from genrec.models.base import Phase, Recommender
from genrec.training.loop import Callback

KINDS = ("none", "csv", "tensorboard", "mlflow")


def check_logger(kind: str) -> None:
    """Refuse an unknown kind, or one whose package is missing, before any work starts."""
    if kind not in KINDS:
        raise ValueError(f"log must be one of {', '.join(KINDS)}, got {kind!r}")
    needs = {"tensorboard": "tensorboard", "mlflow": "mlflow"}.get(kind)
    if needs is not None:
        try:
            __import__(needs)
        except ImportError:
            raise ValueError(f"--log {kind} needs the {needs} package: pip install {needs}") from None


def make_logger(kind: str, out: Path, run_name: str = "") -> Callback | None:
    check_logger(kind)
    if kind == "csv":
        return CsvLogger(out / "curves.csv")
    if kind == "tensorboard":
        return TensorBoardLogger(out / "tensorboard")
    if kind == "mlflow":
        return MlflowLogger(out / "mlruns", run_name)
    return None


class _Steps(Callback):
    """A running step over every phase's epochs, so multi-phase models (tiger) draw one x axis."""

    def __init__(self) -> None:
        self.step = 0

    def values(self, phase: Phase, row: dict[str, float]) -> dict[str, float]:
        self.step += 1
        return {f"{phase.name}/{k}": float(v) for k, v in row.items() if k != "epoch"}


class CsvLogger(Callback):
    def __init__(self, path: Path) -> None:
        self.path, self.fields = path, None
        path.parent.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, model: Recommender, phase: Phase, row: dict[str, float]) -> None:
        record = {"phase": phase.name, **{k: float(v) for k, v in row.items()}}
        if self.fields is None or not set(record) <= set(self.fields):
            self.fields = list(dict.fromkeys([*(self.fields or []), *record]))
            old = list(csv.DictReader(self.path.open())) if self.path.exists() else []
            with self.path.open("w", newline="") as f:  # a new column (a validation epoch): rewrite
                w = csv.DictWriter(f, self.fields)
                w.writeheader()
                w.writerows(old)
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.fields).writerow(record)


class TensorBoardLogger(_Steps):
    def __init__(self, logdir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        super().__init__()
        self.writer = SummaryWriter(str(logdir))

    def on_epoch_end(self, model: Recommender, phase: Phase, row: dict[str, float]) -> None:
        for tag, v in self.values(phase, row).items():
            self.writer.add_scalar(tag, v, self.step)
        self.writer.flush()

    def on_fit_end(self, model: Recommender, info: dict[str, Any]) -> None:
        self.writer.close()


class MlflowLogger(_Steps):
    def __init__(self, store: Path, run_name: str) -> None:
        import mlflow

        super().__init__()
        self.mlflow = mlflow
        mlflow.set_tracking_uri(store.resolve().as_uri())
        self.run = mlflow.start_run(run_name=run_name or None)

    def on_epoch_end(self, model: Recommender, phase: Phase, row: dict[str, float]) -> None:
        metrics = {k.replace("@", "_at_"): v for k, v in self.values(phase, row).items()}
        self.mlflow.log_metrics(metrics, step=self.step)

    def on_fit_end(self, model: Recommender, info: dict[str, Any]) -> None:
        self.mlflow.end_run()
