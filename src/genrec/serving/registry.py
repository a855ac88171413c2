"""Model registry: every servable model is an immutable, versioned directory of a run.

RUN/versions/
  v0001/             bootstrapped from RUN/model + the run's dataset on first use
    model/           Recommender.save
    catalog.npz      raw user/item ids, titles, per-user histories the model serves from
    meta.json        version, parent, model name, training watermark (max event seq seen), metrics
  v0002/ ...         published by `genrec update`
  CURRENT            the name of the served version; replaced atomically (os.replace)
  SEQ, .lock         the last version number handed out, and the lock publishers take to pick the next:
                     names only grow, and a deleted version's name is never reused

A version is written under a temporary name and renamed into place, so a reader never sees a
half-written version; CURRENT only ever names a complete one.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genrec.data.dataset import Histories, erased_placeholder
from genrec.data.ids import IdMap
from genrec.models import Recommender
from genrec.training.runs import load_run


@dataclass
class Catalog:
    """The id spaces and histories a version serves. Raw ids <-> internal ids go through the dataset's
    `IdMap`s only (every id leaves as a string); 0 is padding."""

    item_raw: np.ndarray  # (n_items + 1,) str
    user_raw: np.ndarray  # (n_users + 1,) str
    histories: Histories  # row u = everything known about internal user u, chronological (+ timestamps)
    item_title: np.ndarray | None = None  # (n_items + 1,) str

    def __post_init__(self) -> None:
        self.item_ids = IdMap(self.item_raw, "item", "the served catalogue")
        self.user_ids = IdMap(self.user_raw, "user", "the served catalogue")
        self.item_raw, self.user_raw = self.item_ids.raw, self.user_ids.raw
        if self.item_title is not None:
            self.item_title = np.asarray(self.item_title).astype(str)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def title(self, i: int) -> str | None:
        return None if self._titles is None else self._titles[i]

    @functools.cached_property
    def _titles(self) -> list[str | None] | None:
        # a Python list: answering a request indexes it a few times per item, numpy is slower
        return None if self.item_title is None else [t or None for t in self.item_title.tolist()]

    @functools.cached_property
    def interactions(self) -> np.ndarray:
        """(n_items + 1,) number of users whose stored history contains each item."""
        h = self.histories
        users_per_item = np.zeros(self.n_items + 1, dtype=np.int64)
        pairs = np.unique(np.stack([h.row_ids(), h.items]), axis=1)
        np.add.at(users_per_item, pairs[1], 1)
        return users_per_item

    def without_users(self, users: np.ndarray) -> Catalog:
        """The catalogue with internal `users` under placeholder ids and with empty histories."""
        marks = [erased_placeholder(int(u)) for u in users]
        raw = self.user_raw.astype(f"<U{max([self.user_raw.dtype.itemsize // 4, *map(len, marks)])}")
        raw[np.asarray(users, dtype=np.int64)] = marks
        return Catalog(self.item_raw, raw, self.histories.emptied(users), self.item_title)

    def save(self, path: Path) -> None:
        h = self.histories
        arrays = {"item_raw": self.item_raw, "user_raw": self.user_raw, "indptr": h.indptr, "items": h.items}
        if h.timestamps is not None:
            arrays["timestamps"] = h.timestamps
        if self.item_title is not None:
            arrays["item_title"] = self.item_title
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @staticmethod
    def load(path: Path) -> Catalog:
        z = np.load(path, allow_pickle=False)
        return Catalog(
            z["item_raw"],
            z["user_raw"],
            Histories(z["indptr"], z["items"], z["timestamps"] if "timestamps" in z else None),
            z["item_title"] if "item_title" in z else None,
        )


@dataclass
class Version:
    name: str
    path: Path
    model: Recommender
    catalog: Catalog
    meta: dict[str, Any]

    @property
    def watermark(self) -> int:
        return int(self.meta.get("watermark", 0))

    @property
    def erased_through(self) -> int:
        """Every erasure with seq <= this was applied when this version was built (0: none were)."""
        return erased_through(self.meta)


class Registry:
    def __init__(self, run_dir: str | Path) -> None:
        self.run = Path(run_dir)
        self.root = self.run / "versions"
        self.pointer = self.root / "CURRENT"

    def versions(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and p.name.startswith("v") and (p / "meta.json").exists()
        )

    def current(self) -> str:
        if not self.pointer.exists():
            raise FileNotFoundError(
                f"{self.pointer}: no current version; run `genrec serve` or `genrec update` "
                "once to create v0001 from the run"
            )
        name = self.pointer.read_text().strip()
        if not (self.root / name / "meta.json").exists():
            raise FileNotFoundError(f"{self.pointer} names {name!r}, which is not a complete version")
        return name

    def ensure(self) -> str:
        """The current version; on a fresh run, create v0001 from RUN/model and the run's dataset."""
        if self.pointer.exists():
            return self.current()
        return self.publish_run()

    def publish_run(self) -> str:
        """Publish RUN/model with the run's dataset as a new version (the first, or after a retrain)."""
        run = load_run(self.run)
        ds = run.dataset
        users = np.arange(ds.n_users + 1, dtype=np.int64)
        hist = ds.full_history(users)  # all of train + valid + test targets: what serving should know
        catalog = Catalog(ds.item_raw, ds.user_raw, hist, ds.item_title)
        metrics_file = self.run / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        meta = {"source": "run", "metrics": metrics, "watermark": 0}
        return self.publish(run.model, catalog, meta, model_dir=self.run / "model")

    def publish(
        self,
        model: Recommender,
        catalog: Catalog,
        meta: dict[str, Any],
        model_dir: Path | None = None,
        make_current: bool = True,
    ) -> str:
        """Write a new version atomically and (by default) point CURRENT at it; returns its name."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{os.getpid()}-{uuid.uuid4().hex}"  # the pid: see _sweep
        tmp.mkdir()
        try:
            if model_dir is not None:  # a copy, not a link: a retrain rewrites RUN/model in place
                shutil.copytree(model_dir, tmp / "model")
            else:
                model.save(tmp / "model")
            catalog.save(tmp / "catalog.npz")
            with self.lock():  # one publisher at a time picks a name and renames into it
                self._sweep()
                name = self._next_name()
                meta = dict(
                    meta,
                    version=name,
                    model=model.name,
                    created_at=time.time(),
                    n_items=catalog.n_items,
                    n_users=catalog.n_users,
                )
                (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=float))
                _fsync_tree(tmp)
                os.rename(tmp, self.root / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if make_current:
            self.set_current(name)
        return name

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock over version naming (an flock: released by the kernel if the holder dies)."""
        with open(self.root / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _sweep(self) -> None:
        """Remove what publishers killed mid-write left behind (.tmp-PID-* of processes that are gone)."""
        for p in self.root.glob(".tmp-*"):
            pid = p.name.split("-")[1]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(p, ignore_errors=True)

    def _next_name(self) -> str:
        """One above every version number ever used: the highest on disk (complete or not) and the
        last one handed out (SEQ), so a deleted version's name is never reused. Call under `_lock`."""
        used = [int(p.name[1:]) for p in self.root.iterdir() if re.fullmatch(r"v\d+", p.name)]
        seq = self.root / "SEQ"
        last = int(seq.read_text()) if seq.exists() else 0
        n = max([last, *used]) + 1
        _write_atomic(seq, f"{n}\n")
        return f"v{n:04d}"

    def drop_unerased(self, last_erasure: int, keep: str) -> list[str]:
        """Delete every version but `keep` built before erasure `last_erasure` (it may still hold the
        erased users' histories and weights learnt from them); returns their names."""
        dropped = []
        with self.lock():
            for name in self.versions():
                if name != keep and erased_through(self.meta(name)) < last_erasure:
                    shutil.rmtree(self.root / name)
                    dropped.append(name)
        return dropped

    def set_current(self, name: str) -> None:
        if not (self.root / name / "meta.json").exists():
            raise FileNotFoundError(
                f"no version {name!r} under {self.root}; versions: {', '.join(self.versions())}"
            )
        _write_atomic(self.pointer, name + "\n")  # readers see the old name or the new one, never half

    def meta(self, name: str) -> dict[str, Any]:
        return json.loads((self.root / name / "meta.json").read_text())

    def load(self, name: str | None = None) -> Version:
        name = name or self.current()
        path = self.root / name
        model = Recommender.load(path / "model")
        return Version(name, path, model, Catalog.load(path / "catalog.npz"), self.meta(name))


def erased_through(meta: dict[str, Any]) -> int:
    """The last erasure seq a version was built with, from its meta.json (0: none)."""
    return int(meta.get("erased_through", 0))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}-{uuid.uuid4().hex}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_tree(path: Path) -> None:
    for p in path.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
