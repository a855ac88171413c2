"""The SASRec/S3-Rec sequence format: `user item item ...`, one chronological line per user."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from genrec.data.preprocess import DataError, RawData
from genrec.data.readers._checks import fail


def read_sequences(path: Path) -> RawData:
    if path.is_dir():
        raise DataError(f"{path}: format 'sequences' reads one file (e.g. Beauty.txt), not a folder")
    users: list[str] = []
    items: list[str] = []
    lens: list[int] = []
    with open(path, encoding="utf-8", errors="strict", newline="") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise fail(path, lineno, "items", f"user {parts[0]!r} has no items (expected 'user item item ...')")
            for field, tok in (("user", parts[0]), *(("item", t) for t in parts[1:])):
                if not tok.isdigit():
                    raise fail(path, lineno, field, f"expected a non-negative integer id, got {tok!r}")
            users.append(parts[0])
            items.extend(parts[1:])
            lens.append(len(parts) - 1)
    if not users:
        raise DataError(f"{path}: no sequences in this file")
    inter = pd.DataFrame({
        "user": np.repeat(np.array(users, dtype=np.int64), lens),
        "item": np.array(items, dtype=np.int64),
    })
    return RawData(path.stem, inter, None, [path])
