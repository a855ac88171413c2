"""The amazon-beauty folder (S3-Rec/P5/TiCoSeRec/PLRec files joined as its PROVENANCE.md explains)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from genrec.cli import main
from genrec.data.cache import prepare
from genrec.data.readers import read
from genrec.data.types import DataConfig, DataError


@pytest.fixture(scope="module")
def beauty_raw(shared_data):
    return read(shared_data / "amazon-beauty")


@pytest.mark.slow
def test_real_folder_counts_ids_and_text(beauty_raw, shared_data):
    df = beauty_raw.interactions
    assert beauty_raw.name == "amazon-beauty"
    assert (len(df), df["user"].nunique(), df["item"].nunique()) == (198_502, 22_363, 12_101)
    # GRAM's user_sequence.txt is Beauty.txt mapped to reviewerID/ASIN by an independent pipeline
    gram_file = shared_data / "amazon-beauty" / "user_sequence.txt"
    gram = [ln.split() for ln in gram_file.read_text().splitlines()]
    assert df["user"].tolist() == [p[0] for p in gram for _ in p[1:]]
    assert df["item"].tolist() == [a for p in gram for a in p[1:]]
    # day-granular unix times inside the span stated in PROVENANCE.md (2002-06-12 .. 2014-07-23)
    ts = df["timestamp"].to_numpy()
    assert ts.min() == 1023840000 and ts.max() == 1406073600 and (ts % 86400 == 0).all()
    meta = beauty_raw.items
    assert len(meta) == 12_101 and set(meta.index) == set(df["item"])
    assert (meta["title"] != "").sum() == 12_094 and (meta["brand"] != "").sum() == 10_003
    assert meta["price"].notna().sum() == 11_516
    assert not meta["title"].str.contains("&amp;|&#39;|&quot;").any()  # entities decoded
    assert meta["title"].str.contains("&").any()
    row = meta.loc[meta["categories"].str.count(">") >= 3].iloc[0]
    assert row["category"] == row["categories"].split(" > ")[-1] and row["categories"].startswith("Beauty > ")


@pytest.mark.slow
def test_time_sort_reproduces_file_order(beauty_raw):
    df = beauty_raw.interactions.assign(order=np.arange(len(beauty_raw.interactions)))
    # Beauty.txt has one line per user, so its order is grouped by user and chronological in each line
    line = np.cumsum(np.r_[True, df["user"].to_numpy()[1:] != df["user"].to_numpy()[:-1]])
    srt = df.assign(line=line).sort_values(["line", "timestamp", "order"], kind="stable")
    assert (srt["order"].to_numpy() == np.arange(len(df))).all()
    # and the pipeline (which sorts by raw user, time, file order) keeps each user's Beauty.txt order
    ds = prepare(beauty_raw, DataConfig(), cache=False)
    assert (ds.n_users, ds.n_items, ds.manifest["n_interactions"]) == (22_363, 12_101, 198_502)
    assert ds.item_title is not None and ds.item_category is not None
    for u in ("A1YJEY40YUW4SE", "A60XNB876KYML"):
        hist = ds.full_history(np.array([ds.user_ids.index(u)]))
        got = ds.item_raw[hist.items].tolist()
        assert got == df.loc[df["user"] == u, "item"].tolist()


@pytest.mark.slow
def test_cli_prepare_folder_and_sequences_file(shared_data, tmp_path, capsys):
    assert main(["data", "prepare", "--data", str(shared_data / "amazon-beauty")]) == 0
    out = capsys.readouterr().out
    assert "22,363 users, 12,101 items, 198,502 interactions" in out and "item titles: yes" in out
    # the same sequences without ids/times/text: the plain S3-Rec format
    assert (
        main(
            [
                "data",
                "prepare",
                "--data",
                str(shared_data / "amazon-beauty" / "Beauty.txt"),
                "--format",
                "sequences",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "22,363 users, 12,101 items, 198,502 interactions" in out and "timestamps: no" in out


# --- hand-made bad folders -----------------------------------------------------------------------------
ASINS = ["B0A", "B0B", "B0C", "A0D"]  # sorted: A0D(rank 1), B0A(2), B0B(3), B0C(4)


def _folder(tmp_path: Path, **override: str) -> Path:
    d = tmp_path / "beauty"
    d.mkdir()
    files = {
        "Beauty.txt": "1 1 2 3\n2 4 1\n",
        "datamaps.json": json.dumps(
            {
                "id2user": {"1": "U1", "2": "U2"},
                "user2id": {"U1": "1", "U2": "2"},
                "id2item": {str(i + 1): a for i, a in enumerate(ASINS)},
                "item2id": {a: str(i + 1) for i, a in enumerate(ASINS)},
            }
        ),
        # rank ids: B0A=2, B0B=3, B0C=4, A0D=1
        "Beauty_item_org_rank.txt": "1 2 3 4\n2 1 2\n",
        "Beauty_time_org_rank.txt": "1 100 200 200\n2 50 60\n",
        "item_description.csv": "item_id:token\ttitle:token\tcategories:token_seq\tprice:float\tbrand:token\n"
        "2\tA &amp; B\t'Beauty', 'Skin'\t1.5\tAcme\n"
        '1\tD\t"\'Beauty\', ""Men\'s"""\t\tZed\n',
    }
    files.update(override)
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def test_small_folder_joins(tmp_path):
    raw = read(_folder(tmp_path))
    df = raw.interactions
    assert df["user"].tolist() == ["U1"] * 3 + ["U2"] * 2
    assert df["item"].tolist() == ["B0A", "B0B", "B0C", "A0D", "B0A"]
    assert df["timestamp"].tolist() == [100, 200, 200, 50, 60]
    assert raw.items.loc["B0A", "title"] == "A & B" and raw.items.loc["A0D", "category"] == "Men's"


TIME_ERR = "Beauty_time_org_rank.txt:1: field 'timestamp'"


@pytest.mark.parametrize(
    "override, where",
    [
        ({"Beauty.txt": "1 1 2 3\n2 4 x1\n"}, "Beauty.txt:2: field 'item'"),
        ({"Beauty.txt": "1 1 2 3\n2 9 1\n"}, "Beauty.txt:2: field 'item'"),
        ({"Beauty.txt": "1 1 2 3\n\n7 4 1\n"}, "Beauty.txt:3: field 'user'"),
        ({"datamaps.json": '{"id2user": {"1": "U1",\n "2" "U2"}}'}, "datamaps.json:2:"),
        ({"Beauty_time_org_rank.txt": "1 100 200\n2 50 60\n"}, TIME_ERR),
        ({"Beauty_time_org_rank.txt": "1 100 200 2o0\n2 50 60\n"}, TIME_ERR),
        ({"Beauty_time_org_rank.txt": "1 300 200 200\n2 50 60\n"}, "Beauty.txt:1: field 'item'"),
        ({"item_description.csv": "item_id:token\ttitle:token\n2\tA\textra\n"}, "item_description.csv:2:"),
        (
            {"item_description.csv": "item_id:token\ttitle:token\n2\tA\n99\tB\n"},
            "item_description.csv:3: field 'item_id'",
        ),
        ({"item_description.csv": "title:token\nA\n"}, "item_description.csv:1: field 'item_id'"),
        (
            {"item_description.csv": "item_id:token\tprice:float\n2\tcheap\n"},
            "item_description.csv:2: field 'price'",
        ),
    ],
)
def test_bad_files_name_file_line_field(tmp_path, capsys, override, where):
    d = _folder(tmp_path, **override)
    with pytest.raises(DataError) as e:
        read(d)
    assert where in str(e.value)
    assert main(["data", "prepare", "--data", str(d)]) == 2
    assert where in capsys.readouterr().err
