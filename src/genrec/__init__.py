"""genrec: generative recommendation, from raw logs to a served, self-improving recommender."""

__version__ = "0.1.0"
