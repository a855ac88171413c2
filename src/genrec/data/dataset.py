"""Processed datasets: contiguous ids, chronological interactions, and evaluation splits.

Internal ids are contiguous integers starting at 1; 0 is reserved for padding in both the
user and the item space. People only ever see the dataset's own ids (`user_raw`, `item_raw`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from genrec.data.ids import IdMap

PAD = 0
ERASED = "\x00erased-"  # prefix of an erased user's placeholder id (no dataset id starts with NUL)


def erased_placeholder(u: int) -> str:
    """The id left in internal slot `u` once its user is erased."""
    return f"{ERASED}{u}"


@dataclass
class Histories:
    """A batch of user histories in CSR layout, each in chronological order.

    `users[b]` is the internal user index of row b, or 0 for an ad-hoc (unknown) user.
    Items of row b are `items[indptr[b]:indptr[b + 1]]`.
    """

    indptr: np.ndarray  # (B + 1,) int64
    items: np.ndarray  # (nnz,) int64, internal item ids >= 1
    timestamps: np.ndarray | None = None  # (nnz,) int64 unix seconds, or None
    users: np.ndarray | None = None  # (B,) int64
    ratings: np.ndarray | None = None  # (nnz,) float32 explicit rating of each interaction (NaN: unknown)
    # (B,) int64 unix seconds of the request each row is scored for; None: right after its last action
    request_ts: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.indptr = np.asarray(self.indptr, dtype=np.int64)
        self.items = np.asarray(self.items, dtype=np.int64)
        if self.timestamps is not None:
            self.timestamps = np.asarray(self.timestamps, dtype=np.int64)
        if self.ratings is not None:
            self.ratings = np.asarray(self.ratings, dtype=np.float32)
        if self.users is None:
            self.users = np.zeros(len(self.indptr) - 1, dtype=np.int64)
        self.users = np.asarray(self.users, dtype=np.int64)
        if self.request_ts is not None:
            self.request_ts = np.asarray(self.request_ts, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def row(self, b: int) -> np.ndarray:
        return self.items[self.indptr[b] : self.indptr[b + 1]]

    def row_timestamps(self, b: int) -> np.ndarray | None:
        return None if self.timestamps is None else self.timestamps[self.indptr[b] : self.indptr[b + 1]]

    def row_ids(self) -> np.ndarray:
        """Row index of every entry of `items` (the COO row vector)."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths)

    def take(self, rows: np.ndarray | slice) -> Histories:
        """A sub-batch of rows (vectorised gather of CSR rows)."""
        rows = np.arange(len(self))[rows] if isinstance(rows, slice) else np.asarray(rows, dtype=np.int64)
        starts, lens = self.indptr[rows], self.lengths[rows]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lens, out=indptr[1:])
        idx = np.repeat(starts - indptr[:-1], lens) + np.arange(indptr[-1])
        ts = self.timestamps[idx] if self.timestamps is not None else None
        ratings = self.ratings[idx] if self.ratings is not None else None
        request = self.request_ts[rows] if self.request_ts is not None else None
        return Histories(indptr, self.items[idx], ts, self.users[rows], ratings, request)

    def emptied(self, rows: np.ndarray) -> Histories:
        """The same rows with every entry of `rows` removed (their rows stay, empty)."""
        keep = ~np.isin(self.row_ids(), rows)
        indptr = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.row_ids()[keep], minlength=len(self)), out=indptr[1:])
        ts = self.timestamps[keep] if self.timestamps is not None else None
        ratings = self.ratings[keep] if self.ratings is not None else None
        return Histories(indptr, self.items[keep], ts, self.users, ratings, self.request_ts)

    def padded(self, max_len: int | None = None, left: bool = True) -> np.ndarray:
        """(B, L) item matrix, most recent `max_len` items, padded with 0 on the left by default."""
        lens = self.lengths
        L = int(lens.max(initial=1)) if max_len is None else max_len
        keep = np.minimum(lens, L)
        out = np.zeros((len(self), max(L, 1)), dtype=np.int64)
        rows = np.repeat(np.arange(len(self)), keep)
        # position inside the row among the kept (most recent) items
        pos = np.arange(keep.sum()) - np.repeat(np.cumsum(keep) - keep, keep)
        src = np.repeat(self.indptr[1:] - keep, keep) + pos
        cols = pos + (L - np.repeat(keep, keep) if left else 0)
        out[rows, cols] = self.items[src]
        return out

    @staticmethod
    def from_lists(
        seqs: list[list[int]] | list[np.ndarray],
        users: np.ndarray | None = None,
        timestamps: list[np.ndarray] | None = None,
    ) -> Histories:
        lens = np.array([len(s) for s in seqs], dtype=np.int64)
        indptr = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lens, out=indptr[1:])
        items = np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs]) if len(seqs) else np.zeros(0)
        ts = None
        if timestamps is not None:
            ts = np.concatenate([np.asarray(t, dtype=np.int64) for t in timestamps]) if len(seqs) else None
        return Histories(indptr, items, ts, users)


@dataclass
class EvalSet:
    """Who is evaluated, what the model may read (history) and what it must find (targets)."""

    history: Histories  # model input, one row per evaluated user
    targets: Histories  # held-out items per row (one for leave-one-out, many for fold-in)

    def __post_init__(self) -> None:
        # a row is scored at the time its user came back: its first held-out interaction, as a served
        # request is scored at its arrival. Which item comes next stays hidden; when it comes does not
        t = self.targets
        if self.history.request_ts is None and t.timestamps is not None and len(t):
            first = np.zeros(len(t), dtype=np.int64)
            has = t.lengths > 0
            first[has] = np.minimum.reduceat(t.timestamps, t.indptr[:-1][has])
            h = self.history
            if h.timestamps is not None:  # never before the last action read (a row without targets: at it)
                read = h.lengths > 0
                last = h.timestamps[h.indptr[1:][read] - 1]
                first[read] = np.where(has[read], np.maximum(first[read], last), last)
            self.history = replace(h, request_ts=first)

    def __len__(self) -> int:
        return len(self.history)


@dataclass
class Dataset:
    """A processed dataset with its split. Arrays are sorted by (user, time, file order)."""

    name: str
    user_raw: np.ndarray  # (n_users + 1,) dataset ids; index 0 is padding
    item_raw: np.ndarray  # (n_items + 1,)
    train: Histories  # per-user training sequences, rows indexed by internal user id (row 0 empty)
    valid: EvalSet
    test: EvalSet
    protocol: str
    item_title: np.ndarray | None = None  # (n_items + 1,) str
    item_text: np.ndarray | None = None  # (n_items + 1,) str: title + categories + brand + ...
    item_category: np.ndarray | None = None  # (n_items + 1,) str, first/main category
    manifest: dict = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.user_raw) - 1

    @property
    def n_items(self) -> int:
        return len(self.item_raw) - 1

    @property
    def item_popularity(self) -> np.ndarray:
        """Training interaction count per internal item id (index 0 = padding = 0)."""
        return np.bincount(self.train.items, minlength=self.n_items + 1)

    # --- id translation: people see raw ids only (genrec.data.ids) ---------------------------
    @property
    def user_ids(self) -> IdMap:
        if getattr(self, "_user_ids", None) is None or len(self._user_ids.raw) != len(self.user_raw):
            self._user_ids = IdMap(self.user_raw, "user", self.name)
        return self._user_ids

    @property
    def item_ids(self) -> IdMap:
        if getattr(self, "_item_ids", None) is None or len(self._item_ids.raw) != len(self.item_raw):
            self._item_ids = IdMap(self.item_raw, "item", self.name)
        return self._item_ids

    def full_history(self, users: np.ndarray) -> Histories:
        """Everything known about `users` (their test input plus test targets), for serving."""
        if not hasattr(self, "_test_row"):  # user -> row of the test set, built once
            row = np.full(self.n_users + 1, -1, dtype=np.int64)
            row[self.test.history.users] = np.arange(len(self.test))
            self._test_row = row
        users = np.asarray(users, dtype=np.int64)
        sources = (self.test.history, self.test.targets, self.train)
        rated = all(h.ratings is not None for h in sources)
        timed = all(h.timestamps is not None for h in sources)  # kept for time-aware models (HSTU)
        seqs, ratings, stamps = [], [], []
        for u in users:
            r = self._test_row[u]
            parts = [(self.test.history, r), (self.test.targets, r)] if r >= 0 else [(self.train, u)]
            seqs.append(np.concatenate([h.row(i) for h, i in parts]))
            if rated:  # kept for models that read ratings (HSTU side tokens)
                ratings.append(np.concatenate([h.ratings[h.indptr[i] : h.indptr[i + 1]] for h, i in parts]))
            if timed:
                stamps.append(np.concatenate([h.row_timestamps(i) for h, i in parts]))
        out = Histories.from_lists(seqs, users=users, timestamps=stamps if timed else None)
        if rated:
            out.ratings = np.concatenate(ratings) if ratings else np.zeros(0, dtype=np.float32)
        return out

    def without_users(self, users: np.ndarray) -> Dataset:
        """The dataset with no trace of internal `users`: their interactions go from every split and
        their id becomes a placeholder (the slot stays, so no other internal id moves)."""
        users = np.asarray(users, dtype=np.int64)
        marks = [erased_placeholder(int(u)) for u in users]
        raw = self.user_raw.astype(str)  # a placeholder is text, whatever type the ids had
        raw = raw.astype(f"<U{max([raw.dtype.itemsize // 4, *map(len, marks)])}")  # never truncate
        raw[users] = marks

        def drop(e: EvalSet) -> EvalSet:
            rows = np.flatnonzero(~np.isin(e.history.users, users))
            return EvalSet(e.history.take(rows), e.targets.take(rows))

        manifest = dict(self.manifest, erased_users=int(np.sum(np.char.startswith(raw, ERASED))))
        return replace(
            self,
            user_raw=raw,
            train=self.train.emptied(users),
            valid=drop(self.valid),
            test=drop(self.test),
            manifest=manifest,
        )

    # --- persistence -------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"user_raw": self.user_raw, "item_raw": self.item_raw}
        for prefix, h in _named_histories(self):
            arrays[f"{prefix}.indptr"] = h.indptr
            arrays[f"{prefix}.items"] = h.items
            arrays[f"{prefix}.users"] = h.users
            if h.timestamps is not None:
                arrays[f"{prefix}.timestamps"] = h.timestamps
            if h.ratings is not None:
                arrays[f"{prefix}.ratings"] = h.ratings
        for name in ("item_title", "item_text", "item_category"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        for key, arr in arrays.items():
            arr = np.asarray(arr)
            if arr.dtype == object:
                arr = arr.astype(str)
            np.save(path / f"{key}.npy", arr, allow_pickle=False)
        meta = dict(self.manifest, name=self.name, protocol=self.protocol)
        (path / "manifest.json").write_text(json.dumps(meta, indent=2, default=str))

    @staticmethod
    def load(path: Path, mmap_mode: str | None = None) -> Dataset:
        """`mmap_mode` ("r", or "c" for copy-on-write) maps the arrays instead of reading them."""
        path = Path(path)
        manifest = json.loads((path / "manifest.json").read_text())

        def arr(key: str) -> np.ndarray | None:
            f = path / f"{key}.npy"
            return np.load(f, mmap_mode=mmap_mode, allow_pickle=False) if f.exists() else None

        def hist(prefix: str) -> Histories:
            return Histories(
                arr(f"{prefix}.indptr"),
                arr(f"{prefix}.items"),
                arr(f"{prefix}.timestamps"),
                arr(f"{prefix}.users"),
                arr(f"{prefix}.ratings"),
            )

        return Dataset(
            name=manifest["name"],
            user_raw=arr("user_raw"),
            item_raw=arr("item_raw"),
            train=hist("train"),
            valid=EvalSet(hist("valid.history"), hist("valid.targets")),
            test=EvalSet(hist("test.history"), hist("test.targets")),
            protocol=manifest["protocol"],
            item_title=arr("item_title"),
            item_text=arr("item_text"),
            item_category=arr("item_category"),
            manifest=manifest,
        )


def _named_histories(ds: Dataset) -> list[tuple[str, Histories]]:
    return [
        ("train", ds.train),
        ("valid.history", ds.valid.history),
        ("valid.targets", ds.valid.targets),
        ("test.history", ds.test.history),
        ("test.targets", ds.test.targets),
    ]
