"""Training: the one loop every model is fitted through, run directories, typed settings."""

from genrec.training.config import TrainConfig
from genrec.training.loop import Callback, TrainingInterrupted, fit

__all__ = ["Callback", "TrainConfig", "TrainingInterrupted", "fit"]
