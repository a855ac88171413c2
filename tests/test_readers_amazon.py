"""Amazon review dumps (format 'amazon'): JSON lines, gzipped or not; 2014 python-literal or JSON meta."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from genrec.cli import main
from genrec.data.readers import read
from genrec.data.types import DataError

REVIEWS = [
    {"reviewerID": "A1", "asin": "B01", "overall": 5.0, "unixReviewTime": 1300000000, "reviewText": "x"},
    {"reviewerID": "A1", "asin": "B02", "overall": 3.0, "unixReviewTime": 1300086400},
    {"reviewerID": "A2", "asin": "B01", "overall": 4.0, "unixReviewTime": 1300000000},
    {"reviewerID": "A2", "asin": "B03", "overall": 1.0, "unixReviewTime": 1200000000},
    {"reviewerID": "A2", "asin": "B02", "overall": 2.0, "unixReviewTime": 1310000000},
]
# 2014 metadata: python dict literals (single quotes), categories = list of paths
META_2014 = [
    "{'asin': 'B01', 'title': 'Rose &amp; Oud Oil', 'price': 12.5, 'brand': 'Acme', "
    "'categories': [['Beauty', 'Fragrance', \"Women's\"], ['Beauty', 'Gifts']]}",
    "{'asin': 'B02', 'title': 'Comb', 'categories': [['Beauty', 'Tools']], 'salesRank': {'Beauty': 3}}",
]


def _gz(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def _folder(tmp_path: Path, reviews: list[str] | None = None, meta: list[str] | None = None) -> Path:
    d = tmp_path / "amazon-beauty-raw"
    d.mkdir()
    _gz(d / "reviews_Beauty_5.json.gz", reviews if reviews is not None else [json.dumps(r) for r in REVIEWS])
    _gz(d / "meta_Beauty.json.gz", meta if meta is not None else META_2014)
    return d


def test_gzipped_reviews_and_2014_meta(tmp_path, capsys):
    d = _folder(tmp_path)
    raw = read(d)  # folder auto-detected from reviews_*.json.gz
    df = raw.interactions
    assert df["user"].tolist() == ["A1", "A1", "A2", "A2", "A2"]
    assert df["item"].tolist() == ["B01", "B02", "B01", "B03", "B02"]
    assert df["timestamp"].tolist()[3] == 1200000000 and df["rating"].tolist()[0] == 5.0
    m = raw.items
    assert m.loc["B01", "title"] == "Rose & Oud Oil" and m.loc["B01", "brand"] == "Acme"
    assert m.loc["B01", "categories"] == "Beauty > Fragrance > Women's"
    assert m.loc["B01", "category"] == "Women's"
    assert m.loc["B01", "price"] == 12.5 and m.loc["B02", "category"] == "Tools"
    assert main(["data", "prepare", "--data", str(d), "--rating-threshold", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 users, 2 items, 4 interactions" in out and "item titles: yes" in out


def test_plain_jsonl_2018_and_2023_fields(tmp_path):
    f = tmp_path / "Beauty_5.json"
    review = {"reviewerID": "U", "asin": "I", "overall": 4.0, "unixReviewTime": 5}
    f.write_text(json.dumps(review) + "\n\n")
    meta = tmp_path / "meta.json"
    meta.write_text(
        json.dumps(
            {
                "asin": "I",
                "title": "T",
                "category": ["Beauty", "Skin"],
                "price": "$1,299.00",
                "description": ["Soft", "&quot;nice&quot;"],
            }
        )
        + "\n"
    )
    raw = read(f, items=meta)
    assert raw.items.loc["I", "price"] == 1299.0 and raw.items.loc["I", "description"] == 'Soft "nice"'
    f23 = tmp_path / "All_Beauty.jsonl"
    f23.write_text(
        json.dumps(
            {"user_id": "U", "asin": "I2", "parent_asin": "P", "rating": 5.0, "timestamp": 1588687728923}
        )
        + "\n"
    )
    raw = read(f23)
    assert raw.interactions["item"].tolist() == ["P"]
    assert raw.interactions["timestamp"].tolist() == [1588687728]


@pytest.mark.parametrize(
    "reviews, meta, where",
    [
        (
            ['{"reviewerID": "A1", "asin": "B01", "unixReviewTime": 1}', '{"reviewerID": "A1", "asin": '],
            None,
            "reviews_Beauty_5.json.gz:2: invalid JSON",
        ),
        (['{"asin": "B01", "unixReviewTime": 1}'], None, "reviews_Beauty_5.json.gz:1: field 'reviewerID'"),
        (
            [
                '{"reviewerID": "A", "asin": "B", "unixReviewTime": 1}',
                "",
                '{"reviewerID": "A", "asin": "B", "unixReviewTime": "May 5"}',
            ],
            None,
            "reviews_Beauty_5.json.gz:3: field 'unixReviewTime'",
        ),
        (
            ['{"reviewerID": "A", "asin": "B", "unixReviewTime": 1, "overall": "five"}'],
            None,
            "reviews_Beauty_5.json.gz:1: field 'overall'",
        ),
        (
            None,
            ["{'asin': 'B01', 'title': 'ok'}", "{'asin': 'B02', 'title': 'broken"],
            "meta_Beauty.json.gz:2: neither JSON nor a python dict literal",
        ),
        (None, ["{'title': 'no id'}"], "meta_Beauty.json.gz:1: field 'asin'"),
    ],
)
def test_bad_dumps_name_file_line_field(tmp_path, capsys, reviews, meta, where):
    d = _folder(tmp_path, reviews, meta)
    with pytest.raises(DataError) as e:
        read(d)
    assert where in str(e.value)
    assert main(["data", "prepare", "--data", str(d)]) == 2
    assert where in capsys.readouterr().err


def test_truncated_gzip_is_a_clear_error(tmp_path):
    d = _folder(tmp_path)
    blob = (d / "reviews_Beauty_5.json.gz").read_bytes()
    (d / "reviews_Beauty_5.json.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=r"reviews_Beauty_5.json.gz:\d+: cannot read"):
        read(d)
