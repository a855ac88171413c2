"""`genrec items add RUN new_items.csv`: cold-start items for models that know items by content.

The CSV has a header with `item_id,title` and optionally `categories,brand,description,price`.
The whole file is checked first (errors name file:line:field); the run's model/ and dataset/ folders
are then written beside the old ones and renamed into place, so a failure never leaves a half-updated
run.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.data.cleaning import item_text
from genrec.data.dataset import Dataset
from genrec.data.types import DataError
from genrec.models.base import AddsItems
from genrec.training.runs import load_run

REQUIRED = ("item_id", "title")
OPTIONAL = ("categories", "brand", "description", "price")


def read_items_csv(path: Path, ds: Dataset) -> pd.DataFrame:
    """Validated new items, indexed by raw item id (typed like the dataset's ids)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    int_ids = np.issubdtype(ds.item_raw.dtype, np.integer)
    known = {str(v) for v in ds.item_raw[1:]}
    rows: list[dict] = []
    seen: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(
                f"{path}:1: empty file; expected a header {','.join(REQUIRED)}[,{','.join(OPTIONAL)}]"
            ) from None
        except (csv.Error, UnicodeDecodeError) as e:
            raise DataError(f"{path}:1: unreadable CSV header ({e})") from None
        for name in REQUIRED:
            if name not in header:
                raise DataError(
                    f"{path}:1:{name}: missing column; the header must contain {','.join(REQUIRED)}"
                )
        unknown = [h for h in header if h not in REQUIRED + OPTIONAL]
        if unknown:
            raise DataError(
                f"{path}:1:{unknown[0]}: unknown column; allowed: {', '.join(REQUIRED + OPTIONAL)}"
            )
        dup_cols = {h for h in header if header.count(h) > 1}
        if dup_cols:
            raise DataError(f"{path}:1:{sorted(dup_cols)[0]}: column given twice")
        try:
            for fields in reader:
                line = reader.line_num
                if not any(x.strip() for x in fields):
                    continue  # blank line
                if len(fields) != len(header):
                    raise DataError(f"{path}:{line}: {len(fields)} fields, the header has {len(header)}")
                rec = dict(zip(header, (x.strip() for x in fields)))
                rid = rec["item_id"]
                if not rid:
                    raise DataError(f"{path}:{line}:item_id: empty")
                if int_ids:
                    try:
                        rec["item_id"] = int(rid)
                    except ValueError:
                        raise DataError(
                            f"{path}:{line}:item_id: {rid!r} is not an integer (this dataset's item "
                            "ids are integers)"
                        ) from None
                if rid in known:
                    raise DataError(f"{path}:{line}:item_id: {rid!r} is already in the catalogue")
                if rid in seen:
                    raise DataError(f"{path}:{line}:item_id: {rid!r} repeats line {seen[rid]}")
                seen[rid] = line
                if not rec["title"]:
                    raise DataError(f"{path}:{line}:title: empty; every new item needs a title")
                if rec.get("price"):
                    try:
                        price = float(rec["price"])
                    except ValueError:
                        raise DataError(f"{path}:{line}:price: {rec['price']!r} is not a number") from None
                    if not np.isfinite(price) or price < 0:
                        raise DataError(f"{path}:{line}:price: {rec['price']!r} must be a finite number >= 0")
                rows.append(rec)
        except (csv.Error, UnicodeDecodeError) as e:
            raise DataError(f"{path}:{reader.line_num}: unreadable CSV ({e})") from None
    if not rows:
        raise DataError(f"{path}: no items after the header")
    df = pd.DataFrame(rows).set_index("item_id")
    return df.replace("", np.nan)


def add_items(run_dir: str | Path, csv_path: str | Path) -> tuple[list, list[str]]:
    """Add the CSV's items to the run's catalogue (model and dataset/); returns (raw ids, how the model
    knows each new item, e.g. its semantic ID)."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    model, ds = run.model, run.dataset
    if not isinstance(model, AddsItems):
        raise ValueError(
            f"model {model.name!r} knows items only by their ids and cannot add items without "
            "retraining; models that read item text can (tiger; sasrec and hstu with item_text on)"
        )
    meta = read_items_csv(Path(csv_path), ds)
    ids = list(meta.index)
    title, text, category = item_text(meta, np.asarray(ids, dtype=object))
    n_old = ds.n_items
    new = model.add_items(list(text))
    ds.item_raw = np.concatenate([ds.item_raw, np.asarray(ids, dtype=ds.item_raw.dtype)])
    for attr, values in (("item_title", title), ("item_text", text), ("item_category", category)):
        old = getattr(ds, attr)
        if old is None and values is None:
            continue
        old = np.full(n_old + 1, "", dtype=object) if old is None else old.astype(object)
        values = np.full(len(ids), "", dtype=object) if values is None else np.asarray(values, dtype=object)
        setattr(ds, attr, np.concatenate([old, values]).astype(str))
    ds.manifest["n_items"] = ds.n_items
    ds.manifest["added_items"] = ds.manifest.get("added_items", 0) + len(ids)
    # write model and dataset next to the old ones, then swap; load_run refuses a half-swapped run
    tmp = {name: run_dir / f"{name}.tmp{os.getpid()}" for name in ("model", "dataset")}
    old = {name: run_dir / f"{name}.old{os.getpid()}" for name in ("model", "dataset")}
    try:
        model.save(tmp["model"])
        ds.save(tmp["dataset"])
    except BaseException:
        for path in tmp.values():
            shutil.rmtree(path, ignore_errors=True)
        raise
    for name in ("model", "dataset"):  # renames in one folder: the run is never without either
        os.replace(run_dir / name, old[name])
        os.replace(tmp[name], run_dir / name)
    for path in old.values():
        shutil.rmtree(path, ignore_errors=True)
    return ids, model.item_codes(new)
