"""Amazon 2014 5-core folders as preprocessed by S3-Rec/P5 (e.g. `amazon-beauty`), joined back to raw ids,
timestamps and item text.

Files (see the folder's PROVENANCE.md):
- `NAME.txt` (S3-Rec): `user item item ...` per user in chronological order, P5 ids.
- `datamaps.json` (P5): `id2user` / `id2item` map P5 ids to reviewerID / ASIN; `item2id` lists all ASINs.
- `NAME_item_org_rank.txt` + `NAME_time_org_rank.txt` (TiCoSeRec, optional): parallel lines of "rank" item
  ids and unix times per P5 user; rank id k is the k-th ASIN in plain string sort order.
- `item_description.csv` (optional): tab-separated, RecBole-style header, rank ids; title, categories
  (a python-list body), brand, price, with HTML entities left encoded.

The interactions keep NAME.txt's order; timestamps are joined by (user, ASIN). Within a user the
TiCoSeRec files order same-day ties differently, so NAME.txt (the benchmark's order) is authoritative and
the joined times are checked to be non-decreasing along each NAME.txt line: sorting by (user, time,
file order) then reproduces NAME.txt exactly.
"""

from __future__ import annotations

import ast
import csv
import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.data.readers._checks import fail
from genrec.data.readers.sequences import IntLines, read_int_lines
from genrec.data.types import DataError, RawData


def _find_sequence_file(folder: Path) -> Path:
    ranked = sorted(folder.glob("*_item_org_rank.txt"))
    for r in ranked:
        cand = folder / (r.name[: -len("_item_org_rank.txt")] + ".txt")
        if cand.exists():
            return cand
    if (folder / "Beauty.txt").exists():
        return folder / "Beauty.txt"
    raise DataError(f"{folder}: no sequence file NAME.txt (e.g. Beauty.txt) beside datamaps.json")


def _load_datamaps(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            maps = json.load(f)
    except json.JSONDecodeError as e:
        raise fail(path, e.lineno, None, f"invalid JSON ({e.msg}, column {e.colno})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot open ({e.strerror})") from None
    for key in ("id2user", "id2item", "item2id"):
        if not isinstance(maps.get(key), dict):
            raise fail(path, None, key, "missing: expected a JSON object with id2user, id2item and item2id")
    return maps


def _id_table(mapping: dict, path: Path, field: str) -> np.ndarray:
    """{"1": "A1Y..", ...} -> object array indexed by the integer id (index 0 and gaps = None)."""
    try:
        ids = {int(k): v for k, v in mapping.items()}
    except ValueError as e:
        raise fail(path, None, field, f"keys must be integer ids ({e})") from None
    table = np.full(max(ids, default=0) + 1, None, dtype=object)
    for k, v in ids.items():
        table[k] = str(v)
    return table


def _lookup(
    table: np.ndarray, ids: np.ndarray, lines: IntLines, src: Path, field: str, where: str
) -> np.ndarray:
    """table[ids], or a DataError naming the first id the table lacks."""
    ok = ids < len(table)
    out = np.full(len(ids), None, dtype=object)
    out[ok] = table[ids[ok]]
    bad = np.flatnonzero(pd.isna(out))
    if len(bad):
        k = int(bad[0])
        line = lines.value_line(k) if field == "item" else int(lines.line_numbers[k])
        raise fail(src, line, field, f"id {int(ids[k])} is not in {where}")
    return out


def _timestamps(
    folder: Path,
    stem: str,
    seq: IntLines,
    user_p5: np.ndarray,
    item_p5: np.ndarray,
    asin_by_rank: np.ndarray,
    item2id: dict,
    seq_path: Path,
) -> tuple[np.ndarray, list[Path]] | None:
    items_f, times_f = folder / f"{stem}_item_org_rank.txt", folder / f"{stem}_time_org_rank.txt"
    if not (items_f.exists() and times_f.exists()):
        return None
    ranks = read_int_lines(items_f, "user", "item")
    times = read_int_lines(times_f, "user", "timestamp")
    if len(ranks.heads) != len(times.heads):
        raise DataError(
            f"{times_f}: {len(times.heads)} lines, but {items_f.name} has {len(ranks.heads)}; "
            "the two files must be parallel"
        )
    diff = np.flatnonzero((ranks.heads != times.heads) | (ranks.lengths != times.lengths))
    if len(diff):
        r = int(diff[0])
        raise fail(
            times_f,
            int(times.line_numbers[r]),
            "timestamp",
            f"user {times.heads[r]} has {times.lengths[r]} timestamps but line "
            f"{ranks.line_numbers[r]} of {items_f.name} has user {ranks.heads[r]} with "
            f"{ranks.lengths[r]} items",
        )
    # rank id -> ASIN -> P5 item id, so both sides are keyed by (P5 user, P5 item)
    asin = _lookup(asin_by_rank, ranks.values, ranks, items_f, "item", "the sorted ASINs of datamaps.json")
    p5_of_rank = np.array([int(item2id[a]) for a in asin], dtype=np.int64)
    n = int(max(item_p5.max(), p5_of_rank.max())) + 1
    time_keys = np.repeat(ranks.heads, ranks.lengths) * n + p5_of_rank
    index = pd.Index(time_keys)
    if not index.is_unique:
        k = int(np.flatnonzero(index.duplicated())[0])
        user = np.repeat(ranks.heads, ranks.lengths)[k]
        raise fail(
            items_f, ranks.value_line(k), "item", f"item {ranks.values[k]} appears twice for user {user}"
        )
    pos = index.get_indexer(user_p5 * n + item_p5)
    if (pos < 0).any():
        k = int(np.flatnonzero(pos < 0)[0])
        raise fail(
            seq_path,
            seq.value_line(k),
            "item",
            f"no timestamp for user {user_p5[k]}, item {item_p5[k]} in {items_f.name}",
        )
    ts = times.values[pos]
    # NAME.txt is chronological: a time going backwards along a line means the files do not belong together
    same_user = np.repeat(np.arange(len(seq.heads)), seq.lengths)
    back = np.flatnonzero((np.diff(ts) < 0) & (same_user[1:] == same_user[:-1]))
    if len(back):
        k = int(back[0]) + 1
        raise fail(
            seq_path,
            seq.value_line(k),
            "item",
            f"item {item_p5[k]} has time {ts[k]}, earlier than the item before it ({ts[k - 1]}) "
            f"according to {times_f.name}; the files are not from the same dataset",
        )
    return ts, [items_f, times_f]


def _categories(text: str, path: Path, line: int) -> list[str]:
    if not text.strip():
        return []
    try:
        cats = ast.literal_eval("[" + text + "]")
    except (ValueError, SyntaxError):
        raise fail(
            path, line, "categories", f"expected a list like 'Beauty', 'Makeup', got {text[:60]!r}"
        ) from None
    return [html.unescape(str(c)) for c in cats]


def read_item_description(path: Path, asin_by_rank: np.ndarray) -> pd.DataFrame:
    """item_description.csv -> metadata indexed by ASIN: title, categories (path), category (most specific),
    brand, price, sales_rank."""
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty file (expected a header line)")
        names = [h.split(":")[0] for h in header]
        if "item_id" not in names:
            raise fail(path, 1, "item_id", f"header has no item_id column (got {', '.join(header)})")
        col = {n: i for i, n in enumerate(names)}
        for rec in reader:
            line = reader.line_num
            if not rec:
                continue
            if len(rec) != len(names):
                raise fail(
                    path,
                    line,
                    None,
                    f"wrong number of fields: {len(rec)}, expected {len(names)} ({', '.join(names)})",
                )
            raw_id = rec[col["item_id"]]
            known = raw_id.isdigit() and 0 < int(raw_id) < len(asin_by_rank)
            if not known or asin_by_rank[int(raw_id)] is None:
                raise fail(
                    path, line, "item_id", f"expected a rank id in 1..{len(asin_by_rank) - 1}, got {raw_id!r}"
                )
            fields = {n: rec[i].strip() for n, i in col.items()}
            cats = _categories(fields.get("categories", ""), path, line)
            price = fields.get("price", "")
            try:
                price_v = float(price) if price else np.nan
            except ValueError:
                raise fail(path, line, "price", f"expected a number, got {price!r}") from None
            rows.append(
                (
                    asin_by_rank[int(raw_id)],
                    html.unescape(fields.get("title", "")),
                    " > ".join(cats),
                    cats[-1] if cats else "",
                    html.unescape(fields.get("brand", "")),
                    price_v,
                )
            )
    meta = pd.DataFrame(rows, columns=["item", "title", "categories", "category", "brand", "price"])
    dup = meta["item"].duplicated()
    if dup.any():
        raise DataError(f"{path}: item {meta['item'][dup].iloc[0]} is described twice")
    return meta.set_index("item")


def read_amazon_p5(path: Path) -> RawData:
    folder = path if path.is_dir() else path.parent
    seq_path = path if path.is_file() else _find_sequence_file(folder)
    maps_path = folder / "datamaps.json"
    if not maps_path.exists():
        raise DataError(
            f"{folder}: no datamaps.json (P5's id maps), needed to recover reviewerIDs and "
            "ASINs; to read the sequences alone use --format sequences"
        )
    seq = read_int_lines(seq_path)
    maps = _load_datamaps(maps_path)
    user_p5 = np.repeat(seq.heads, seq.lengths)
    item_p5 = seq.values
    users = _lookup(
        _id_table(maps["id2user"], maps_path, "id2user"),
        seq.heads,
        seq,
        seq_path,
        "user",
        f"{maps_path.name} id2user",
    )
    items = _lookup(
        _id_table(maps["id2item"], maps_path, "id2item"),
        item_p5,
        seq,
        seq_path,
        "item",
        f"{maps_path.name} id2item",
    )
    asin_by_rank = np.array([None, *sorted(maps["item2id"])], dtype=object)  # rank k -> k-th ASIN (1-based)
    inter = pd.DataFrame({"user": np.repeat(users, seq.lengths), "item": items})
    sources = [seq_path, maps_path]
    joined = _timestamps(
        folder, seq_path.stem, seq, user_p5, item_p5, asin_by_rank, maps["item2id"], seq_path
    )
    if joined is not None:
        inter["timestamp"] = joined[0]
        sources += joined[1]
    meta = None
    if (folder / "item_description.csv").exists():
        meta = read_item_description(folder / "item_description.csv", asin_by_rank)
        sources.append(folder / "item_description.csv")
    return RawData(folder.name, inter, meta, sources)
