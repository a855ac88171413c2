"""Moved: the protocol is declared with the other model abilities in genrec.models.base."""

from genrec.models.base import IncrementalModel

__all__ = ["IncrementalModel"]
