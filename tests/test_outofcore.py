"""The DuckDB (out-of-core) engine writes the same processed dataset as the in-memory engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("duckdb")

from genrec.cli import main  # noqa: E402
from genrec.data.dataset import Dataset  # noqa: E402
from genrec.data.sources import SourceSpec, choose_engine, load_dataset  # noqa: E402
from genrec.data.types import DataConfig, DataError  # noqa: E402


def log(n: int = 4000, seed: int = 0, string_ids: bool = False) -> pd.DataFrame:
    """Skewed users and items, repeated (user, item) pairs, many ties in time, users/items failing k-core."""
    rng = np.random.default_rng(seed)
    users = np.minimum(rng.zipf(1.6, n), 150)
    items = np.minimum(rng.zipf(1.4, n), 300)
    df = pd.DataFrame(
        {
            "uid": users,
            "sku": items,
            "ts": rng.integers(1_600_000_000, 1_600_000_040, n),  # 40 distinct seconds: ties everywhere
            "stars": rng.integers(1, 11, n) / 2.0,
        }
    )
    if string_ids:  # ids whose text order differs from their number order, with spaces to strip
        df["uid"] = "u" + df["uid"].astype(str)
        df["sku"] = " x" + (df["sku"] * 7 % 301).astype(str)
    return df


def assert_same(a: Dataset, b: Dataset) -> None:
    for name in ("user_raw", "item_raw", "item_title", "item_text", "item_category"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            # text ids: object arrays in memory, fixed-width unicode once saved (as in every cached dataset)
            x, y = (v.astype(str) if v.dtype == object else v for v in (x, y))
            assert x.dtype == y.dtype and np.array_equal(x, y), name
    parts = ("train", "valid.history", "valid.targets", "test.history", "test.targets")
    for part in parts:
        ha, hb = _part(a, part), _part(b, part)
        for f in ("indptr", "items", "timestamps", "users", "ratings"):
            x, y = getattr(ha, f), getattr(hb, f)
            assert (x is None) == (y is None), (part, f)
            if x is not None:
                assert x.dtype == y.dtype and np.array_equal(x, y), (part, f)
    skip = ("name", "protocol", "cache_path")  # a saved manifest carries these too
    assert {k: v for k, v in a.manifest.items() if k not in skip} == {
        k: v for k, v in b.manifest.items() if k not in skip
    }


def _part(ds: Dataset, part: str):
    head, _, tail = part.partition(".")
    obj = getattr(ds, head)
    return getattr(obj, tail) if tail else obj


def both(path: Path, cfg: DataConfig, **options) -> tuple[Dataset, Dataset]:
    spec = SourceSpec(data=str(path), options=options)
    mem = load_dataset(spec, cfg, cache=False, engine="memory")
    duck = load_dataset(spec, cfg, cache=False, engine="duckdb")
    return mem, duck


CONFIGS = [
    DataConfig(),
    DataConfig(dedup="last", min_user_interactions=5, min_item_interactions=4),
    DataConfig(dedup="none", rating_threshold=3.0, min_user_interactions=3),
]


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
@pytest.mark.parametrize("string_ids", [False, True])
def test_same_arrays_as_memory_engine(tmp_path, suffix, string_ids):
    df = log(string_ids=string_ids)
    path = tmp_path / f"events.{suffix}"
    if suffix == "csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, row_group_size=700)  # several row groups: file order across them
    for cfg in CONFIGS:
        mem, duck = both(path, cfg)
        assert duck.manifest["n_interactions"] > 100 and len(duck.test) > 5
        assert_same(mem, duck)


def test_without_timestamps_or_ratings(tmp_path):
    """File order alone is the order; dedup keeps the first or last copy in the file."""
    path = tmp_path / "events.parquet"
    log(1500)[["uid", "sku"]].to_parquet(path, row_group_size=400)
    for cfg in (DataConfig(), DataConfig(dedup="last", min_item_interactions=2)):
        mem, duck = both(path, cfg)
        assert duck.train.timestamps is None and duck.train.ratings is None
        assert_same(mem, duck)
    with pytest.raises(DataError, match="no rating column"):
        load_dataset(SourceSpec(data=str(path)), DataConfig(rating_threshold=3), cache=False, engine="duckdb")


def test_headerless_dates_mapping_and_item_table(tmp_path):
    ev = tmp_path / "events.tsv"
    rows = ["a\tx1\t2020-01-01T10:00:00Z\t5", "a\tx2\t2020-01-02\t4", "b\tx1\t1577900000\t3"]
    rows += ["b\tx3\t2020-01-04\t1", "c\tx2\t2020-01-05\t2", "c\tx3\t2020-01-05\t2", "a\tx3\t1577.9e6\t1"]
    rows += ["c\tx1\t2020-01-05\t3", "b\tx2\t2020-01-05T00:00:00+01:00\t4", "a\tx1\t2020-01-03\t2"]
    ev.write_text("\n".join(rows) + "\n")
    items = tmp_path / "items.csv"
    items.write_text("sku,name,genres\nx1,One,A|B\nx2,Two,C\nx9,Nine,D\n")
    opts = {"columns": "user=0,item=1,timestamp=2,rating=3", "header": False}
    for cfg in (DataConfig(), DataConfig(dedup="last", min_item_interactions=3)):
        mem, duck = both(ev, cfg, **opts)
        assert_same(mem, duck)
    opts = {"items": str(items), "item_columns": "item=sku,title=name,categories=genres"}
    ev2 = tmp_path / "events2.csv"
    ev2.write_text("user,item,time\n1,x1,3\n1,x2,2\n2,x1,1\n1,x3,1\n2,x2,1\n2,x1,0\n")
    mem, duck = both(ev2, DataConfig(), **opts)
    assert_same(mem, duck)
    assert list(duck.item_title) == ["", "One", "Two", ""]


def test_integer_items_with_text_item_table(tmp_path):
    """Integer ids in the log and zero-padded text ids in the item table are compared as text."""
    ev = tmp_path / "events.csv"
    ev.write_text("user,item,timestamp\n1,10,1\n1,9,2\n1,010,3\n2,9,1\n2,10,2\n2,11,3\n")
    items = tmp_path / "items.csv"
    items.write_text("item,title\n010,Ten\n9,Nine\n")
    mem, duck = both(ev, DataConfig(), items=str(items))
    assert_same(mem, duck)


def test_cached_folders_are_byte_identical(tmp_path, monkeypatch):
    path = tmp_path / "events.parquet"
    log(string_ids=True).to_parquet(path)
    spec = SourceSpec(data=str(path))
    cfg = CONFIGS[1]
    folders = {}
    for engine in ("memory", "duckdb"):
        monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / engine))
        folders[engine] = Path(load_dataset(spec, cfg, engine=engine).manifest["cache_path"])
    mem, duck = folders["memory"], folders["duckdb"]
    assert mem.name == duck.name  # one cache key for both engines
    names = sorted(p.name for p in mem.iterdir())
    assert names == sorted(p.name for p in duck.iterdir())
    for n in names:
        assert (mem / n).read_bytes() == (duck / n).read_bytes(), n
    # a second load reuses the cache, memory-mapped
    again = load_dataset(spec, cfg, engine="duckdb")
    assert not again.train.items.flags.owndata


def test_unsupported_options_are_clear_errors(tmp_path):
    path = tmp_path / "events.csv"
    log(200).to_csv(path, index=False)
    spec = SourceSpec(data=str(path))
    with pytest.raises(DataError, match=r"--protocol loo.*--engine memory"):
        load_dataset(spec, DataConfig(protocol="temporal"), cache=False, engine="duckdb")
    with pytest.raises(DataError, match="table file"):
        load_dataset(SourceSpec(data=str(tmp_path)), DataConfig(), cache=False, engine="duckdb")
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,timestamp\n1,2,3\n,4,5\n")
    with pytest.raises(DataError, match=r"bad.csv: field 'user': line 3: missing user id"):
        load_dataset(SourceSpec(data=str(bad)), DataConfig(), cache=False, engine="duckdb")


def test_auto_engine_threshold(tmp_path, monkeypatch):
    from genrec.data import outofcore

    path = tmp_path / "events.csv"
    log(200).to_csv(path, index=False)
    spec = SourceSpec(data=str(path))
    assert choose_engine(spec, DataConfig(), "auto") == "memory"  # below the size threshold
    monkeypatch.setattr(outofcore, "AUTO_MIN_BYTES", 1)
    assert choose_engine(spec, DataConfig(), "auto") == "duckdb"
    assert choose_engine(spec, DataConfig(protocol="temporal"), "auto") == "memory"  # unsupported option
    assert choose_engine(SourceSpec(data=str(tmp_path)), DataConfig(), "auto") == "memory"  # a folder


def test_cli_engine_flag(tmp_path, capsys):
    path = tmp_path / "events.csv"
    log(500).to_csv(path, index=False)
    assert (
        main(["data", "prepare", "--data", str(path), "--engine", "duckdb", "--memory-limit", "500MB"]) == 0
    )
    out = capsys.readouterr().out
    assert "interactions" in out and "cached at" in out
    assert main(["data", "prepare", "--data", str(path), "--engine", "duckdb", "--protocol", "users"]) == 2
    assert "--protocol loo" in capsys.readouterr().err


@pytest.mark.slow
def test_real_movielens_ratings_csv(shared_data):
    path = shared_data / "ml-latest-small" / "ratings.csv"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    mem, duck = both(path, DataConfig(min_user_interactions=5, min_item_interactions=5))
    assert_same(mem, duck)
