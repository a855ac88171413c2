"""Generic CSV/TSV/Parquet reader (format 'table') with a column mapping and an optional item table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genrec.cli import main
from genrec.data.readers import read
from genrec.data.types import DataError


@pytest.mark.slow
def test_real_movielens_csv_as_table_matches_ml_reader(shared_data):
    folder = shared_data / "ml-latest-small"
    ref = read(folder)  # the MovieLens reader
    mapping = "user=userId,item=movieId,timestamp=timestamp,rating=rating"
    got = read(
        folder / "ratings.csv",
        "table",
        columns=mapping,
        items=folder / "movies.csv",
        item_columns="title=title,categories=genres",
    )
    cols = ["user", "item", "rating", "timestamp"]
    pd.testing.assert_frame_equal(got.interactions[cols], ref.interactions[cols], check_dtype=False)
    assert got.items.loc[1, "title"] == "Toy Story (1995)" and "Animation" in got.items.loc[1, "categories"]
    # unmapped fields are guessed from the header (userId, movieId, timestamp, rating)
    guessed = read(folder / "ratings.csv")
    assert (guessed.interactions["item"].to_numpy() == ref.interactions["item"].to_numpy()).all()


def test_mapping_dates_strings_and_item_table(tmp_path, capsys):
    ev = tmp_path / "events.csv"
    ev.write_text(
        "uid,sku,ts,stars\r\na,x1,2020-01-01T10:00:00Z,5\r\na,x2,2020-01-02,4\r\n"
        "b,x1,1577900000,3\r\nb,x3,2020-01-04,1\r\nc,x2,2020-01-05,2\r\nc,x3,2020-01-06,2\r\n"
    )
    items = tmp_path / "items.tsv"
    items.write_text("sku\tname\tgenre\tprice\nx1\tOne\tA|B\t3.5\nx2\tTwo\tB\t\nx3\tThree\tC\t1\n")
    raw = read(
        ev,
        columns="user=uid,item=sku,timestamp=ts,rating=stars",
        items=items,
        item_columns="title=name,categories=genre",
    )
    df = raw.interactions
    assert df["user"].tolist() == ["a", "a", "b", "b", "c", "c"]
    assert df["timestamp"].tolist()[:3] == [1577872800, 1577923200, 1577900000]
    assert df["rating"].tolist()[0] == 5.0
    assert raw.items.loc["x2", "title"] == "Two" and np.isnan(raw.items.loc["x2", "price"])
    cols = "user=uid,item=sku,timestamp=ts,rating=stars"
    assert (
        main(
            [
                "data",
                "prepare",
                "--data",
                str(ev),
                "--columns",
                cols,
                "--items",
                str(items),
                "--item-columns",
                "title=name,categories=genre",
            ]
        )
        == 0
    )
    assert "3 users, 3 items, 6 interactions" in capsys.readouterr().out
    # the mapping is part of the cache key: a different rating column gives a different dataset
    assert main(["data", "prepare", "--data", str(ev), "--columns", cols, "--rating-threshold", "3"]) == 0
    assert "2 users, 2 items, 3 interactions" in capsys.readouterr().out


def test_no_header_positions_and_parquet(tmp_path):
    f = tmp_path / "log.tsv"
    f.write_text("7\t100\t5\n7\t101\t6\n8\t100\t7\n")
    raw = read(f, columns="user=0,item=1,timestamp=2", header=False)
    assert raw.interactions["item"].tolist() == [100, 101, 100]
    assert raw.interactions["timestamp"].tolist() == [5, 6, 7]
    pq = tmp_path / "log.parquet"
    pd.DataFrame({"user_id": ["u1", "u1"], "item_id": [3, 4], "timestamp": [1.5, 2.0]}).to_parquet(pq)
    raw = read(pq)  # auto-detected, columns guessed
    assert raw.interactions["user"].tolist() == ["u1", "u1"]
    assert raw.interactions["timestamp"].tolist() == [1, 2]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "name, text, args, where",
    [
        ("a.csv", "uid,iid,ts\n1,2,3\n1,2,3,4\n", [], "a.csv:3:"),  # too many fields
        ("a.csv", "uid,iid,ts\n1,2,3\n1,,4\n", [], "a.csv:3: field 'iid'"),  # empty id
        ("a.csv", "uid,iid,ts\n1,2,3\n\n1,2,yesterday\n", [], "a.csv:4: field 'ts'"),  # non-numeric time
        (
            "a.csv",
            "uid,iid,ts,r\n1,2,3,4\n1,2,3,five\n",
            ["--columns", "user=uid,item=iid,timestamp=ts,rating=r"],
            "a.csv:3: field 'r'",
        ),
        (
            "a.csv",
            "uid,iid,ts\n1,2,3\n",
            ["--columns", "user=uid,item=item_id,timestamp=ts"],
            "a.csv:1: field 'item_id'",
        ),  # mapped column missing from the header
        ("a.csv", "who,what\nx,y\n", ["--sep", ","], "a.csv:1: field 'user'"),  # nothing to guess from
        (
            "a.tsv",
            "1\t2\t3\n1\t2\n",
            ["--no-header", "--columns", "user=0,item=1,timestamp=2"],
            "a.tsv:2: field 'timestamp (column 2)'",
        ),
    ],
)
def test_bad_tables_name_file_line_field(tmp_path, capsys, name, text, args, where):
    p = _write(tmp_path, name, text)
    base = ["--columns", "user=uid,item=iid,timestamp=ts"] if not args else []
    assert main(["data", "prepare", "--data", str(p), *base, *args]) == 2
    err = capsys.readouterr().err
    assert where in err, err


def test_bad_parquet_and_options(tmp_path, capsys):
    pq = tmp_path / "log.parquet"
    pd.DataFrame({"user_id": [1, 2], "item_id": [3, 4], "timestamp": ["2020-01-01", "soon"]}).to_parquet(pq)
    with pytest.raises(DataError, match=r"log.parquet: field 'timestamp': row 2:"):
        read(pq)
    with pytest.raises(DataError, match="unknown field 'usr'"):
        read(pq, columns="usr=user_id")
    assert (
        main(["data", "prepare", "--data", str(tmp_path), "--format", "sequences", "--columns", "user=a"])
        == 2
    )
    assert "does not take --columns" in capsys.readouterr().err
    ok = _write(tmp_path, "ok.csv", "user_id,item_id\n1,3\n")
    items = _write(tmp_path, "items.csv", "item_id,title\n3,A\n3,B\n")
    with pytest.raises(DataError, match=r"items.csv:3: field 'item_id'"):
        read(ok, items=items)
