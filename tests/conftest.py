"""Shared fixtures: real datasets from ../shared/datasets (or $GENREC_DATA_DIR), synthetic data,
and a per-session processed-data cache so tests never write to the user's home."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    env = os.environ.get("GENREC_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    os.environ["GENREC_CACHE_DIR"] = str(tmp_path_factory.mktemp("genrec-cache"))
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_root()
    if not (root / "ml-100k" / "u.data").exists():
        # CI has ../shared; a missing folder is a broken checkout, not a reason to skip
        pytest.fail(
            f"real datasets not found under {root}; set GENREC_DATA_DIR to the shared datasets folder"
        )
    return root


@pytest.fixture(scope="session")
def synthetic_ds():
    from genrec.data.cache import prepare
    from genrec.data.synthetic import generate
    from genrec.data.types import DataConfig

    return prepare(generate(), DataConfig(), cache=False)
