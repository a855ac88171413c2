"""Generic interaction tables: CSV / TSV / Parquet with a column mapping, plus an optional item table.

    genrec data prepare --data events.csv --columns user=uid,item=sku,timestamp=ts,rating=stars \\
        --items products.parquet --item-columns item=sku,title=name,categories=path

Columns not mapped are guessed from common names (userId, user_id, item_id, asin, timestamp, ...).
Timestamps may be unix seconds (int or float) or date/time strings (ISO 8601); ids may be strings or
integers. Without a header (`--no-header`) a mapping names 0-based column positions.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.data.readers._checks import data_line_numbers, fail
from genrec.data.types import DataError, RawData

INTERACTION_FIELDS = ("user", "item", "timestamp", "rating")
REQUIRED = ("user", "item")
ITEM_FIELDS = ("item", "title", "categories", "category", "brand", "price", "description")
# lower-cased header names tried when a field is not mapped explicitly
GUESSES: dict[str, tuple[str, ...]] = {
    "user": ("user", "user_id", "userid", "uid", "reviewerid", "customer_id", "visitorid", "session_id"),
    "item": (
        "item",
        "item_id",
        "itemid",
        "iid",
        "movieid",
        "movie_id",
        "asin",
        "product_id",
        "sku",
        "article_id",
    ),
    "timestamp": ("timestamp", "time", "ts", "unixreviewtime", "datetime", "date", "event_time", "t_dat"),
    "rating": ("rating", "overall", "score", "stars", "weight"),
    "title": ("title", "name", "movie_title", "product_name", "item_name"),
    "categories": ("categories", "genres", "genre", "category_path"),
    "category": ("category", "main_category", "main_cat"),
    "brand": ("brand", "manufacturer"),
    "price": ("price",),
    "description": ("description", "desc", "text"),
}


def parse_mapping(
    text: str | dict | None, allowed: tuple[str, ...], flag: str = "--columns"
) -> dict[str, str]:
    """`user=uid,item=iid` -> {"user": "uid", "item": "iid"}; unknown fields are a clear error."""
    if text is None:
        return {}
    pairs = (
        text.items()
        if isinstance(text, dict)
        else (p.split("=", 1) if "=" in p else (p, None) for p in text.split(",") if p.strip())
    )
    out = {}
    for k, v in pairs:
        k = k.strip()
        if v is None or not str(v).strip():
            raise DataError(f"{flag}: expected FIELD=COLUMN pairs like user=uid,item=iid, got {k!r}")
        if k not in allowed:
            raise DataError(f"{flag}: unknown field {k!r}; fields are {', '.join(allowed)}")
        out[k] = str(v).strip()
    return out


def _sep_for(path: Path, sep: str | None) -> str:
    if sep is not None:
        return {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(sep, sep)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".tsv", ".tab")):
        return "\t"
    with _open_text(path) as f:
        first = f.readline()
    return max(("\t", ",", ";", "|"), key=first.count) if any(c in first for c in "\t,;|") else ","


def _open_text(path: Path):
    import gzip

    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _first_bad_row(path: Path, sep: str, n_fields: int) -> tuple[int | None, int]:
    """(line, field count) of the first non-blank row whose field count differs (slow; error path only)."""
    with _open_text(path) as f:
        reader = csv.reader(f, delimiter=sep)
        for rec in reader:
            if rec and len(rec) != n_fields:
                return reader.line_num, len(rec)
    return None, 0


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def resolve_columns(
    path: Path,
    header: bool,
    prefer: dict[str, str],
    names: list[str],
    mapping: dict[str, str],
    fields: tuple[str, ...],
    required: tuple[str, ...],
) -> dict[str, str]:
    """field -> column name among `names`: explicit mapping first, else a guess from the header."""
    cols: dict[str, str] = {}
    lower = {n.lower().split(":")[0]: n for n in names}  # RecBole-style 'user_id:token' headers too
    for fld in fields:
        if fld in mapping:
            if mapping[fld] not in names:
                raise fail(
                    path,
                    1 if header else None,
                    mapping[fld],
                    f"column for {fld!r} is not in the {'header' if header else 'row'} "
                    f"(columns: {', '.join(names)})",
                )
            cols[fld] = mapping[fld]
        elif header:
            tries = (prefer[fld].lower(),) if fld in prefer else ()
            hit = next((lower[g] for g in tries + GUESSES.get(fld, ()) if g in lower), None)
            if hit is not None and hit not in cols.values():
                cols[fld] = hit
    missing = [f for f in required if f not in cols]
    if missing:
        raise fail(
            path,
            1 if header else None,
            missing[0],
            f"no column for {missing[0]!r} (columns: {', '.join(names)}); "
            f"map it, e.g. --columns {missing[0]}=COLUMN",
        )
    return cols


class _Table:
    """A table read with all wanted columns, and how to name a row (file:line for text, row N for parquet)."""

    def __init__(
        self,
        path: Path,
        sep: str | None,
        header: bool,
        mapping: dict[str, str],
        fields: tuple[str, ...],
        required: tuple[str, ...],
        prefer: dict[str, str] | None = None,
    ):
        self.path, self.header, self.prefer = path, header, prefer or {}
        if _is_parquet(path):
            import pyarrow.parquet as pq

            try:
                names = pq.read_schema(path).names
            except Exception as e:  # pyarrow raises several types for a corrupt file
                raise fail(path, None, None, f"not a readable Parquet file ({e})") from None
            self.cols = self._resolve(names, mapping, fields, required)
            self.df = pd.read_parquet(path, columns=list(dict.fromkeys(self.cols.values())))
            self.sep = None
            return
        self.sep = _sep_for(path, sep)
        with _open_text(path) as f:
            first = f.readline().rstrip("\r\n")
        if not first:
            raise DataError(f"{path}: empty file")
        head = next(csv.reader([first], delimiter=self.sep))
        names = head if header else [str(i) for i in range(len(head))]
        self.cols = self._resolve(names, mapping, fields, required)
        try:
            # every column is read (usecols would hide rows with too many fields); ids keep the C parser's
            # inference: int64 when every value is an integer, compact for big files
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                df = pd.read_csv(
                    path,
                    sep=self.sep,
                    header=0 if header else None,
                    index_col=False,
                    engine="c",
                    on_bad_lines="error",
                    keep_default_na=False,
                    na_values=[""],
                    low_memory=False,
                    encoding="utf-8",
                )
        except (pd.errors.ParserError, pd.errors.ParserWarning) as e:
            line, n = _first_bad_row(path, self.sep, len(names))
            problem = f"wrong number of fields: {n}, expected {len(names)} (separator {self.sep!r})"
            raise fail(path, line, None, problem if line else f"cannot parse ({e})") from None
        except UnicodeDecodeError as e:
            raise fail(path, None, None, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
        if not header:
            df.columns = names
        self.df = df[list(dict.fromkeys(self.cols.values()))]

    def _resolve(
        self, names: list[str], mapping: dict[str, str], fields: tuple[str, ...], required: tuple[str, ...]
    ) -> dict[str, str]:
        return resolve_columns(self.path, self.header, self.prefer, names, mapping, fields, required)

    def where(self, row: int) -> tuple[int | None, str]:
        """(line number, prefix) naming data row `row` (0-based)."""
        if self.sep is None:
            return None, f"row {row + 1}"
        lines = (
            data_line_numbers(self.path, "utf-8", 1 if self.header else 0)
            if not self.path.name.endswith(".gz")
            else np.arange(len(self.df)) + 1 + self.header
        )
        return int(lines[row]), ""

    def error(self, row: int, fld: str, problem: str) -> DataError:
        line, prefix = self.where(row)
        label = self.cols.get(fld, fld) if self.header else f"{fld} (column {self.cols.get(fld, '?')})"
        return fail(self.path, line, label, f"{prefix + ': ' if prefix else ''}{problem}")

    def ids(self, fld: str) -> np.ndarray:
        s = self.df[self.cols[fld]]
        bad = s.isna()
        if bad.any():
            raise self.error(int(np.flatnonzero(bad.to_numpy())[0]), fld, f"missing {fld} id")
        if pd.api.types.is_integer_dtype(s):
            return s.to_numpy(np.int64)
        if pd.api.types.is_float_dtype(s):  # ids like 12.0 from a float column
            frac = s != s.round()
            if frac.any():
                r = int(np.flatnonzero(frac.to_numpy())[0])
                raise self.error(r, fld, f"expected an id, got {s.iloc[r]!r}")
            return s.to_numpy(np.int64)
        return s.astype(str).str.strip().to_numpy(dtype=object)

    def numbers(self, fld: str) -> np.ndarray:
        s = self.df[self.cols[fld]]
        v = pd.to_numeric(s, errors="coerce")
        bad = v.isna()
        if bad.any():
            r = int(np.flatnonzero(bad.to_numpy())[0])
            raise self.error(r, fld, f"expected a number, got {s.iloc[r]!r}")
        return v.to_numpy(np.float64)

    def times(self) -> np.ndarray:
        """Unix seconds: numbers as they are (floored), else ISO-8601 date/time strings parsed."""
        s = self.df[self.cols["timestamp"]]
        if pd.api.types.is_numeric_dtype(s):
            bad = s.isna()
            if bad.any():
                raise self.error(int(np.flatnonzero(bad.to_numpy())[0]), "timestamp", "missing timestamp")
            if s.dtype.kind == "f":
                return np.floor(s.to_numpy(np.float64)).astype(np.int64)
            return s.to_numpy(np.int64)
        num = pd.to_numeric(s, errors="coerce")
        out = np.floor(num.to_numpy(np.float64, na_value=np.nan))
        text = num.isna().to_numpy()
        if text.any():  # the rest must be date/time strings
            dt = pd.to_datetime(s[text], errors="coerce", utc=True, format="ISO8601")
            bad = dt.isna().to_numpy()
            if bad.any():
                r = int(np.flatnonzero(text)[np.flatnonzero(bad)[0]])
                raise self.error(
                    r, "timestamp", f"expected unix seconds or an ISO date/time, got {s.iloc[r]!r}"
                )
            out[text] = ((dt - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.float64)
        return out.astype(np.int64)


def read_item_table(
    path: Path,
    mapping: dict[str, str] | str | None = None,
    sep: str | None = None,
    header: bool = True,
    item_column: str | None = None,
) -> pd.DataFrame:
    """Item metadata indexed by raw item id: title, categories, category, brand, price, description."""
    mapping = parse_mapping(mapping, ITEM_FIELDS, "--item-columns")
    prefer = {"item": item_column} if item_column else {}  # the interactions' item column name, if present
    t = _Table(path, sep, header, mapping, ITEM_FIELDS, ("item",), prefer)
    meta = pd.DataFrame({"item": t.ids("item")})
    for fld in ITEM_FIELDS[1:]:
        if fld in t.cols:
            col = t.df[t.cols[fld]]
            meta[fld] = pd.to_numeric(col, errors="coerce") if fld == "price" else col.fillna("").astype(str)
    dup = meta["item"].duplicated()
    if dup.any():
        raise t.error(
            int(np.flatnonzero(dup.to_numpy())[0]),
            "item",
            f"item {meta['item'][dup].iloc[0]!r} appears twice in the item table",
        )
    return meta.set_index("item")


def read_table(
    path: Path,
    columns: dict[str, str] | str | None = None,
    sep: str | None = None,
    header: bool = True,
    items: str | Path | None = None,
    item_columns: dict[str, str] | str | None = None,
) -> RawData:
    """Interactions from one CSV/TSV/Parquet file; `items` = optional item table (same formats)."""
    if path.is_dir():
        raise DataError(f"{path}: format 'table' reads one file (CSV, TSV or Parquet), not a folder")
    mapping = parse_mapping(columns, INTERACTION_FIELDS)
    t = _Table(path, sep, header, mapping, INTERACTION_FIELDS, REQUIRED)
    inter = pd.DataFrame({"user": t.ids("user"), "item": t.ids("item")})
    if "timestamp" in t.cols:
        inter["timestamp"] = t.times()
    if "rating" in t.cols:
        inter["rating"] = t.numbers("rating").astype(np.float32)
    item_col = t.cols["item"] if header else None
    del t
    sources = [path]
    meta = None
    if items is not None:
        items = Path(items)
        if not items.exists():
            raise DataError(f"{items}: no such item table (--items)")
        meta = read_item_table(items, item_columns, None, header, item_column=item_col)
        if meta.index.dtype != inter["item"].dtype and len(meta):
            # e.g. integer ids in one file and zero-padded strings in the other: compare as text
            meta.index = meta.index.astype(str)
            inter["item"] = inter["item"].astype(str)
        sources.append(items)
    name = path.name.split(".")[0]
    return RawData(name, inter, meta, sources)
