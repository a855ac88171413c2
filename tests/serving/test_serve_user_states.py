"""Cached user states for sequence models: same answers as the uncached path, invalidated by feedback."""

from __future__ import annotations

import shutil

import numpy as np
from conftest import API_KEY, make_client

KEY = {"X-API-Key": API_KEY}


def recs(client, users) -> list[dict]:
    out = []
    for u in users:
        r = client.get("/recommend", params={"user_id": u, "k": 10})
        assert r.status_code == 200, r.text
        out.append(r.json())
    return out


def same(a: list[dict], b: list[dict]) -> None:
    for x, y in zip(a, b):
        assert [i["item_id"] for i in x["items"]] == [i["item_id"] for i in y["items"]]
        assert np.allclose([i["score"] for i in x["items"]], [i["score"] for i in y["items"]], atol=1e-5)


def test_cached_user_states_match_uncached_and_follow_feedback(sasrec_run, tmp_path):
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(sasrec_run, run_a)
    shutil.copytree(sasrec_run, run_b)
    users = list(range(1, 25))
    with (
        make_client(run_a, f"sqlite:///{tmp_path / 'a.db'}") as cached,
        make_client(run_b, f"sqlite:///{tmp_path / 'b.db'}", user_cache=0) as plain,
    ):
        model = cached.app.state.engine.state.version.model
        passes = []
        orig = model.user_embeddings
        model.user_embeddings = lambda h: passes.append(len(h)) or orig(h)
        ref = recs(plain, users)
        first = recs(cached, users)
        assert sum(passes) == len(users)  # every user encoded once ...
        second = recs(cached, users)
        assert sum(passes) == len(users)  # ... and served from the cache the second time
        same(first, ref)
        same(second, ref)
        m = cached.get("/metrics").text
        assert 'genrec_user_state_cache_total{outcome="hit"} 24' in m
        assert "genrec_user_state_cache_users 24" in m

        # feedback for user 3 invalidates their state only; both paths agree afterwards
        fresh = [i["item_id"] for i in first[2]["items"][:2]]
        for client in (cached, plain):
            for item in fresh:
                ev = {"user_id": 3, "item_id": item, "type": "click"}
                assert client.post("/feedback", json=ev, headers=KEY).status_code == 200
        after = recs(cached, [3, 4])
        assert sum(passes) == len(users) + 1  # user 3 re-encoded, user 4 still cached
        same(after, recs(plain, [3, 4]))
        assert not set(fresh) & {i["item_id"] for i in after[0]["items"]}  # now seen: excluded
        assert after[0]["items"] != first[2]["items"]

        # POST with the user id alone reads the same cached state; an ad-hoc history bypasses it
        r = cached.post("/recommend", json={"user_id": 4, "k": 10}).json()
        same([r], [after[1]])
        assert sum(passes) == len(users) + 1
        cached.post("/recommend", json={"user_id": 4, "history": [fresh[0]], "k": 10})
        assert sum(passes) == len(users) + 2

        # erasure drops the state with the history
        assert cached.delete("/users/5", headers=KEY).status_code == 200
        assert cached.get("/recommend", params={"user_id": 5}).status_code == 404
