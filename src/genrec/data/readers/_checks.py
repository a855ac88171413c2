"""Shared validation so every reader reports bad input as `file:line: field: problem`."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.data.types import DataError


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


def to_float(
    df: pd.DataFrame, col: str, path: Path, encoding: str, header_lines: int, field: str
) -> pd.Series:
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
    quoting = csv.QUOTE_NONE if sep != "," else csv.QUOTE_MINIMAL
    try:
        # index_col=False + the warning as an error: a first row with an extra field must not silently
        # become an index column (pandas' default) and shift every field
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(
                io.StringIO(text),
                sep=sep,
                names=names,
                header=0 if header else None,
                dtype=str,
                keep_default_na=False,
                quoting=quoting,
                engine="c",
                on_bad_lines="error",
                index_col=False,
            )
    except (pd.errors.ParserError, pd.errors.ParserWarning) as e:
        line, n = first_bad_field_count(text, sep, len(names), quoting)
        raise fail(
            path,
            line,
            None,
            f"wrong number of fields: {n}, expected {len(names)} ({', '.join(names)})"
            if line
            else f"cannot parse ({e})",
        ) from None
    # pandas fills the missing fields of a short row: report the first empty required field
    for col in required if required is not None else names:
        empty = df[col].isna() | (df[col] == "")
        if empty.any():
            row = int(np.flatnonzero(empty.to_numpy())[0])
            line = int(data_line_numbers(path, encoding, 1 if header else 0)[row])
            raise fail(
                path, line, col, f"missing or empty (expected {len(names)} fields: {', '.join(names)})"
            )
    return df


def first_bad_field_count(text: str, sep: str, n_fields: int, quoting: int) -> tuple[int | None, int]:
    """(1-based line, field count) of the first non-blank row without `n_fields` fields (error path only)."""
    import csv
    import io

    reader = csv.reader(io.StringIO(text), delimiter=sep, quoting=quoting)
    for rec in reader:
        if rec and any(rec) and len(rec) != n_fields:
            return reader.line_num, len(rec)
    return None, 0
