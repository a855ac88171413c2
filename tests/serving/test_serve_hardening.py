"""Bad or hostile input to the server and the updater: refused clearly, nothing half-stored."""

from __future__ import annotations

import shutil
import stat
import time

from conftest import API_KEY, make_client

from genrec.cli import main

KEY = {"X-API-Key": API_KEY}


def test_an_event_id_reused_for_another_event_is_a_conflict(client):
    first = {"event_id": "e1", "user_id": 5, "item_id": 3, "type": "click", "timestamp": 1.7e9}
    assert client.post("/feedback", json=first, headers=KEY).json()["stored"] == 1
    retry = client.post("/feedback", json=first, headers=KEY).json()  # the same event again: a retry
    assert retry["stored"] == 0 and retry["duplicates"] == 1
    no_time = client.post("/feedback", json={**first, "timestamp": None}, headers=KEY).json()
    assert no_time["duplicates"] == 1  # a retry that leaves the time out still matches
    for change in ({"item_id": 4}, {"user_id": 6}, {"type": "view"}, {"value": 2.0}, {"timestamp": 1.75e9}):
        r = client.post(
            "/feedback",
            json={"events": [{**first, "event_id": "fresh"}, {**first, **change}]},
            headers=KEY,
        )
        assert r.status_code == 409 and "'e1'" in r.json()["detail"], change
    inside = [{**first, "event_id": "e2"}, {**first, "event_id": "e2", "item_id": 9}]
    assert client.post("/feedback", json={"events": inside}, headers=KEY).status_code == 409
    store = client.app.state.engine.store
    assert store.count() == 1  # nothing of a refused request was stored ("fresh", "e2")
    assert client.get("/users/5/history", headers=KEY).json()["items"][-1]["event_id"] == "e1"


def test_timestamps_out_of_bounds_are_422(run_dir, tmp_path):
    with make_client(run_dir, f"sqlite:///{tmp_path / 'events.db'}") as client:
        ev = {"user_id": 5, "item_id": 3, "type": "click"}
        for bad in ("9999-01-01T00:00:00Z", -5, time.time() + 2 * 86_400):
            r = client.post("/feedback", json={**ev, "timestamp": bad}, headers=KEY)
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "timestamp"], bad
        r = client.post("/feedback", json={"events": [ev, {**ev, "timestamp": -1}]}, headers=KEY)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "events", 1, "timestamp"]
        ok = client.post("/feedback", json={**ev, "timestamp": time.time() + 3_600}, headers=KEY)
        assert ok.status_code == 200  # a client clock an hour ahead is within the default skew
        assert client.app.state.engine.store.count() == 1
    with make_client(run_dir, f"sqlite:///{tmp_path / 'strict.db'}") as client:
        client.app.state.engine.max_clock_skew_s = 0.0
        r = client.post("/feedback", json={**ev, "timestamp": time.time() + 3_600}, headers=KEY)
        assert r.status_code == 422


def test_update_refuses_a_tolerance_that_would_publish_anything(run_dir, tmp_path, capsys):
    events = f"sqlite:///{tmp_path / 'events.db'}"
    for bad in ("inf", "nan", "-0.1", "2"):
        assert main(["update", str(run_dir), "--events", events, "--tolerance", bad]) == 2
        err = capsys.readouterr().err
        assert "--tolerance must be between 0 and 1" in err and "Traceback" not in err


def test_a_tiny_temperature_samples_greedily(sasrec_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(sasrec_run, run)
    with make_client(run, f"sqlite:///{tmp_path / 'events.db'}") as client:

        def items(t: float) -> list[str]:
            params = {"user_id": 3, "k": 8, "strategy": "sample", "temperature": t}
            r = client.get("/recommend", params=params)
            assert r.status_code == 200
            return [i["item_id"] for i in r.json()["items"]]

        assert len(items(0.0)) == 8
        assert items(1e-38) == items(1e-300) == items(5e-324) == items(0.0)


def test_the_event_store_is_owner_only(client, run_dir, tmp_path):
    client.post("/feedback", json={"user_id": 5, "item_id": 3, "type": "click"}, headers=KEY)
    for f in tmp_path.glob("events.db*"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_a_version_that_fails_to_load_shows_in_readyz_and_is_retried(client, run_dir):
    from genrec.serving.registry import Registry

    reg = Registry(run_dir)
    good = reg.root / "v0001"
    bad = reg.root / "v0002"
    shutil.copytree(good, bad)
    (bad / "model" / "model.json").write_text("{not json")
    reg.set_current("v0002")
    r = client.post("/admin/reload", headers=KEY)
    assert r.status_code == 503
    assert "could not load v0002" in r.json()["detail"] and "still serving v0001" in r.json()["detail"]
    ready = client.get("/readyz").json()
    assert ready["model_version"] == "v0001" and ready["failed_load"]["version"] == "v0002"
    assert ready["failed_load"]["attempts"] == 1 and 0 < ready["failed_load"]["retry_in_s"] <= 5
    assert client.get("/recommend", params={"user_id": 5}).json()["model_version"] == "v0001"
    assert client.post("/admin/reload", headers=KEY).status_code == 503  # forced: tried again at once
    assert client.get("/readyz").json()["failed_load"]["attempts"] == 2
    shutil.copy(good / "model" / "model.json", bad / "model" / "model.json")  # the operator repairs it
    assert client.post("/admin/reload", headers=KEY).json() == {"serving": "v0002", "swapped": True}
    ready = client.get("/readyz").json()
    assert ready["model_version"] == "v0002" and "failed_load" not in ready


def test_history_comes_in_pages(client):
    events = [{"user_id": 5, "item_id": i, "type": "click", "event_id": f"p{i}"} for i in range(1, 8)]
    assert client.post("/feedback", json={"events": events}, headers=KEY).status_code == 200
    whole = client.get("/users/5/history").json()
    n_train = sum(1 for h in whole["items"] if h["source"] == "training")
    assert whole["total"] == len(whole["items"]) == n_train + 7 and whole["next_offset"] is None
    pages, offset = [], 0
    while offset is not None:  # a page size that splits both the training part and the feedback part
        page = client.get("/users/5/history", params={"offset": offset, "limit": 3}).json()
        assert len(page["items"]) <= 3 and page["total"] == whole["total"]
        pages += page["items"]
        offset = page["next_offset"]
    assert pages == whole["items"]
    past = client.get("/users/5/history", params={"offset": 10_000}).json()
    assert past["items"] == [] and past["next_offset"] is None
    for bad in ({"limit": 0}, {"limit": 10_001}, {"offset": -1}):
        assert client.get("/users/5/history", params=bad).status_code == 422


def test_the_api_key_comes_from_the_environment_or_an_owner_only_file(run_dir, tmp_path, capsys):
    from genrec.cli.serve import read_key_file

    key = tmp_path / "key"
    key.write_text("s3cret\n")
    key.chmod(0o644)
    assert main(["serve", str(run_dir), "--api-key-file", str(key)]) == 2
    err = capsys.readouterr().err
    assert "permissions 0644" in err and f"chmod 600 {key}" in err and "Traceback" not in err
    key.chmod(0o600)
    assert read_key_file(str(key)) == "s3cret"
    assert main(["serve", str(run_dir), "--api-key-file", str(tmp_path / "missing")]) == 2
    assert "No such file" in capsys.readouterr().err
    # never on the command line, where any local user's `ps` would show it
    assert main(["serve", str(run_dir), "--api-key", "s3cret"]) == 2
    assert "--api-key is not accepted" in capsys.readouterr().err
