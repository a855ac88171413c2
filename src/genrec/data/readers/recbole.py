"""RecBole atomic files: `NAME.inter` (+ optional `NAME.item`), tab-separated with typed headers.

Header fields are `name:type` (type token, token_seq, float, float_seq). Interactions use `user_id`,
`item_id`, `timestamp`, `rating` unless `--columns` maps other names (e.g. `user=session_id`); the item
file gives the title (`title`, `movie_title`, `name`), categories (`categories`, `genre`, `class`),
`brand`, `price` and `description`. Sequences (`token_seq`) are space-separated, except Amazon-style
category paths written as a python list body (`'Beauty', 'Makeup'`).
"""

from __future__ import annotations

import ast
import html
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.data.readers._checks import fail
from genrec.data.readers.table import INTERACTION_FIELDS, ITEM_FIELDS, REQUIRED, _Table, parse_mapping
from genrec.data.types import DataError, RawData

TYPES = ("token", "token_seq", "float", "float_seq")
ITEM_NAMES = {  # genrec field -> RecBole field names, in order of preference
    "title": ("title", "movie_title", "name", "item_name"),
    "categories": ("categories", "genre", "genres", "class", "category"),
    "brand": ("brand",),
    "price": ("price",),
    "description": ("description", "desc", "summary"),
}


def _header(path: Path) -> tuple[list[str], list[str]]:
    """Field names and types of an atomic file; a header without `name:type` fields is an error."""
    with open(path, encoding="utf-8", newline="") as f:
        first = f.readline().rstrip("\r\n")
    if not first:
        raise DataError(f"{path}: empty file (expected a header like user_id:token<TAB>item_id:token)")
    names, types = [], []
    for col in first.split("\t"):
        name, _, typ = col.partition(":")
        if typ not in TYPES:
            raise fail(
                path,
                1,
                col,
                f"not a RecBole typed header field (expected NAME:TYPE with TYPE one of "
                f"{', '.join(TYPES)}, fields separated by tabs)",
            )
        names.append(name)
        types.append(typ)
    return names, types


def _inter_file(path: Path) -> Path:
    if path.is_file():
        return path
    found = sorted(p for p in path.glob("*.inter") if p.name.count(".") == 1)  # not NAME.train.inter
    preferred = [p for p in found if p.stem == path.name]
    if not found:
        raise DataError(f"{path}: no NAME.inter file in this folder (RecBole atomic files)")
    return (preferred or found)[0]


def _default_mapping(
    names: list[str], types: list[str], mapping: dict[str, str], path: Path
) -> dict[str, str]:
    """genrec field -> full header column ('user_id:token'); explicit --columns win over the defaults."""
    full = {n: f"{n}:{t}" for n, t in zip(names, types)}
    out = {}
    for fld in INTERACTION_FIELDS:
        name = mapping.get(fld, {"user": "user_id", "item": "item_id"}.get(fld, fld))
        name = name.split(":")[0]
        if name in full:
            out[fld] = full[name]
        elif fld in mapping or fld in REQUIRED:
            raise fail(
                path,
                1,
                name,
                f"no such field in the header ({', '.join(full.values())}); "
                f"map it with --columns {fld}=FIELD",
            )
    return out


def _seq_text(value: str, typ: str) -> list[str]:
    value = value.strip()
    if not value:
        return []
    if typ == "token_seq" and value[0] in "'\"":  # Amazon category path: 'Beauty', 'Makeup'
        try:
            return [str(v) for v in ast.literal_eval("[" + value + "]")]
        except (ValueError, SyntaxError):
            pass
    return value.split() if typ == "token_seq" else [value]


def read_item_file(path: Path) -> pd.DataFrame:
    names, types = _header(path)
    if "item_id" not in names:
        raise fail(path, 1, "item_id", f"the .item header has no item_id field (got {', '.join(names)})")
    typ = dict(zip(names, types))
    cols = {"item": "item_id:" + typ["item_id"]}
    for fld, cands in ITEM_NAMES.items():
        hit = next((c for c in cands if c in typ), None)
        if hit is not None:
            cols[fld] = f"{hit}:{typ[hit]}"
    t = _Table(path, "\t", True, cols, ITEM_FIELDS, ("item",))
    meta = pd.DataFrame({"item": t.ids("item")})
    for fld, col in cols.items():
        if fld == "item":
            continue
        vals = t.df[col]
        if fld == "price":
            num = pd.to_numeric(vals, errors="coerce")
            bad = num.isna() & vals.notna()
            if bad.any():
                raise t.error(
                    int(np.flatnonzero(bad.to_numpy())[0]),
                    "price",
                    f"expected a number, got {vals[bad].iloc[0]!r}",
                )
            meta["price"] = num.to_numpy()
            continue
        text = vals.fillna("").astype(str).map(html.unescape)
        if fld == "categories":
            seqs = [_seq_text(v, col.split(":")[1]) for v in text]
            # a category path (Amazon) reads best as 'A > B > C'; plain genre lists as 'A|B|C'
            joiner = " > " if any(v.lstrip()[:1] in "'\"" for v in text) else "|"
            meta["categories"] = [joiner.join(s) for s in seqs]
            meta["category"] = [(s[-1] if joiner == " > " else s[0]) if s else "" for s in seqs]
        else:
            meta[fld] = text.to_numpy()
    dup = meta["item"].duplicated()
    if dup.any():
        raise t.error(
            int(np.flatnonzero(dup.to_numpy())[0]),
            "item",
            f"item {meta['item'][dup].iloc[0]!r} appears twice in the .item file",
        )
    return meta.set_index("item")


def read_recbole(path: Path, columns: dict[str, str] | str | None = None) -> RawData:
    inter_path = _inter_file(path)
    names, types = _header(inter_path)
    cols = _default_mapping(names, types, parse_mapping(columns, INTERACTION_FIELDS), inter_path)
    t = _Table(inter_path, "\t", True, cols, INTERACTION_FIELDS, REQUIRED)
    inter = pd.DataFrame({"user": t.ids("user"), "item": t.ids("item")})
    if "timestamp" in t.cols:
        inter["timestamp"] = t.times()
    if "rating" in t.cols:
        inter["rating"] = t.numbers("rating").astype(np.float32)
    del t
    sources = [inter_path]
    item_path = inter_path.with_suffix(".item")
    meta = None
    if item_path.exists():
        meta = read_item_file(item_path)
        if len(meta) and meta.index.dtype != inter["item"].dtype:
            meta.index = meta.index.astype(str)
            inter["item"] = inter["item"].astype(str)
        sources.append(item_path)
    return RawData(inter_path.stem, inter, meta, sources)
