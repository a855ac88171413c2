"""Out-of-core preprocessing of one interaction table (CSV/TSV/Parquet) with DuckDB.

DuckDB rather than Polars' streaming engine: its hash aggregates, joins and sorts spill to disk under a
`memory_limit`, and its window functions express de-duplication and per-user order directly.

The result is the Dataset `genrec.data.cleaning.preprocess` builds from the same file, array for array,
written straight to the processed-dataset folder (`Dataset.save` layout, .npy files) in streamed chunks.
Only the final, sorted columns pass through Python, as numpy arrays fetched in bulk record batches.
Order is explicit everywhere (time, then the file row number), so `preserve_insertion_order` is off
except while a CSV file is staged, where it makes DuckDB's rowid the file row number.
Supported: format 'table' files, every --columns / --sep / --no-header / --items option, rating
threshold, dedup none/first/last, min-user/min-item k-core, protocol 'loo'.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from genrec.data.dataset import Dataset
from genrec.data.types import DataConfig, DataError

DEFAULT_MEMORY_LIMIT = "2GB"
AUTO_MIN_BYTES = 1 << 30  # engine 'auto' picks DuckDB for input files from 1 GiB on
TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet", ".pq", ".csv.gz", ".tsv.gz")
CHUNK_ROWS = 1 << 21  # rows per fetched record batch: ~60 MB of numpy columns
_INT = r"\s*[+-]?[0-9]+\s*"  # a text field pandas' C parser reads as an integer


def available() -> bool:
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return False
    return True


def unsupported(cfg: DataConfig) -> str | None:
    """Why the DuckDB engine cannot apply `cfg` (with the fix), or None when it can."""
    if cfg.protocol != "loo":
        return (
            f"--engine duckdb supports --protocol loo only, not {cfg.protocol!r}; "
            "use --protocol loo, or --engine memory if the data fits in memory"
        )
    return None


def is_table_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(TABLE_SUFFIXES)


def check_input(path: Path, fmt: str | None) -> None:
    """A DataError unless `path` is one table file the DuckDB engine reads."""
    if fmt not in (None, "table") or not is_table_file(path):
        raise DataError(
            f"{path}: --engine duckdb reads one table file ({', '.join(TABLE_SUFFIXES)}) of format 'table'; "
            "convert the data to CSV or Parquet, or use --engine memory"
        )


def _sql_str(s: str | Path) -> str:
    return "'" + str(s).replace("'", "''") + "'"


def _ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


class _Log:
    """Stage messages with elapsed seconds on stderr (the progress indication)."""

    def __init__(self, on: bool) -> None:
        self.on, self.t0 = on, time.perf_counter()

    def __call__(self, msg: str) -> None:
        if self.on:
            print(f"[{time.perf_counter() - self.t0:7.1f}s] {msg}", file=sys.stderr, flush=True)


class _Npy:
    """A 1-d .npy file written sequentially: same bytes as np.save, without holding the array."""

    def __init__(self, path: Path, dtype: np.dtype, n: int) -> None:
        self.dtype, self.n, self.written = np.dtype(dtype), n, 0
        self.f = open(path, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (n,)}
        np.lib.format.write_array_header_1_0(self.f, header)

    def write(self, a: np.ndarray) -> None:
        self.f.write(np.ascontiguousarray(a, dtype=self.dtype).tobytes())
        self.written += len(a)

    def close(self) -> None:
        self.f.close()
        if self.written != self.n:
            raise AssertionError(f"wrote {self.written} of {self.n} values to {self.f.name}")


def _save(path: Path, arr: np.ndarray) -> None:
    """Like Dataset.save: text arrays as fixed-width unicode, never pickled."""
    arr = np.asarray(arr)
    np.save(path, arr.astype(str) if arr.dtype == object else arr, allow_pickle=False)


def prepare_table(
    path: Path,
    cfg: DataConfig,
    out: Path,
    columns: dict[str, str] | str | None = None,
    sep: str | None = None,
    header: bool = True,
    items: str | Path | None = None,
    item_columns: dict[str, str] | str | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    threads: int | None = None,
    temp_dir: Path | None = None,
    progress: bool = False,
    manifest_extra: dict | None = None,
) -> dict:
    """Clean, index and split the table file `path` out of core; write the Dataset folder `out`.

    Same steps and results as `preprocess(read_table(path, ...), cfg)`; returns the manifest.
    `memory_limit` caps DuckDB's buffers (it spills to `temp_dir` beyond it).
    """
    import duckdb

    from genrec.data.cleaning import item_text
    from genrec.data.readers.table import (
        INTERACTION_FIELDS,
        REQUIRED,
        parse_mapping,
        read_item_table,
    )

    cfg.validate()
    why = unsupported(cfg)
    if why:
        raise DataError(why)
    path = Path(path)
    check_input(path, None)
    log = _Log(progress)
    mapping = parse_mapping(columns, INTERACTION_FIELDS)
    work = Path(tempfile.mkdtemp(prefix="genrec-duckdb-", dir=temp_dir))
    con = duckdb.connect(str(work / "prepare.duckdb"))
    try:
        con.execute(f"SET memory_limit = {_sql_str(memory_limit)}")
        con.execute(f"SET temp_directory = {_sql_str(work / 'spill')}")
        con.execute("SET TimeZone = 'UTC'")  # date strings without an offset are UTC, as in the reader
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        # order is explicit everywhere (file row number `rn`), so DuckDB may reorder freely and save memory
        con.execute("SET preserve_insertion_order = false")
        src, cols = _source(con, path, mapping, sep, header, INTERACTION_FIELDS, REQUIRED, log)
        item_meta = None
        if items is not None:  # item metadata is small: read as the in-memory engine does
            items = Path(items)
            if not items.exists():
                raise DataError(f"{items}: no such item table (--items)")
            item_col = cols["item"] if header else None
            item_meta = read_item_table(items, item_columns, None, header, item_column=item_col)
        exprs = _typed(con, path, src, cols)
        log(f"reading {path.name}")
        typed = ", ".join(f"{e} AS {k}" for k, e in exprs.items())
        try:
            con.execute(f"CREATE TABLE t AS SELECT __rn AS rn, {typed} FROM {src}")
        except duckdb.Error as e:  # a value the reader rejects too (e.g. an id like 1.5)
            raise DataError(
                f"{path}: {e}; fix the file or use --engine memory for row-level details"
            ) from None
        _check_nulls(con, path, cols, header, list(exprs))
        n_raw = con.execute("SELECT count(*) FROM t").fetchone()[0]
        if n_raw == 0:
            raise DataError(f"{path.name.split('.')[0]}: no interactions were read")
        has_ts, has_r = "ts" in exprs, "r" in exprs
        if item_meta is not None and len(item_meta) and _item_is_int(con) != _is_int_index(item_meta):
            # integer ids in one file, text in the other: compare as text, as the reader does
            item_meta.index = item_meta.index.astype(str)
            con.execute("CREATE TABLE t2 AS SELECT * REPLACE (CAST(i AS VARCHAR) AS i) FROM t")
            con.execute("DROP TABLE t")
            con.execute("ALTER TABLE t2 RENAME TO t")
        log(f"{n_raw:,} rows read; cleaning")
        if cfg.rating_threshold is not None:
            if not has_r:
                raise DataError(
                    f"{path.name.split('.')[0]}: --rating-threshold given but the data has no rating column"
                )
            con.execute("DELETE FROM t WHERE NOT (r >= ?)", [float(cfg.rating_threshold)])
        order = "ts, rn" if has_ts else "rn"
        if cfg.dedup != "none":
            desc = " DESC" if cfg.dedup == "last" else ""
            by = ", ".join(f"{c}{desc}" for c in order.split(", "))
            # chronological first (or last) copy of each (user, item) pair; ties in time go by file order
            con.execute(
                "CREATE TABLE d AS SELECT * FROM t "
                f"QUALIFY row_number() OVER (PARTITION BY u, i ORDER BY {by}) = 1"
            )
            con.execute("DROP TABLE t")
            con.execute("ALTER TABLE d RENAME TO t")
        _k_core(con, cfg.min_user_interactions, cfg.min_item_interactions, log)
        n_inter = con.execute("SELECT count(*) FROM t").fetchone()[0]
        if n_inter == 0:
            raise DataError(
                f"{path.name.split('.')[0]}: no interactions left after filtering (rating >= "
                f"{cfg.rating_threshold}, k-core {cfg.min_user_interactions}/{cfg.min_item_interactions}); "
                "loosen the filters"
            )
        # contiguous ids 1..n in raw-id order (VARCHAR compares bytewise = code point order, as Python)
        con.execute(
            "CREATE TABLE um AS SELECT u, row_number() OVER (ORDER BY u) AS uid, n FROM "
            "(SELECT u, count(*) AS n FROM t GROUP BY u)"
        )
        con.execute(
            "CREATE TABLE im AS SELECT i, row_number() OVER (ORDER BY i) AS iid "
            "FROM (SELECT DISTINCT i FROM t)"
        )
        ures = con.execute("SELECT u, n FROM um ORDER BY uid").fetchnumpy()
        user_raw, lengths = _raw_ids(ures["u"]), np.asarray(ures["n"], dtype=np.int64)
        item_raw = _raw_ids(con.execute("SELECT i FROM im ORDER BY iid").fetchnumpy()["i"])
        del ures
        log(f"{n_inter:,} interactions, {len(user_raw):,} users, {len(item_raw):,} items; writing")
        out.mkdir(parents=True, exist_ok=True)
        manifest = _write_loo(con, out, lengths, has_ts, has_r, order, log)
        from genrec.data.cleaning import _with_pad

        _save(out / "user_raw.npy", _with_pad(user_raw))
        _save(out / "item_raw.npy", _with_pad(item_raw))
        title, text, category = item_text(item_meta, item_raw)
        pad = np.array([""], dtype=object)
        for key, a in (("item_title", title), ("item_text", text), ("item_category", category)):
            if a is not None:
                _save(out / f"{key}.npy", np.concatenate([pad, a]).astype(str))
    finally:
        con.close()
        shutil.rmtree(work, ignore_errors=True)
    full = {
        "config": dataclasses.asdict(cfg),
        "n_raw": int(n_raw),
        "n_interactions": int(n_inter),
        "n_users": len(user_raw),
        "n_items": len(item_raw),
        "has_timestamps": has_ts,
        "has_ratings": has_r,
        **manifest,
        **(manifest_extra or {}),
        "name": path.name.split(".")[0],
        "protocol": cfg.protocol,
    }
    (out / "manifest.json").write_text(json.dumps(full, indent=2, default=str))
    log("done")
    return full


def _source(con, path: Path, mapping: dict, sep: str | None, header: bool, fields, required, log: _Log):
    """(SQL source with a file row number `rn` and the mapped columns, field -> column name)."""
    from genrec.data.readers.table import _is_parquet, _open_text, _sep_for, resolve_columns

    if _is_parquet(path):
        try:
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
        except Exception as e:  # pyarrow raises several types for a corrupt file
            raise DataError(f"{path}: not a readable Parquet file ({e})") from None
        cols = resolve_columns(path, header, {}, names, mapping, fields, required)
        scan = f"read_parquet({_sql_str(path)}, file_row_number = true)"
        return f"(SELECT *, file_row_number AS __rn FROM {scan}) AS s", cols
    sep = _sep_for(path, sep)
    with _open_text(path) as f:
        first = f.readline().rstrip("\r\n")
    if not first:
        raise DataError(f"{path}: empty file")
    head = next(csv.reader([first], delimiter=sep))
    names = head if header else [str(i) for i in range(len(head))]
    cols = resolve_columns(path, header, {}, names, mapping, fields, required)
    wanted = list(dict.fromkeys(cols.values()))
    log(f"staging the wanted columns of {path.name}")
    # every field as text (types are decided below, by the reader's rules); row order = file order while
    # insertion order is preserved, so rowid is the file row number
    con.execute("SET preserve_insertion_order = true")
    spec = "{" + ", ".join(f"{_sql_str(n)}: 'VARCHAR'" for n in names) + "}"
    try:
        con.execute(
            "CREATE TABLE staged AS SELECT "
            + ", ".join(_ident(c) for c in wanted)
            + f" FROM read_csv({_sql_str(path)}, delim = {_sql_str(sep)}, header = {str(header).lower()}, "
            f"columns = {spec}, quote = '\"', escape = '\"', auto_detect = false, nullstr = '')"
        )
    except Exception as e:  # duckdb.Error subclasses: a parse error with DuckDB's own line reference
        raise DataError(f"{path}: cannot parse as a table with separator {sep!r} ({e})") from None
    con.execute("SET preserve_insertion_order = false")
    return "(SELECT *, rowid AS __rn FROM staged) AS s", cols


_INTS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")


def _typed(con, path: Path, src: str, cols: dict) -> dict[str, str]:
    """SQL expression per internal column (u, i, ts, r) that types a source column as the reader does."""
    types = {r[0]: r[1].upper() for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
    fields = {
        k: f for k, f in (("u", "user"), ("i", "item"), ("ts", "timestamp"), ("r", "rating")) if f in cols
    }
    kind: dict[str, str] = {}  # int | float | text
    for key, fld in fields.items():
        ty = types[cols[fld]]
        if ty in _INTS or ty == "HUGEINT":
            kind[key] = "int"
        elif ty in ("FLOAT", "DOUBLE") or ty.startswith("DECIMAL"):
            kind[key] = "float"
        elif ty == "VARCHAR":
            kind[key] = "text"
        else:
            raise DataError(
                f"{path}: field {cols[fld]!r}: column type {ty} is not supported by --engine duckdb; "
                "store it as numbers or text, or use --engine memory"
            )
    # one scan decides how each text column reads, as pandas' parser would: all integers, all numbers, text
    text = [k for k in fields if kind[k] == "text"]
    probes = []
    for key in text:
        c = _ident(cols[fields[key]])
        probes += [
            f"bool_and(regexp_full_match({c}, '{_INT}')) FILTER (WHERE {c} IS NOT NULL)",
            f"bool_and(TRY_CAST({c} AS DOUBLE) IS NOT NULL) FILTER (WHERE {c} IS NOT NULL)",
        ]
    if probes:
        got = con.execute(f"SELECT {', '.join(probes)} FROM {src}").fetchone()
        for n, key in enumerate(text):
            all_int, all_num = (x is None or bool(x) for x in got[2 * n : 2 * n + 2])
            kind[key] = "int" if all_int else "float" if all_num else "text"
    out: dict[str, str] = {}
    for key, fld in fields.items():
        c, k = _ident(cols[fld]), kind[key]
        if key == "r":
            out[key] = f"CAST(TRY_CAST({c} AS DOUBLE) AS FLOAT)"
        elif k == "int":
            out[key] = f"CAST({c} AS BIGINT)"
        elif k == "float" and key == "ts":
            out[key] = f"CAST(floor(CAST({c} AS DOUBLE)) AS BIGINT)"
        elif k == "float":  # ids like 12.0 from a float column
            d = f"CAST({c} AS DOUBLE)"
            bad = f"error('field {_sql_str(cols[fld])[1:-1]}: expected an id, got ' || {c})"
            out[key] = f"CASE WHEN {d} = round({d}) THEN CAST({d} AS BIGINT) ELSE {bad} END"
        elif key == "ts":  # numbers where they parse, else ISO-8601 date/time (UTC unless it says otherwise)
            out[key] = (
                f"CAST(COALESCE(floor(TRY_CAST({c} AS DOUBLE)), "
                f"floor(epoch_us(TRY_CAST({c} AS TIMESTAMPTZ)) / 1000000.0)) AS BIGINT)"
            )
        else:
            out[key] = f"trim({c}, ' \t\r\n')"  # the reader strips ids read as text
    return out


_PROBLEMS = {
    "u": ("user", "missing user id"),
    "i": ("item", "missing item id"),
    "ts": ("timestamp", "missing timestamp, or neither unix seconds nor an ISO date/time"),
    "r": ("rating", "missing or not a number"),
}


def _check_nulls(con, path: Path, cols: dict, header: bool, keys: list[str]) -> None:
    """Missing ids, timestamps or bad numbers are errors, as in the reader; name the first bad row."""
    firsts = con.execute(
        "SELECT " + ", ".join(f"min(rn) FILTER (WHERE {k} IS NULL)" for k in keys) + " FROM t"
    ).fetchone()
    for k, row in zip(keys, firsts):
        if row is not None:
            fld, problem = _PROBLEMS[k]
            text = not str(path).lower().endswith((".parquet", ".pq"))
            where = f"line {row + 1 + int(header)}" if text else f"row {row + 1}"
            raise DataError(f"{path}: field {cols[fld]!r}: {where}: {problem}; fix that row or drop it")


def _item_is_int(con) -> bool:
    return con.execute("SELECT typeof(i) FROM t LIMIT 1").fetchone()[0] == "BIGINT"


def _is_int_index(meta) -> bool:
    import pandas as pd

    return pd.api.types.is_integer_dtype(meta.index.dtype)


def _raw_ids(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a.astype(np.int64) if np.issubdtype(a.dtype, np.integer) else a.astype(object)


def _k_core(con, min_user: int, min_item: int, log: _Log) -> None:
    """Iterative k-core: drop items, then users, below their threshold until nothing changes."""
    if min_user <= 0 and min_item <= 0:
        return
    rounds = 0
    while True:
        rounds += 1
        dropped = 0
        for col, k in (("i", min_item), ("u", min_user)):
            if k > 0:
                rare = f"SELECT {col} FROM t GROUP BY {col} HAVING count(*) < {int(k)}"
                dropped += con.execute(f"DELETE FROM t WHERE {col} IN ({rare})").fetchone()[0]
        log(f"k-core round {rounds}: {dropped:,} rows dropped")
        if dropped == 0:
            return


def _write_loo(con, out: Path, lengths: np.ndarray, has_ts: bool, has_r: bool, order: str, log: _Log) -> dict:
    """Stream the chronological interactions into the leave-one-out parts (genrec.data.splits)."""
    from tqdm import tqdm

    n_users = len(lengths)
    L = np.concatenate([[0], lengths])  # row = internal user id, row 0 empty
    ev = L >= 3
    eval_users = np.flatnonzero(ev)
    parts = {
        "train": (np.where(ev, L - 2, L), np.arange(n_users + 1)),
        "valid.history": (L[eval_users] - 2, eval_users),
        "valid.targets": (np.ones(len(eval_users), dtype=np.int64), eval_users),
        "test.history": (L[eval_users] - 1, eval_users),
        "test.targets": (np.ones(len(eval_users), dtype=np.int64), eval_users),
    }
    files: dict[str, list[tuple[str, _Npy]]] = {}
    for name, (lens, users) in parts.items():
        indptr = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens, out=indptr[1:])
        _save(out / f"{name}.indptr.npy", indptr)
        _save(out / f"{name}.users.npy", users.astype(np.int64))
        n = int(indptr[-1])
        fs = [("items", _Npy(out / f"{name}.items.npy", np.int64, n))]
        if has_ts:
            fs.append(("ts", _Npy(out / f"{name}.timestamps.npy", np.int64, n)))
        if has_r:
            fs.append(("r", _Npy(out / f"{name}.ratings.npy", np.float32, n)))
        files[name] = fs
    starts = np.concatenate([[0], np.cumsum(L)[:-1]])  # first global row of each user
    sel = ["um.uid", "im.iid"] + (["t.ts"] if has_ts else []) + (["t.r"] if has_r else [])
    query = (
        f"SELECT {', '.join(sel)} FROM t JOIN um USING (u) JOIN im USING (i) "
        f"ORDER BY um.uid, {', '.join('t.' + c for c in order.split(', '))}"
    )
    rel = con.sql(query)
    # duckdb 2.x names it to_arrow_reader, 1.x fetch_arrow_reader: both stream pyarrow record batches
    stream = getattr(rel, "to_arrow_reader", None) or rel.fetch_arrow_reader
    reader = stream(CHUNK_ROWS)
    total = int(L.sum())
    done = 0
    with tqdm(total=total, unit="rows", disable=not log.on, file=sys.stderr, mininterval=2) as bar:
        for batch in reader:
            uid = batch.column(0).to_numpy().astype(np.int64)
            cols = {"items": batch.column(1).to_numpy().astype(np.int64)}
            if has_ts:
                cols["ts"] = batch.column(2).to_numpy().astype(np.int64)
            if has_r:
                cols["r"] = batch.column(len(sel) - 1).to_numpy().astype(np.float32)
            pos = np.arange(done, done + len(uid)) - starts[uid]
            lens, evaluable = L[uid], ev[uid]
            masks = {
                "train": ~evaluable | (pos < lens - 2),
                "valid.history": evaluable & (pos < lens - 2),
                "valid.targets": evaluable & (pos == lens - 2),
                "test.history": evaluable & (pos < lens - 1),
                "test.targets": evaluable & (pos == lens - 1),
            }
            for name, m in masks.items():
                for key, f in files[name]:
                    f.write(cols[key][m])
            done += len(uid)
            bar.update(len(uid))
    for fs in files.values():
        for _, f in fs:
            f.close()
    if done != total:
        raise AssertionError(f"streamed {done} of {total} interactions")
    return {
        "n_train": int(parts["train"][0].sum()),
        "n_valid_users": len(eval_users),
        "n_test_users": len(eval_users),
    }


def load_table_dataset(
    path: Path,
    cfg: DataConfig,
    options: dict,
    extra_key: dict,
    cache: bool = True,
    memory_limit: str | None = None,
    progress: bool = False,
) -> Dataset:
    """The Dataset of one table file via DuckDB, cached where the in-memory engine caches it."""
    from genrec.data.cache import cached_path, hash_files

    path = Path(path)
    sources = [path] + ([Path(options["items"])] if options.get("items") else [])
    kwargs = dict(options, memory_limit=memory_limit or DEFAULT_MEMORY_LIMIT, progress=progress)
    name = path.name.split(".")[0]
    if not cache:
        tmp = Path(tempfile.mkdtemp(prefix="genrec-prepared-"))
        try:
            prepare_table(path, cfg, tmp, manifest_extra={"hash": None}, **kwargs)
            return Dataset.load(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    key = hash_files(sources, cfg, extra_key)
    final = cached_path(name, key)
    if not (final / "manifest.json").exists():
        tmp = final.with_name(final.name + f".tmp{os.getpid()}")
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            prepare_table(path, cfg, tmp, manifest_extra={"hash": key}, temp_dir=final.parent, **kwargs)
            try:  # atomic publish, as the in-memory engine does
                os.replace(tmp, final)
            except OSError:
                if not (final / "manifest.json").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    # mapped, as the arrays may not fit in memory; copy-on-write, so code that edits arrays in place works
    ds = Dataset.load(final, mmap_mode="c")
    ds.manifest["cache_path"] = str(final)
    return ds
