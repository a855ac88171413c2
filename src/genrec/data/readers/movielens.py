"""MovieLens readers: 100K (`u.data`, `u.item`), 1M (`*.dat`, '::'), and the CSV layout of
ml-latest(-small) / 20M / 25M / 32M (`ratings.csv`, `movies.csv`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from genrec.data.readers._checks import read_delimited, to_float, to_int
from genrec.data.types import DataError, RawData

ML100K_GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


def _ratings(path: Path, sep: str, names: list[str], encoding: str, header: bool) -> pd.DataFrame:
    df = read_delimited(path, sep, names, encoding, header)
    h = 1 if header else 0
    return pd.DataFrame(
        {
            "user": to_int(df, names[0], path, encoding, h, names[0]),
            "item": to_int(df, names[1], path, encoding, h, names[1]),
            "rating": to_float(df, names[2], path, encoding, h, names[2]),
            "timestamp": to_int(df, names[3], path, encoding, h, names[3]),
        }
    )


def _folder(path: Path, ratings: str) -> Path:
    if path.is_file():
        path = path.parent
    if not (path / ratings).exists():
        raise DataError(f"{path}: no {ratings} in this folder")
    return path


def read_ml100k(path: Path) -> RawData:
    path = _folder(path, "u.data")
    inter = _ratings(path / "u.data", "\t", ["user_id", "item_id", "rating", "timestamp"], "latin-1", False)
    items, sources = None, [path / "u.data"]
    if (path / "u.item").exists():
        names = ["movie_id", "title", "release_date", "video_release_date", "url"] + ML100K_GENRES
        df = read_delimited(path / "u.item", "|", names, "latin-1", False, required=["movie_id"])
        flags = df[ML100K_GENRES].to_numpy() == "1"
        genres = ["|".join(g for g, f in zip(ML100K_GENRES, row) if f) for row in flags]
        items = pd.DataFrame(
            {"title": df["title"].to_numpy(), "categories": genres},
            index=to_int(df, "movie_id", path / "u.item", "latin-1", 0, "movie_id").to_numpy(),
        )
        sources.append(path / "u.item")
    return RawData(path.name, inter, items, sources)


def read_ml1m(path: Path) -> RawData:
    path = _folder(path, "ratings.dat")
    inter = _ratings(
        path / "ratings.dat", "::", ["UserID", "MovieID", "Rating", "Timestamp"], "latin-1", False
    )
    items, sources = None, [path / "ratings.dat"]
    if (path / "movies.dat").exists():
        df = read_delimited(path / "movies.dat", "::", ["MovieID", "Title", "Genres"], "latin-1", False)
        items = pd.DataFrame(
            {"title": df["Title"].to_numpy(), "categories": df["Genres"].to_numpy()},
            index=to_int(df, "MovieID", path / "movies.dat", "latin-1", 0, "MovieID").to_numpy(),
        )
        sources.append(path / "movies.dat")
    return RawData(path.name, inter, items, sources)


def read_ml_csv(path: Path) -> RawData:
    path = _folder(path, "ratings.csv")
    f = path / "ratings.csv"
    head = f.open(encoding="utf-8").readline().strip().split(",")
    expected = ["userId", "movieId", "rating", "timestamp"]
    if head != expected:
        raise DataError(f"{f}:1: header {head} is not the MovieLens ratings.csv header {expected}")
    # large files (20M+ rows): typed C parser in one pass, not the string path of small readers
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            inter = pd.read_csv(
                f,
                dtype={"userId": "int64", "movieId": "int64", "rating": "float32", "timestamp": "int64"},
                engine="c",
                index_col=False,
            )
    except (ValueError, pd.errors.ParserError, pd.errors.ParserWarning):
        # a malformed row: re-read slowly to name its line and field
        inter = _ratings(f, ",", expected, "utf-8", True)
        inter.columns = ["user", "item", "rating", "timestamp"]
    inter = inter.rename(columns={"userId": "user", "movieId": "item"})
    items, sources = None, [f]
    if (path / "movies.csv").exists():
        mf = path / "movies.csv"
        with open(mf, encoding="utf-8") as fh:
            mhead = fh.readline().strip().split(",")
        if mhead != ["movieId", "title", "genres"]:
            raise DataError(
                f"{mf}:1: header {mhead} is not the MovieLens movies.csv header movieId,title,genres"
            )
        m = read_delimited(mf, ",", ["movieId", "title", "genres"], "utf-8", True, required=["movieId"])
        items = pd.DataFrame(
            {"title": m["title"].to_numpy(), "categories": m["genres"].to_numpy()},
            index=to_int(m, "movieId", path / "movies.csv", "utf-8", 1, "movieId").to_numpy(),
        )
        sources.append(path / "movies.csv")
    return RawData(path.name, inter, items, sources)
