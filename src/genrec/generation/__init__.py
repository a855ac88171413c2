"""Generation: the one path from model scores to recommendation lists (top-k, beam search, sampling)
under business rules, for the CLI, the Python API and the server."""

from genrec.generation.api import Generator, records
from genrec.generation.constraints import Constraints
from genrec.generation.explanations import explain
from genrec.generation.search import (
    MAX_K,
    STRATEGIES,
    Slates,
    beam_search,
    check_strategy,
    generate,
    sample,
    top_k_slates,
    trie_beam,
)

__all__ = [
    "MAX_K",
    "STRATEGIES",
    "Constraints",
    "Generator",
    "Slates",
    "beam_search",
    "check_strategy",
    "explain",
    "generate",
    "records",
    "sample",
    "top_k_slates",
    "trie_beam",
]
