"""Several servers on one event store (behind one address): each sees the others' feedback and
erasures within one watch interval."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from conftest import API_KEY, Server, make_client

KEY = {"X-API-Key": API_KEY}


def test_two_engines_share_feedback_and_erasures(run_dir, tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with make_client(run_dir, url) as a, make_client(run_dir, url) as b:
        before = b.get("/recommend", params={"user_id": "7", "k": 5}).json()["items"]
        clicks = [{"user_id": "7", "item_id": i["item_id"], "type": "click"} for i in before[:3]]
        clicks += [{"user_id": "newcomer", "item_id": "3", "type": "click"}]
        assert a.post("/feedback", json={"events": clicks}).status_code == 200
        assert b.get("/recommend", params={"user_id": "newcomer"}).status_code == 404  # not yet
        asyncio.run(b.app.state.engine.follow_store())  # one watch tick of b
        after = [i["item_id"] for i in b.get("/recommend", params={"user_id": "7", "k": 5}).json()["items"]]
        assert not set(after) & {c["item_id"] for c in clicks[:3]}  # a's clicks are b's history now
        assert b.get("/recommend", params={"user_id": "newcomer"}).status_code == 200
        # an erasure through a: gone from b after its next tick, training history and feedback alike
        assert a.delete("/users/7").status_code == 200 and a.delete("/users/newcomer").status_code == 200
        asyncio.run(b.app.state.engine.follow_store())
        for u in ("7", "newcomer"):
            assert b.get("/recommend", params={"user_id": u}).status_code == 404, u
            assert b.get(f"/users/{u}/history").status_code == 404, u
        assert b.get("/recommend", params={"user_id": "8"}).status_code == 200  # nobody else


@pytest.mark.slow  # two server processes
def test_erasure_reaches_another_server_process_within_a_second(run_dir, tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    one = Server(run_dir, url, tmp_path / "one.log", "--watch-interval", "0.2")
    two = Server(run_dir, url, tmp_path / "two.log", "--watch-interval", "0.2")
    try:
        assert httpx.get(two.url + "/recommend", params={"user_id": "9"}, headers=KEY).status_code == 200
        assert httpx.delete(one.url + "/users/9", headers=KEY).status_code == 200
        t0 = time.time()
        while httpx.get(two.url + "/recommend", params={"user_id": "9"}, headers=KEY).status_code != 404:
            assert time.time() - t0 < 1.0, "the second server still serves the erased user"
            time.sleep(0.05)
    finally:
        one.stop()
        two.stop()
