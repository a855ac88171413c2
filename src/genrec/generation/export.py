"""Latent features for reuse elsewhere: `genrec export RUN --out emb.parquet`.

One Parquet file, one row per item and per user:

    kind    string                    "item" or "user"
    id      string                    the dataset's own item / user id (as text)
    vector  fixed_size_list<float32>  the embedding (all rows have the same dimension)

Any model that declares `ExportsEmbeddings` can be exported. For sequence models (SASRec, HSTU) items
are the output item embeddings and users the model state after everything known about the user
(train + valid + test items), so `user_vector @ item_vector` is the model's next-item score (logit).
For EASE (no latent space) the item vector is its row of the item-item matrix B (what the item
contributes to every other item's score) and no users are written. The file's schema metadata records
model, dataset, dimension and how to score (the model's `embedding_scoring`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from genrec.data.dataset import Dataset
from genrec.models.base import ExportsEmbeddings, Recommender


class NoLatentFeatures(ValueError):
    pass


def latent_features(
    model: Recommender, ds: Dataset, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(n_items, D) item vectors for ids 1..n, (n_users, D) user vectors (or None when the model has no
    user space), and how the vectors give scores."""
    if not isinstance(model, ExportsEmbeddings):
        raise NoLatentFeatures(
            f"model {model.name!r} has no latent features to export (it does not declare "
            "ExportsEmbeddings); sequence models (sasrec, hstu) and ease have them"
        )
    items = model.item_embeddings().detach().float().cpu().numpy()[1:]
    uids = np.arange(1, ds.n_users + 1)
    parts = []
    for s in range(0, len(uids), batch_size):
        vec = model.user_embeddings(ds.full_history(uids[s : s + batch_size]))
        if vec is None:
            return items, None, model.embedding_scoring
        parts.append(vec.detach().float().cpu().numpy())
    users = np.concatenate(parts) if parts else np.zeros((0, items.shape[1]), np.float32)
    return items, users, model.embedding_scoring


def export_embeddings(model: Recommender, ds: Dataset, out: str | Path, run: str = "") -> dict:
    """Write the Parquet file described in the module docstring; returns a summary."""
    items, users, note = latent_features(model, ds)
    D = items.shape[1]
    kinds = ["item"] * len(items) + ["user"] * (0 if users is None else len(users))
    ids = ds.item_ids.raw[1:].tolist() + ([] if users is None else ds.user_ids.raw[1:].tolist())
    vecs = items if users is None else np.concatenate([items, users])
    vec = pa.FixedSizeListArray.from_arrays(pa.array(vecs.astype(np.float32).ravel()), D)
    meta = {
        "model": model.name,
        "dataset": ds.name,
        "run": run,
        "dim": D,
        "n_items": len(items),
        "n_users": 0 if users is None else len(users),
        "scoring": note,
    }
    schema = pa.schema(
        [("kind", pa.string()), ("id", pa.string()), ("vector", pa.list_(pa.float32(), D))],
        metadata={"genrec": json.dumps(meta)},
    )
    table = pa.Table.from_arrays([pa.array(kinds), pa.array(ids), vec], schema=schema)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    return meta


def read_embeddings(path: str | Path) -> tuple[dict[str, tuple[list[str], np.ndarray]], dict]:
    """{"item": (ids, (n, D) array), "user": ...} and the metadata, from an exported file."""
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"genrec"])
    kinds = np.asarray(table.column("kind").to_pylist())
    ids = np.asarray(table.column("id").to_pylist(), dtype=object)
    vec = table.column("vector").combine_chunks()
    mat = vec.flatten().to_numpy().reshape(len(vec), meta["dim"])
    return {k: (ids[kinds == k].tolist(), mat[kinds == k]) for k in ("item", "user")}, meta
