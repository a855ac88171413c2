"""Resolve what a user names (a path, a public dataset name, or the synthetic default) to a Dataset."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from genrec.data.cache import prepare
from genrec.data.dataset import Dataset
from genrec.data.types import DataConfig, DataError, RawData

# public datasets genrec knows by name: folder under $GENREC_DATA_DIR, downloadable if absent
NAMED_DATASETS = ("ml-100k", "ml-1m", "ml-20m", "ml-25m", "ml-32m", "ml-latest-small", "ml-latest")


def data_dir() -> Path:
    return Path(os.environ.get("GENREC_DATA_DIR", Path.home() / ".cache" / "genrec"))


@dataclasses.dataclass
class SourceSpec:
    """Where the data comes from; exactly one of `data`, `dataset`, `synthetic` is set."""

    data: str | None = None  # file or folder
    dataset: str | None = None  # a public dataset name, e.g. ml-1m
    format: str | None = None  # reader format; None = auto-detect
    synthetic: bool = False
    synthetic_seed: int = 0
    # reader options (format 'table': columns, sep, header, items, item_columns)
    options: dict = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        given = [self.data is not None, self.dataset is not None, self.synthetic]
        if sum(given) != 1:
            raise DataError("name exactly one data source: --data PATH, --dataset NAME or --synthetic")


def read_source(spec: SourceSpec) -> tuple[RawData, dict]:
    """Raw data plus an extra cache key (for sources that are not files)."""
    spec.validate()
    if spec.synthetic:
        from genrec.data.synthetic import SyntheticConfig, generate

        cfg = SyntheticConfig(seed=spec.synthetic_seed)
        return generate(cfg), {"synthetic": dataclasses.asdict(cfg)}
    from genrec.data.readers import read

    if spec.dataset is not None:
        if spec.dataset not in NAMED_DATASETS and not (data_dir() / spec.dataset).exists():
            raise DataError(
                f"unknown dataset {spec.dataset!r}; known: {', '.join(NAMED_DATASETS)} "
                f"(or any folder under {data_dir()}); for your own files use --data PATH"
            )
        path = data_dir() / spec.dataset
        if not path.exists():
            from genrec.data.download import download_movielens

            path = download_movielens(spec.dataset, data_dir())
        raw = read(path, spec.format, **spec.options)
        raw.name = spec.dataset
        return raw, _reader_key(spec)
    return read(Path(spec.data), spec.format, **spec.options), _reader_key(spec)


def _reader_key(spec: SourceSpec) -> dict:
    """Reader settings change what is read from the same files, so they are part of the cache key."""
    opts = {k: v for k, v in spec.options.items() if v is not None}
    return {"reader": {"format": spec.format, **opts}} if opts else {}


ENGINES = ("auto", "memory", "duckdb")


def choose_engine(spec: SourceSpec, cfg: DataConfig, engine: str = "auto") -> str:
    """'memory' or 'duckdb'. 'auto' picks DuckDB for a table file of at least 1 GiB
    (`outofcore.AUTO_MIN_BYTES`) when duckdb is installed and supports `cfg`; memory otherwise."""
    from genrec.data import outofcore

    if engine not in ENGINES:
        raise DataError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "memory":
        return "memory"
    path = Path(spec.data) if spec.data is not None else None
    if engine == "duckdb":
        if path is None:
            raise DataError("--engine duckdb reads a table file: pass it with --data FILE")
        outofcore.check_input(path, spec.format)
        why = outofcore.unsupported(cfg)
        if why:
            raise DataError(why)
        if not outofcore.available():
            raise DataError(
                "--engine duckdb needs duckdb: pip install 'genrec[large]' (or pip install duckdb)"
            )
        return "duckdb"
    big = (
        path is not None
        and spec.format in (None, "table")
        and outofcore.is_table_file(path)
        and path.stat().st_size >= outofcore.AUTO_MIN_BYTES
    )
    return "duckdb" if big and outofcore.unsupported(cfg) is None and outofcore.available() else "memory"


def load_dataset(
    spec: SourceSpec,
    cfg: DataConfig,
    cache: bool = True,
    engine: str = "auto",
    memory_limit: str | None = None,
    progress: bool = False,
) -> Dataset:
    """Read, clean, index and split; `engine` 'duckdb' does it out of core (table files, see
    genrec.data.outofcore) and gives the same Dataset, its arrays memory-mapped from the cache."""
    if choose_engine(spec, cfg, engine) == "duckdb":
        from genrec.data.outofcore import load_table_dataset

        spec.validate()
        return load_table_dataset(
            Path(spec.data),
            cfg,
            {k: v for k, v in spec.options.items() if v is not None},
            _reader_key(spec),
            cache=cache,
            memory_limit=memory_limit,
            progress=progress,
        )
    raw, extra = read_source(spec)
    return prepare(raw, cfg, cache=cache, extra_key=extra)
