"""The one translation between the dataset's own ids and genrec's internal ids.

Internal ids are contiguous integers 1..n; 0 is padding. Raw ids are handled as strings everywhere a
person sees them (CLI, Python, HTTP): "42" and 42 name the same user, and every output writes "42".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


class UnknownId(KeyError):
    """A raw id that the id map does not hold; the message says which space and how to fix it."""

    def __str__(self) -> str:  # KeyError would print the repr of its argument
        return str(self.args[0]) if self.args else ""


class IdMap:
    """Raw ids (index 0 = padding) <-> internal ids 1..n.

    users = IdMap(ds.user_raw, "user", ds.name)
    users.index("42") -> 17        users.get("nobody") -> None       users.id(17) -> "42"
    """

    def __init__(self, raw: Sequence | np.ndarray, kind: str = "item", where: str = "") -> None:
        self.raw = np.asarray(raw).astype(str)  # (n + 1,), raw[0] is the padding slot
        self.kind, self.where = kind, where
        self._index = {v: i for i, v in enumerate(self.raw.tolist()) if i > 0}
        if len(self._index) != len(self.raw) - 1:
            raise ValueError(f"{kind} ids are not unique{self._in()}")

    def __len__(self) -> int:
        return len(self.raw) - 1

    def _in(self) -> str:
        return f" in {self.where}" if self.where else ""

    def get(self, raw: object) -> int | None:
        """Internal id of `raw`, or None when it is unknown."""
        return self._index.get(str(raw))

    def index(self, raw: object) -> int:
        """Internal id of `raw`; UnknownId naming the id when it is unknown."""
        i = self._index.get(str(raw))
        if i is None:
            raise UnknownId(f"unknown {self.kind} id {str(raw)!r}{self._in()}")
        return i

    def indices(self, raws: Iterable[object]) -> np.ndarray:
        """Internal ids of every raw id (int64); UnknownId on the first unknown one."""
        return np.fromiter((self.index(r) for r in raws), dtype=np.int64)

    def known(self, raws: Iterable[object]) -> tuple[np.ndarray, list[str]]:
        """(internal ids of the known raw ids, the unknown raw ids as strings), order kept."""
        found, unknown = [], []
        for r in raws:
            i = self._index.get(str(r))
            if i is None:
                unknown.append(str(r))
            else:
                found.append(i)
        return np.asarray(found, dtype=np.int64), unknown

    def id(self, i: int) -> str:
        """The raw id (string) of internal id `i`."""
        return self._ids[i]

    def ids(self, idx: Iterable[int]) -> list[str]:
        out = self._ids
        return [out[int(i)] for i in idx]

    @property
    def _ids(self) -> list[str]:
        # a Python list: answering a request indexes it a few times per item, numpy scalars are slower
        if not hasattr(self, "_list"):
            self._list = self.raw.tolist()
        return self._list

    def extend(self, new: Iterable[object]) -> IdMap:
        """A new map with `new` raw ids appended (ids already present are skipped; old ids never move)."""
        add = []
        seen = set(self._index)
        for r in new:
            s = str(r)
            if s not in seen:
                seen.add(s)
                add.append(s)
        return IdMap(
            np.concatenate([self.raw, np.asarray(add, dtype=str)]) if add else self.raw, self.kind, self.where
        )
