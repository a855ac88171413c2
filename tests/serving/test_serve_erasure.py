"""Erasure ("right to be forgotten") against hot swaps, and users who come back after it."""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

import httpx
import pytest
from conftest import API_KEY, Server, make_client
from test_serve_update import post, shifted_taste

from genrec.cli import main
from genrec.serving.registry import Registry

KEY = {"X-API-Key": API_KEY}


@pytest.mark.slow  # 50 swaps, each erasure rewriting the run's files
def test_erasure_racing_hot_swaps_never_serves_the_erased(run_dir, tmp_path):
    """50 erase-vs-swap interleavings: the DELETE lands before the new version loads, while it reads the
    store (after the read, before the swap), or after the swap. Once acknowledged, the user is gone from
    /recommend and /users/{id}/history whichever version serves."""
    reg = Registry(run_dir)
    rng = random.Random(0)
    with make_client(run_dir, f"sqlite:///{tmp_path / 'events.db'}") as client:
        eng = client.app.state.engine
        build = eng._build_state
        leaks, during = [], 0
        for i in range(50):
            newcomer, known = f"newcomer-{i}", str(1 + i)  # feedback only / also in the training data
            users = (newcomer, known)
            feedback = [{"user_id": u, "item_id": j, "type": "click"} for u in users for j in (1, 2, 3)]
            assert client.post("/feedback", json={"events": feedback}, headers=KEY).status_code == 200
            assert client.get("/recommend", params={"user_id": newcomer}).status_code == 200
            v = reg.load()
            reg.publish(v.model, v.catalog, {"source": "test"})  # watermark 0: every event is in its overlay
            when = rng.choice(["before", "while loading", "after"])

            def erase_both(users=users):
                for u in users:
                    assert client.delete(f"/users/{u}", headers=KEY).status_code == 200

            def build_then_erase(version, _erase=erase_both):
                state = build(version)  # the store has been read: the erased events are in this state
                _erase()  # served by the event loop while the swap waits for this thread
                return state

            if when == "before":
                erase_both()
            eng._build_state = build_then_erase if when == "while loading" else build
            during += when == "while loading"
            assert client.post("/admin/reload", headers=KEY).status_code == 200
            eng._build_state = build
            if when == "after":
                erase_both()
            for u in users:
                for path in (f"/recommend?user_id={u}", f"/users/{u}/history"):
                    if client.get(path, headers=KEY).status_code != 404:
                        leaks.append((i, when, path))
        assert client.get("/readyz").json()["model_version"] == "v0051"
    assert during >= 10 and leaks == []


def test_a_user_back_after_erasure_is_served_from_new_events_only(run_dir, tmp_path):
    events = f"sqlite:///{tmp_path / 'events.db'}"
    reg = Registry(run_dir)
    reg.ensure()
    plan = shifted_taste(reg.load().catalog)
    victim = next(iter(plan))
    with make_client(run_dir, events) as client:
        post(client, plan, 0, 4, "w1")
        assert client.delete(f"/users/{victim}", headers=KEY).status_code == 200
        assert client.get("/recommend", params={"user_id": victim}).status_code == 404
        back = [{"user_id": victim, "item_id": plan[victim][j], "type": "click"} for j in (4, 5, 6)]
        assert client.post("/feedback", json={"events": back}, headers=KEY).status_code == 200
        assert client.get("/recommend", params={"user_id": victim}).status_code == 200  # overlay
    assert main(["update", str(run_dir), "--events", events, "--tolerance", "1"]) == 0
    v2 = reg.load()
    assert v2.name == "v0002" and v2.erased_through > 0
    row = v2.catalog.histories.row(v2.catalog.user_ids.get(victim))
    assert [v2.catalog.item_ids.id(i) for i in row] == [str(plan[victim][j]) for j in (4, 5, 6)]
    with make_client(run_dir, events) as client:
        r = client.get("/recommend", params={"user_id": victim})
        assert r.status_code == 200 and r.json()["model_version"] == "v0002"
        hist = client.get(f"/users/{victim}/history", headers=KEY).json()["items"]
        training = [h["item_id"] for h in hist if h["source"] == "training"]
        assert training == [str(plan[victim][j]) for j in (4, 5, 6)]
    # the next update keeps what they sent after the erasure (it is not erased again)
    with make_client(run_dir, events) as client:
        post(client, plan, 7, 11, "w2")
    assert main(["update", str(run_dir), "--events", events, "--tolerance", "1"]) == 0
    v3 = reg.load()
    row = v3.catalog.histories.row(v3.catalog.user_ids.get(victim))
    assert [v3.catalog.item_ids.id(i) for i in row][:3] == [str(plan[victim][j]) for j in (4, 5, 6)]


def test_item_counts_leave_out_erased_users_across_swaps(client, run_dir):
    hist = client.get("/users/5/history", headers=KEY).json()["items"]
    item = hist[0]["item_id"]
    before = client.get(f"/items/{item}").json()["interactions"]
    assert client.delete("/users/5", headers=KEY).status_code == 200
    assert client.get(f"/items/{item}").json()["interactions"] == before - 1
    reg = Registry(run_dir)
    v = reg.load()
    reg.publish(v.model, v.catalog, {"source": "test"})  # built before the erasure: still holds user 5
    assert client.post("/admin/reload", headers=KEY).json()["swapped"]
    assert client.get(f"/items/{item}").json()["interactions"] == before - 1


def _traces(roots: list[Path], needle: str) -> list[str]:
    """Files (and zip members) under `roots` holding `needle` as UTF-8, UTF-16 or UTF-32 text (numpy
    stores strings as UTF-32), like `grep -a` for each encoding."""
    forms = [needle.encode(enc) for enc in ("utf-8", "utf-16-le", "utf-32-le")]
    found = []
    for root in roots:
        for f in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
            blobs = [(str(f), f.read_bytes())]
            if zipfile.is_zipfile(f):  # .npz: compressed members would hide from a plain grep
                with zipfile.ZipFile(f) as z:
                    blobs += [(f"{f}:{m}", z.read(m)) for m in z.namelist()]
            found += [name for name, blob in blobs if any(form in blob for form in forms)]
    return found


@pytest.mark.slow  # a server process
def test_erased_user_leaves_no_trace_in_the_run_or_the_store(tmp_path, monkeypatch):
    """Erase, then SIGTERM the server: no file under the run directory or of the store holds the id."""
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache"))
    victim, rng = "zq-erase-me-7f3a9c", random.Random(1)
    users = [victim] + [f"shopper-{u}" for u in range(80)]
    rows = [f"{u},sku-{rng.randrange(40)},{1_700_000_000 + 60 * t}" for u in users for t in range(8)]
    data = tmp_path / "clicks.csv"
    data.write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--model", "ease", "--out", str(run)]) == 0
    store = tmp_path / "store" / "events.db"
    store.parent.mkdir()
    server = Server(run, f"sqlite:///{store}", tmp_path / "serve.log")
    try:
        feedback = [{"user_id": u, "item_id": "sku-3", "type": "click"} for u in (victim, "shopper-1")]
        r = httpx.post(server.url + "/feedback", json={"events": feedback}, headers=KEY)
        assert r.status_code == 200
        r = httpx.get(server.url + "/recommend", params={"user_id": victim}, headers=KEY)
        assert r.status_code == 200
        files = [run, store.parent]
        before = _traces(files, victim)  # the scan finds the id where it is
        assert any("dataset" in f for f in before) and any("catalog.npz" in f for f in before), before
        assert any("events.db" in f for f in before), before
        assert httpx.delete(f"{server.url}/users/{victim}", headers=KEY).status_code == 200
    finally:
        server.stop()  # SIGTERM
    assert server.proc.returncode in (0, -15)  # uvicorn re-raises SIGTERM after its shutdown
    assert _traces(files, victim) == []
    # the others are untouched: the run still loads, evaluates and serves them
    assert _traces(files, "shopper-1") != []
    assert main(["evaluate", str(run)]) == 0
    with make_client(run, f"sqlite:///{store}") as client:
        assert client.get("/recommend", params={"user_id": "shopper-1"}).status_code == 200
        assert client.get("/recommend", params={"user_id": victim}).status_code == 404
