"""Readers: one function per input format, each returning `RawData` with rows in file order.

`read(path, fmt=None)` auto-detects the format of a file or folder when `fmt` is None.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from pathlib import Path

from genrec.data.types import DataError, RawData

# format name -> "module:function"; each function takes (path: Path, **options) -> RawData
FORMATS: dict[str, str] = {
    "ml-100k": "genrec.data.readers.movielens:read_ml100k",
    "ml-1m": "genrec.data.readers.movielens:read_ml1m",
    "ml-csv": "genrec.data.readers.movielens:read_ml_csv",
    "sequences": "genrec.data.readers.sequences:read_sequences",
    "amazon-beauty": "genrec.data.readers.amazon_p5:read_amazon_p5",  # any S3-Rec/P5 Amazon 5-core folder
    "table": "genrec.data.readers.table:read_table",  # CSV/TSV/Parquet with a column mapping
    "recbole": "genrec.data.readers.recbole:read_recbole",  # NAME.inter (+ NAME.item) atomic files
    "amazon": "genrec.data.readers.amazon:read_amazon",  # McAuley review dumps (+ meta_NAME.json.gz)
}


def _detect(path: Path) -> str:
    if path.is_dir():
        names = {p.name for p in path.iterdir()}
        if "u.data" in names:
            return "ml-100k"
        if "ratings.dat" in names:
            return "ml-1m"
        if "ratings.csv" in names:
            return "ml-csv"
        for fmt, marker in DIR_MARKERS:
            if any(fnmatch.fnmatchcase(n, marker) for n in names):
                return fmt
        raise DataError(
            f"{path}: cannot tell the format of this folder (no u.data, ratings.dat, ratings.csv, ...); "
            f"pass --format, one of: {', '.join(sorted(FORMATS))}"
        )
    for fmt, suffixes in SUFFIXES:
        if any(path.name.endswith(s) for s in suffixes):
            return fmt
    raise DataError(
        f"{path}: cannot tell the format of this file; pass --format, one of: {', '.join(sorted(FORMATS))}"
    )


# (format, glob pattern of a file inside a folder that marks the format), tried in order
DIR_MARKERS: list[tuple[str, str]] = [
    ("amazon-beauty", "datamaps.json"),
    ("recbole", "*.inter"),
    ("amazon", "reviews_*.json*"),
    ("amazon", "*_5.json*"),
    ("amazon", "meta_*.json*"),
]
# (format, file name suffixes)
SUFFIXES: list[tuple[str, tuple[str, ...]]] = [
    ("ml-1m", ("ratings.dat",)),
    ("ml-100k", ("u.data",)),
    ("table", (".csv", ".tsv", ".tab", ".parquet", ".pq", ".csv.gz", ".tsv.gz")),
    ("recbole", (".inter",)),
    ("amazon", (".json", ".json.gz", ".jsonl", ".jsonl.gz")),
    ("sequences", (".txt",)),  # the S3-Rec/SASRec `user item item ...` files (Beauty.txt, Toys_and_Games.txt)
]


def read(path: str | Path, fmt: str | None = None, **options) -> RawData:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    fmt = fmt or _detect(path)
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; choose one of: {', '.join(sorted(FORMATS))}")
    module, func = FORMATS[fmt].split(":")
    reader = getattr(importlib.import_module(module), func)
    takes = inspect.signature(reader).parameters
    unknown = [k for k, v in options.items() if v is not None and k not in takes]
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise DataError(
            f"{path}: format {fmt!r} does not take {flags} (formats with a column mapping: table, recbole)"
        )
    return reader(path, **{k: v for k, v in options.items() if v is not None})
