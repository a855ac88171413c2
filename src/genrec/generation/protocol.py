"""What a model offers so that generators can decode lists autoregressively with a KV cache.

Sequence models (SASRec, HSTU) implement `IncrementalModel`; beam search and sampling in
`genrec.generation` only talk to this protocol, so they never special-case a model.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from genrec.data.dataset import Histories


@runtime_checkable
class IncrementalModel(Protocol):
    def start(self, histories: Histories) -> tuple[torch.Tensor, Any]:
        """Encode each history once: next-item scores (B, n_items + 1) and a cache of the prefix."""
        ...

    def extend(self, cache: Any, items: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Append one item per row (`items`: (B,) internal ids) reusing the cache; return the
        next-item scores (B, n_items + 1) and the grown cache. Cost ~ one position, not the prefix."""
        ...

    def reorder(self, cache: Any, index: torch.Tensor) -> Any:
        """Cache rows for beam search: new row j is old row `index[j]` (rows may repeat)."""
        ...
