"""Erased users off the disk: the run's dataset and every version's catalogue lose their ids and their
histories (the event store deletes their events itself, see `events.EventStore.erase_user`).

    scrub_run(run_dir, erasures)           # every erased user the files still hold (found by tag)
    scrub_run(run_dir, erasures, {"42"})   # after one DELETE: look for these ids only

A user's slot stays under a placeholder id with nothing in it, so no other internal id moves and every
model still loads. Files are replaced whole (a new file or folder, then a rename), so a reader sees the
old file or the new one, never half of each. What stays: weights trained on the user, until the next
`genrec update` retrains without them, and whatever lies outside the run (the source files and the
data cache they were read into).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from genrec.data.dataset import ERASED, Dataset
from genrec.serving.events import Erasures
from genrec.serving.registry import Catalog, Registry, erased_through


def erased_slots(
    user_raw: np.ndarray, erasures: Erasures, after: int, ids: Iterable[str] | None = None
) -> np.ndarray:
    """Internal ids in `user_raw` whose user was erased after seq `after` (the data these files hold for
    them predates that erasure). With `ids`, only those ids are looked for (no hashing of every user)."""
    raw = np.asarray(user_raw).astype(str)
    if ids is not None:
        slots = np.flatnonzero(np.isin(raw, list(ids)))
    elif len(erasures):  # tombstones hold tags, not ids: every live user is hashed
        slots = np.flatnonzero(~np.char.startswith(raw, ERASED))
    else:
        slots = np.zeros(0, dtype=np.int64)
    return np.asarray([u for u in slots.tolist() if u > 0 and erasures.get(raw[u]) > after], dtype=np.int64)


def scrub_run(
    run_dir: str | Path,
    erasures: Erasures,
    ids: Iterable[str] | None = None,
    version: str | None = None,
) -> dict[str, int]:
    """Remove erased users from RUN/dataset and from every version's catalogue (or from `version`'s
    only); returns how many users were removed per file. Holds the registry's lock, so no version is
    published or deleted meanwhile."""
    reg = Registry(run_dir)
    ids = None if ids is None else list(ids)
    done: dict[str, int] = {}
    reg.root.mkdir(parents=True, exist_ok=True)
    with reg.lock():
        _finish_dataset_swap(reg.run)
        data = reg.run / "dataset"
        if version is None and (data / "user_raw.npy").exists():
            raw = np.load(data / "user_raw.npy", allow_pickle=False)
            slots = erased_slots(raw, erasures, after=0, ids=ids)  # the run's data predates every erasure
            if len(slots):
                _replace_dataset(reg.run, Dataset.load(data).without_users(slots))
                done["dataset"] = len(slots)
        for name in reg.versions() if version is None else [version]:
            path = reg.root / name / "catalog.npz"
            if not path.exists():  # deleted meanwhile (a newer version without the erased replaced it)
                continue
            with np.load(path, allow_pickle=False) as z:
                raw = z["user_raw"]
            slots = erased_slots(raw, erasures, after=erased_through(reg.meta(name)), ids=ids)
            if len(slots):
                cat = Catalog.load(path)
                _replace_file(path, cat.without_users(slots).save)
                done[name] = len(slots)
    return done


def _replace_file(path: Path, write) -> None:  # noqa: ANN001 - write(Path) -> None
    tmp = path.with_name(f".{path.name}.scrub")
    write(tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _replace_dataset(run: Path, ds: Dataset) -> None:
    """Swap RUN/dataset for a scrubbed copy. The old folder's files may be hard links into the data
    cache: they are unlinked here, never written through."""
    new, old = run / ".dataset.scrub", run / ".dataset.old"
    shutil.rmtree(new, ignore_errors=True)
    ds.save(new)
    for p in new.iterdir():
        with open(p, "rb") as f:
            os.fsync(f.fileno())
    os.rename(run / "dataset", old)
    os.rename(new, run / "dataset")  # a crash between the renames is finished by _finish_dataset_swap
    shutil.rmtree(old)


def _finish_dataset_swap(run: Path) -> None:
    """Complete a dataset swap that a crash interrupted between its two renames."""
    new, old = run / ".dataset.scrub", run / ".dataset.old"
    if not (run / "dataset").exists() and (new / "manifest.json").exists():
        os.rename(new, run / "dataset")
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(new, ignore_errors=True)
