"""The SASRec/S3-Rec sequence format: `user item item ...`, one chronological line per user."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.data.readers._checks import fail
from genrec.data.types import DataError, RawData


@dataclass
class IntLines:
    """A file of `head value value ...` integer lines (blank lines skipped)."""

    heads: np.ndarray  # (n_lines,) int64, the first token of each line
    lengths: np.ndarray  # (n_lines,) int64, values per line
    values: np.ndarray  # (sum(lengths),) int64, all values in file order
    line_numbers: np.ndarray  # (n_lines,) int64, 1-based line number of each line in the file

    def value_line(self, k: int) -> int:
        """File line number of the k-th value."""
        row = int(np.searchsorted(np.cumsum(self.lengths), k, side="right"))
        return int(self.line_numbers[row])


def read_int_lines(path: Path, head: str = "user", value: str = "item") -> IntLines:
    """Parse `head value value ...` lines of non-negative integers; a bad token names file:line:field."""
    heads: list[str] = []
    values: list[str] = []
    lens: list[int] = []
    linenos: list[int] = []
    try:
        f = open(path, encoding="utf-8", errors="strict", newline="")
    except OSError as e:
        raise DataError(f"{path}: cannot open ({e.strerror})") from None
    with f:
        try:
            for lineno, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) < 2:
                    raise fail(
                        path,
                        lineno,
                        value,
                        f"{head} {parts[0]!r} has no {value}s (expected '{head} {value} {value} ...')",
                    )
                if not "".join(parts).isdigit():  # one check per line; find the culprit only on failure
                    for field, tok in ((head, parts[0]), *((value, t) for t in parts[1:])):
                        if not tok.isdigit():
                            raise fail(
                                path, lineno, field, f"expected a non-negative integer id, got {tok!r}"
                            )
                heads.append(parts[0])
                values.extend(parts[1:])
                lens.append(len(parts) - 1)
                linenos.append(lineno)
        except UnicodeDecodeError as e:
            raise fail(path, None, None, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not heads:
        raise DataError(f"{path}: no '{head} {value} {value} ...' lines in this file")
    return IntLines(
        np.array(heads, dtype=np.int64),
        np.array(lens, dtype=np.int64),
        np.array(values, dtype=np.int64),
        np.array(linenos, dtype=np.int64),
    )


def read_sequences(path: Path) -> RawData:
    if path.is_dir():
        raise DataError(f"{path}: format 'sequences' reads one file (e.g. Beauty.txt), not a folder")
    seq = read_int_lines(path)
    inter = pd.DataFrame({"user": np.repeat(seq.heads, seq.lengths), "item": seq.values})
    return RawData(path.stem, inter, None, [path])
