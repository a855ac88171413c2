"""MovieLens (100K, 1M, CSV layout) and plain sequence readers: real files and hand-made bad files."""

from __future__ import annotations

import pytest

from genrec.cli import main
from genrec.data.readers import read
from genrec.data.types import DataError


@pytest.mark.slow
def test_real_movielens_folders(shared_data):
    r = read(shared_data / "ml-100k")
    assert len(r.interactions) == 100_000 and r.interactions["user"].nunique() == 943
    assert r.items.loc[1, "title"] == "Toy Story (1995)" and "Animation" in r.items.loc[1, "categories"]
    r = read(shared_data / "ml-1m-u2999")
    assert len(r.interactions) == 487_650 and r.interactions["user"].nunique() == 2_999
    # ml-latest-small has CRLF line endings and quoted titles with commas
    assert (shared_data / "ml-latest-small" / "ratings.csv").read_bytes()[:40].count(b"\r\n") == 1
    r = read(shared_data / "ml-latest-small")
    df = r.interactions
    assert (len(df), df["user"].nunique(), df["item"].nunique()) == (100_836, 610, 9_724)
    assert df["timestamp"].dtype.kind == "i" and df["rating"].max() == 5.0
    assert r.items.loc[11, "title"] == "American President, The (1995)"


H = "userId,movieId,rating,timestamp\r\n"
BAD = [
    ("u.data", "1\t2\t3\t881250949\n1\t2\tx\t881250949\n", "u.data:2: field 'rating'"),
    ("u.data", "1\t2\t3\t881250949\n1\t2\t3\n", "u.data:2: field 'timestamp'"),
    ("u.data", "1\t2\t3\t881250949\n\n1\t2\t3\t4\t5\n", "u.data:3: wrong number of fields"),
    ("u.data", "1\t2\t3\t881250949\t9\n1\t2\t3\t4\n", "u.data:1: wrong number of fields"),  # not an index
    ("u.data", "1\tB2\t3\t881250949\n", "u.data:1: field 'item_id'"),
    ("ratings.dat", "1::2::3::4\n1::2::3::4::5\n", "ratings.dat:2: wrong number of fields"),
    ("ratings.dat", "1::2::3::4\n1::2::3::noon\n", "ratings.dat:2: field 'Timestamp'"),
    ("ratings.csv", H + "1,2,3.5,100\r\n1,abc,3.5,100\r\n", "ratings.csv:3: field 'movieId'"),
    ("ratings.csv", H + "1,2,3.5,100\r\n1,2,3.5\r\n", "ratings.csv:3: field 'timestamp'"),
    ("ratings.csv", H + "1,2,3.5,100,1\r\n", "ratings.csv:2: wrong number of fields"),
    ("ratings.csv", "user,movie,rating,timestamp\n1,2,3.5,100\n", "ratings.csv:1: header"),
]


@pytest.mark.parametrize("name, text, where", BAD)
def test_bad_movielens_files(tmp_path, capsys, name, text, where):
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError) as e:
        read(tmp_path)
    assert where in str(e.value)
    assert main(["data", "prepare", "--data", str(tmp_path)]) == 2
    assert where in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, text, where",
    [
        (
            "movies.csv",
            'movieId,title,genres\r\n2,"A, The (1999)",Drama\r\nx,B,C\r\n',
            "movies.csv:3: field 'movieId'",
        ),
        ("movies.csv", "movieId,title,genres\n2,A,Drama,Extra\n", "movies.csv:2: wrong number of fields"),
        ("movies.csv", "id,title,genres\n2,A,Drama\n", "movies.csv:1: header"),
    ],
)
def test_bad_movies_csv(tmp_path, name, text, where):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,3.5,100\n")
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=where):
        read(tmp_path)


def test_bad_item_files_latin1_and_dat(tmp_path):
    d = tmp_path / "k"
    d.mkdir()
    (d / "u.data").write_text("1\t2\t3\t4\n")
    good = "2|Caf\xe9 (1995)|01-Jan-1995||u".encode("latin-1") + b"|0" * 19 + b"\n"
    (d / "u.item").write_bytes(good + b"x|B" + b"|" * 22 + b"\n")
    with pytest.raises(DataError, match=r"u.item:2: field 'movie_id'"):
        read(d)
    (d / "u.item").write_bytes(good)
    assert read(d).items.loc[2, "title"] == "Café (1995)"  # latin-1 decoded


@pytest.mark.parametrize(
    "text, where",
    [
        ("1 2 3\n2 4 x\n", "s.txt:2: field 'item'"),
        ("1 2 3\n\n-1 4 5\n", "s.txt:3: field 'user'"),
        ("1 2 3\n7\n", "s.txt:2: field 'item'"),  # a user with no items
    ],
)
def test_bad_sequence_files(tmp_path, capsys, text, where):
    f = tmp_path / "s.txt"
    f.write_text(text)
    assert main(["data", "prepare", "--data", str(f), "--format", "sequences"]) == 2
    assert where in capsys.readouterr().err


def test_sequence_file_not_utf8(tmp_path):
    f = tmp_path / "s.txt"
    f.write_bytes(b"1 2 3\n2 \xff\xfe 4\n")
    with pytest.raises(DataError, match="s.txt: not UTF-8"):
        read(f, "sequences")


def test_txt_file_is_read_as_sequences_without_format(tmp_path):
    f = tmp_path / "Toys_and_Games.txt"
    f.write_text("1 10 11 12\n2 11 12 13 14\n")
    raw = read(f)  # no format: a .txt file is the S3-Rec `user item item ...` format
    assert raw.name == "Toys_and_Games"
    assert raw.interactions["item"].tolist() == [10, 11, 12, 11, 12, 13, 14]
