"""Amazon review dumps (McAuley lab): JSON lines, gzipped or not, plus an optional metadata file.

Reviews: one object per line with `reviewerID`, `asin`, `unixReviewTime` (seconds) and `overall`
(2014 / 2018 dumps), or `user_id`, `parent_asin`/`asin`, `timestamp` (milliseconds) and `rating` (2023).
Metadata (`meta_NAME.json(.gz)`, found beside the reviews or given with `--items`): `title`, `categories`
(2014: a list of category paths), `category` (2018: one path), `brand`/`store`, `price`, `description`.
The 2014 metadata lines are python dict literals, not JSON; both are accepted. HTML entities in text
(`&amp;`, `&#39;`) are decoded.
"""

from __future__ import annotations

import ast
import gzip
import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.data.readers._checks import fail
from genrec.data.types import DataError, RawData

USER_KEYS = ("reviewerID", "user_id")
ITEM_KEYS = ("parent_asin", "asin")  # 2023 dumps: parent_asin groups variants, as their benchmarks do
TIME_KEYS = ("unixReviewTime", "timestamp")
RATING_KEYS = ("overall", "rating")
REVIEW_GLOBS = ("reviews_*.json*", "*_5.json*", "*.jsonl*", "*.json*")


def _open(path: Path):
    try:
        if path.name.endswith(".gz"):
            return gzip.open(path, "rt", encoding="utf-8")
        return open(path, encoding="utf-8")
    except OSError as e:
        raise DataError(f"{path}: cannot open ({e.strerror})") from None


def _lines(path: Path):
    """(line number, stripped text) of non-blank lines; decoding/gzip errors name the file."""
    f = _open(path)
    lineno = 0
    try:
        with f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if line:
                    yield lineno, line
    except UnicodeDecodeError as e:
        raise fail(path, lineno + 1, None, f"not UTF-8 text ({e.reason})") from None
    except (OSError, EOFError) as e:  # truncated or corrupt gzip
        raise fail(path, lineno + 1, None, f"cannot read ({e})") from None


def _first(rec: dict, keys: tuple[str, ...]) -> tuple[str | None, object]:
    for k in keys:
        if k in rec:
            return k, rec[k]
    return None, None


def read_reviews(path: Path) -> pd.DataFrame:
    users: list[str] = []
    items: list[str] = []
    times: list[int] = []
    ratings: list[float] = []
    has_rating = True
    for lineno, line in _lines(path):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise fail(path, lineno, None, f"invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(rec, dict):
            raise fail(path, lineno, None, "expected a JSON object per line")
        for keys, out in ((USER_KEYS, users), (ITEM_KEYS, items)):
            k, v = _first(rec, keys)
            if v is None or v == "":
                raise fail(path, lineno, keys[0], f"missing (one of {', '.join(keys)} is needed)")
            out.append(str(v))
        k, t = _first(rec, TIME_KEYS)
        if t is None:
            raise fail(path, lineno, TIME_KEYS[0], f"missing (one of {', '.join(TIME_KEYS)} is needed)")
        try:
            t = int(t) if not isinstance(t, bool) else None
        except (TypeError, ValueError):
            t = None
        if t is None:
            raise fail(path, lineno, k, f"expected unix time as an integer, got {rec[k]!r}")
        times.append(t // 1000 if k == "timestamp" and t > 10**11 else t)  # 2023 dumps use milliseconds
        k, r = _first(rec, RATING_KEYS)
        if r is None:
            has_rating = False
        elif has_rating:
            try:
                ratings.append(float(r))
            except (TypeError, ValueError):
                raise fail(path, lineno, k, f"expected a number, got {r!r}") from None
    if not users:
        raise DataError(f"{path}: no reviews in this file")
    df = pd.DataFrame(
        {
            "user": np.array(users, dtype=object),
            "item": np.array(items, dtype=object),
            "timestamp": np.array(times, dtype=np.int64),
        }
    )
    if has_rating:
        df["rating"] = np.array(ratings, dtype=np.float32)
    return df


def _parse_meta_line(line: str, path: Path, lineno: int) -> dict:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError:
        try:  # 2014 metadata: python dict literals ({'asin': '...', 'title': "..."})
            rec = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise fail(path, lineno, None, "neither JSON nor a python dict literal") from None
    if not isinstance(rec, dict):
        raise fail(path, lineno, None, "expected one object per line")
    return rec


def _price(v: object) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    m = re.search(r"\d[\d,]*(?:\.\d+)?", str(v or ""))  # '$5.99', '$1,299.00', '$5.99 - $9.99'
    return float(m.group(0).replace(",", "")) if m else np.nan


def _text(v: object) -> str:
    if isinstance(v, list):
        v = " ".join(str(x) for x in v if x)
    return html.unescape(str(v)).strip() if v else ""


def read_meta(path: Path) -> pd.DataFrame:
    rows = []
    for lineno, line in _lines(path):
        rec = _parse_meta_line(line, path, lineno)
        key, item = _first(rec, ITEM_KEYS)
        if item is None or item == "":
            raise fail(path, lineno, "asin", "missing item id")
        cats = rec.get("categories", rec.get("category"))
        if isinstance(cats, list) and cats and isinstance(cats[0], list):  # 2014: several paths; the first
            cats = cats[0]
        path_ = [html.unescape(str(c)) for c in cats] if isinstance(cats, list) else []
        main = path_[-1] if path_ else _text(rec.get("main_category", rec.get("main_cat", "")))
        rows.append(
            (
                str(item),
                _text(rec.get("title")),
                " > ".join(path_),
                main,
                _text(rec.get("brand") or rec.get("store")),
                _price(rec.get("price")),
                _text(rec.get("description")),
            )
        )
    cols = ["item", "title", "categories", "category", "brand", "price", "description"]
    meta = pd.DataFrame(rows, columns=cols)
    # some dumps repeat an item; keep its first record
    return meta.drop_duplicates("item").set_index("item")


def _reviews_file(folder: Path) -> Path:
    for pattern in REVIEW_GLOBS:
        hits = sorted(p for p in folder.glob(pattern) if not p.name.startswith("meta_"))
        if hits:
            return hits[0]
    raise DataError(
        f"{folder}: no review file (reviews_NAME.json.gz, NAME_5.json.gz or *.jsonl) in this folder"
    )


def _meta_file(reviews: Path) -> Path | None:
    metas = sorted(reviews.parent.glob("meta_*.json*"))
    if not metas:
        return None
    # reviews_Beauty_5.json.gz / Beauty_5.json.gz / Beauty.jsonl -> meta_Beauty.json.gz
    stem = re.sub(r"^reviews_|(_5)?\.jsonl?(\.gz)?$", "", reviews.name)
    return next((m for m in metas if m.name.split(".")[0] == f"meta_{stem}"), metas[0])


def read_amazon(path: Path, items: str | Path | None = None) -> RawData:
    reviews = path if path.is_file() else _reviews_file(path)
    inter = read_reviews(reviews)
    meta_path = Path(items) if items is not None else _meta_file(reviews)
    sources = [reviews]
    meta = None
    if meta_path is not None:
        if not meta_path.exists():
            raise DataError(f"{meta_path}: no such metadata file (--items)")
        meta = read_meta(meta_path)
        sources.append(meta_path)
    name = path.name if path.is_dir() else re.sub(r"(\.jsonl?)?(\.gz)?$", "", reviews.name)
    return RawData(name, inter, meta, sources)
