from genrec.evaluation.metrics import evaluate, metrics_from_ranks, target_ranks

__all__ = ["evaluate", "metrics_from_ranks", "target_ranks"]
