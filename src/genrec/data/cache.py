"""The on-disk cache of processed datasets, keyed by a hash of the input files and the settings."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

from genrec.data.cleaning import preprocess
from genrec.data.dataset import Dataset
from genrec.data.types import DataConfig, RawData

CACHE_VERSION = 3  # 2: 'users' protocol keeps only training users' items; 3: ratings are kept


def cache_root() -> Path:
    return Path(os.environ.get("GENREC_CACHE_DIR", Path.home() / ".cache" / "genrec")) / "processed"


def _hash_inputs(raw: RawData, cfg: DataConfig, extra: dict) -> str:
    return hash_files(raw.sources, cfg, extra)


def hash_files(sources: list[Path], cfg: DataConfig, extra: dict) -> str:
    """Cache key of `sources` processed with `cfg`; both engines share it (they write the same Dataset)."""
    h = hashlib.sha256()
    key = {"v": CACHE_VERSION, "cfg": dataclasses.asdict(cfg), **extra}
    h.update(json.dumps(key, sort_keys=True).encode())
    for p in sorted(sources):
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def prepare(raw: RawData, cfg: DataConfig, cache: bool = True, extra_key: dict | None = None) -> Dataset:
    """Preprocess with an on-disk cache keyed by a hash of the input files and the settings."""
    cfg.validate()
    key = _hash_inputs(raw, cfg, extra_key or {}) if cache and (raw.sources or extra_key) else None
    path = cached_path(raw.name, key) if key else None
    if path is not None and (path / "manifest.json").exists():
        ds = Dataset.load(path)
        ds.manifest["cache_path"] = str(path)
        return ds
    ds = preprocess(raw, cfg)
    ds.manifest["hash"] = key
    if path is not None:
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        try:
            ds.save(tmp)
            try:  # atomic publish: readers never see a half-written cache
                os.replace(tmp, path)
            except OSError:
                if not (path / "manifest.json").exists():  # else a concurrent prepare published it first
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # debris of a failed or redundant write
        ds.manifest["cache_path"] = str(path)
    return ds


def cached_path(name: str, key: str) -> Path:
    return cache_root() / f"{_slug(name)}-{key}"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
