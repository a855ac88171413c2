"""`genrec serve --ann-candidates N`: lists from an HNSW index + exact re-scoring, the same lists as exact
ranking when the candidates cover the catalogue, the history still excluded."""

from __future__ import annotations

import shutil

import pytest
from conftest import make_client

pytest.importorskip("faiss")


def test_approximate_lists_match_exact_ones_and_keep_the_rules(sasrec_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(sasrec_run, run)
    users = [str(u) for u in range(1, 40)]

    def lists(client, **body) -> dict[str, list[str]]:
        out = {}
        for u in users:
            r = client.post("/recommend", json={"user_id": u, "k": 10, **body})
            assert r.status_code == 200, r.text
            out[u] = [i["item_id"] for i in r.json()["items"]]
        return out

    with make_client(run, f"sqlite:///{tmp_path / 'exact.db'}") as c:
        exact = lists(c)
        seen = {u: {i["item_id"] for i in c.get(f"/users/{u}/history").json()["items"]} for u in users}
    with make_client(run, f"sqlite:///{tmp_path / 'ann.db'}", ann_candidates=1000) as c:
        assert c.app.state.engine.state.index is not None
        assert lists(c) == exact  # 1,000 candidates cover the 400-item catalogue
    with make_client(run, f"sqlite:///{tmp_path / 'few.db'}", ann_candidates=20) as c:
        few = lists(c, blocked=["1", "2", "3"])
        for u in users:
            assert len(few[u]) == 10 and not set(few[u]) & (seen[u] | {"1", "2", "3"}), u
        overlap = sum(len(set(few[u]) & set(exact[u])) for u in users) / (10 * len(users))
        assert overlap > 0.7
