"""RecBole atomic files (format 'recbole'): NAME.inter + NAME.item with typed headers."""

from __future__ import annotations

import numpy as np
import pytest

from genrec.cli import main
from genrec.data.readers import read
from genrec.data.readers.recbole import read_item_file
from genrec.data.types import DataError

HEAD = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


@pytest.mark.slow
def test_ml100k_as_atomic_files_matches_movielens_reader(shared_data, tmp_path, capsys):
    """RecBole's own ml-100k.inter is u.data with a typed header; the two readers must agree."""
    d = tmp_path / "ml-100k"
    d.mkdir()
    body = (shared_data / "ml-100k" / "u.data").read_text(encoding="latin-1")
    (d / "ml-100k.inter").write_text(HEAD + body)
    item_head = "item_id:token\tmovie_title:token_seq\trelease_year:token\tgenre:token_seq\n"
    (d / "ml-100k.item").write_text(
        item_head + "1\tToy Story\t1995\tAnimation Children's Comedy\n"
        "2\tGoldenEye &amp; Co\t1995\tAction Adventure Thriller\n"
    )
    ref, got = read(shared_data / "ml-100k"), read(d)  # folder auto-detected by NAME.inter
    for col in ("user", "item", "rating", "timestamp"):
        assert np.array_equal(got.interactions[col].to_numpy(), ref.interactions[col].to_numpy()), col
    assert got.items.loc[2, "title"] == "GoldenEye & Co"
    assert got.items.loc[1, "categories"] == "Animation|Children's|Comedy"
    assert got.items.loc[1, "category"] == "Animation"
    assert main(["data", "prepare", "--data", str(d / "ml-100k.inter")]) == 0
    assert "943 users, 1,682 items, 100,000 interactions" in capsys.readouterr().out


@pytest.mark.slow
def test_real_recbole_style_item_file(shared_data):
    """amazon-beauty's item_description.csv has RecBole's Amazon .item layout (quoted category paths)."""
    meta = read_item_file(shared_data / "amazon-beauty" / "item_description.csv")
    assert len(meta) == 12_101 and (meta["title"] != "").sum() == 12_094
    assert meta.loc[1, "categories"] == "Beauty > Makeup > Face > Concealers & Neutralizers"
    assert meta.loc[1, "category"] == "Concealers & Neutralizers" and meta.loc[1, "brand"] == "COKA"
    assert meta["price"].notna().sum() == 11_516


def test_column_mapping_for_other_field_names(tmp_path):
    f = tmp_path / "s.inter"
    f.write_text("session_id:token\titem_id:token\ttimestamp:float\nS1\ta\t1.5\nS1\tb\t2.7\n")
    raw = read(f, columns="user=session_id")
    assert raw.interactions["user"].tolist() == ["S1", "S1"]
    assert raw.interactions["timestamp"].tolist() == [1, 2]


@pytest.mark.parametrize(
    "files, where",
    [
        ({"x.inter": HEAD + "1\t2\t3\t4\n1\t2\t3\t4\t5\n"}, "x.inter:3:"),  # too many fields
        ({"x.inter": HEAD + "1\t2\t3\t4\n1\t2\tgood\t4\n"}, "x.inter:3: field 'rating:float'"),
        ({"x.inter": HEAD + "1\t2\t3\tnoon\n"}, "x.inter:2: field 'timestamp:float'"),
        ({"x.inter": "user_id:token\tmovie:token\n1\t2\n"}, "x.inter:1: field 'item_id'"),  # missing column
        ({"x.inter": "user_id\titem_id\n1\t2\n"}, "x.inter:1: field 'user_id'"),  # untyped header
        (
            {"x.inter": HEAD + "1\t2\t3\t4\n", "x.item": "item_id:token\tprice:float\n2\tfree\n"},
            "x.item:2: field 'price:float'",
        ),
        (
            {"x.inter": HEAD + "1\t2\t3\t4\n", "x.item": "item_id:token\ttitle:token\n2\tA\n2\tB\n"},
            "x.item:3: field 'item_id:token'",
        ),
    ],
)
def test_bad_atomic_files_name_file_line_field(tmp_path, capsys, files, where):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(DataError) as e:
        read(tmp_path)
    assert where in str(e.value)
    assert main(["data", "prepare", "--data", str(tmp_path)]) == 2
    assert where in capsys.readouterr().err
