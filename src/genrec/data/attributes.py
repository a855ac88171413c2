"""User attributes for group metrics: MovieLens-1M's users.dat, or any CSV/TSV with a user column.

    attrs = read_user_attributes(Path("ml-1m/users.dat"))        # gender, age, occupation
    attrs = read_user_attributes(Path("users.csv"))              # user_id (or userId, user) + columns
    attrs["gender"]  # {raw user id -> "F" / "M"}

Values are strings; MovieLens' age and occupation codes are written as their labels ("25-34",
"programmer"). Users missing from the file belong to no group.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from genrec.data.readers._checks import fail, read_delimited
from genrec.data.types import DataError

ML1M_AGES = {
    "1": "under 18",
    "18": "18-24",
    "25": "25-34",
    "35": "35-44",
    "45": "45-49",
    "50": "50-55",
    "56": "56+",
}
ML1M_OCCUPATIONS = [
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
]  # fmt: skip
USER_COLUMNS = ("user_id", "userId", "user", "UserID", "uid")


def read_user_attributes(path: Path) -> dict[str, dict[str, str]]:
    """{attribute -> {raw user id -> value}} from `path` (a file, or a MovieLens folder with users.dat)."""
    path = Path(path)
    if path.is_dir():
        if not (path / "users.dat").exists():
            raise DataError(f"{path}: no users.dat here; give a user-attribute file (CSV with a user column)")
        path = path / "users.dat"
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    first = 1  # file line of the first data row
    if path.name == "users.dat":
        df = read_delimited(path, "::", ["user", "gender", "age", "occupation", "zip"], "latin-1", False)
        for field, known in (("gender", {"F", "M"}), ("age", set(ML1M_AGES))):
            bad = ~df[field].isin(known)
            if bad.any():
                row = int(bad.to_numpy().nonzero()[0][0])
                raise fail(
                    path, row + 1, field, f"expected one of {sorted(known)}, got {df[field].iloc[row]!r}"
                )
        occ = pd.to_numeric(df["occupation"], errors="coerce")
        bad = ~occ.between(0, len(ML1M_OCCUPATIONS) - 1) | (occ != occ.round())
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise fail(
                path, row + 1, "occupation", f"expected a code 0-20, got {df['occupation'].iloc[row]!r}"
            )
        df["age"] = df["age"].map(ML1M_AGES)
        df["occupation"] = [ML1M_OCCUPATIONS[int(o)] for o in occ]
        df = df.drop(columns=["zip"])
    else:
        sep = "\t" if path.suffix in (".tsv", ".tab") else ","
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
        col = next((c for c in USER_COLUMNS if c in df.columns), None)
        if col is None:
            raise fail(path, 1, None, f"no user column: name one of {', '.join(USER_COLUMNS)}")
        df = df.rename(columns={col: "user"})
        first = 2  # after the header
    if df["user"].duplicated().any():
        row = int(df["user"].duplicated().to_numpy().nonzero()[0][0])
        raise fail(path, row + first, "user", f"user {df['user'].iloc[row]!r} appears twice")
    users = df["user"].astype(str).tolist()
    return {c: dict(zip(users, df[c].astype(str).tolist())) for c in df.columns if c != "user"}
