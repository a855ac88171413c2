"""Shared validation so every reader reports bad input as `file:line: field: problem`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from genrec.data.preprocess import DataError


def fail(path: Path, line: int | None, field: str | None, problem: str) -> DataError:
    where = f"{path}" + (f":{line}" if line is not None else "")
    what = f" field {field!r}:" if field else ""
    return DataError(f"{where}:{what} {problem}")


def data_line_numbers(path: Path, encoding: str, header_lines: int) -> np.ndarray:
    """1-based file line number of each non-blank data row (only used on the error path)."""
    with open(path, encoding=encoding, errors="replace", newline="") as f:
        text = f.read()
    lines = text.splitlines()
    return np.array([i + 1 for i, ln in enumerate(lines) if i >= header_lines and ln.strip()], dtype=np.int64)


def to_int(df: pd.DataFrame, col: str, path: Path, encoding: str, header_lines: int, field: str) -> pd.Series:
    """Column as int64, or a DataError naming the first bad row's line and field."""
    s = pd.to_numeric(df[col], errors="coerce")
    bad = s.isna() | (s != s.round())
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        line = int(data_line_numbers(path, encoding, header_lines)[row])
        raise fail(path, line, field, f"expected an integer, got {df[col].iloc[row]!r}")
    return s.astype(np.int64)


def to_float(df: pd.DataFrame, col: str, path: Path, encoding: str, header_lines: int,
             field: str) -> pd.Series:
    s = pd.to_numeric(df[col], errors="coerce")
    bad = s.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        line = int(data_line_numbers(path, encoding, header_lines)[row])
        raise fail(path, line, field, f"expected a number, got {df[col].iloc[row]!r}")
    return s.astype(np.float64)


def read_delimited(
    path: Path, sep: str, names: list[str], encoding: str, header: bool, required: list[str] | None = None
) -> pd.DataFrame:
    """All columns as strings; too many fields, or an empty `required` field, is a DataError with its line."""
    import csv
    import io

    with open(path, encoding=encoding, newline="") as f:
        text = f.read()
    if len(sep) > 1:  # e.g. MovieLens-1M '::' -> a single char the C parser handles fast
        text = text.replace(sep, "\x1f")
        sep = "\x1f"
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, names=names, header=0 if header else None, dtype=str,
                         keep_default_na=False, quoting=csv.QUOTE_NONE if sep != "," else csv.QUOTE_MINIMAL,
                         engine="c", on_bad_lines="error")
    except pd.errors.ParserError as e:
        raise fail(path, _line_from_parser(str(e)), None,
                   f"wrong number of fields (expected {len(names)}: {', '.join(names)}); {e}") from None
    # pandas fills the missing fields of a short row: report the first empty required field
    for col in required if required is not None else names:
        empty = df[col].isna() | (df[col] == "")
        if empty.any():
            row = int(np.flatnonzero(empty.to_numpy())[0])
            line = int(data_line_numbers(path, encoding, 1 if header else 0)[row])
            raise fail(path, line, col,
                       f"missing or empty (expected {len(names)} fields: {', '.join(names)})")
    return df


def _line_from_parser(msg: str) -> int | None:
    import re

    m = re.search(r"line (\d+)", msg)
    return int(m.group(1)) if m else None
