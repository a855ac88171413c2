"""Generation: models write recommendation lists (top-k, beam search, sampling) under business rules."""

from genrec.generation.api import Generator
from genrec.generation.constraints import Constraints
from genrec.generation.search import STRATEGIES, Slates, beam_search, generate, sample, top_k_slates

__all__ = ["STRATEGIES", "Constraints", "Generator", "Slates", "beam_search", "generate", "sample",
           "top_k_slates"]
