"""One path from scores to lists: the CLI, the Python API and HTTP give the same lists, with the
dataset's ids as strings, for every strategy; and ids stay strings after an update that saw new ids."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import API_KEY, make_client

from genrec.cli import main
from genrec.generation import Generator

KEY = {"X-API-Key": API_KEY}
SETTINGS = {"topk": {}, "beam": {"beam_size": 3}, "sample": {"temperature": 1.5, "top_p": 0.9, "seed": 7}}


def cli_list(capsys, run, user: str, k: int, strategy: str, opts: dict) -> dict:
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in opts.items()]
    capsys.readouterr()
    assert (
        main(["recommend", str(run), "--user", user, "-k", str(k), "--strategy", strategy, *flags, "--json"])
        == 0
    )
    return json.loads(capsys.readouterr().out)


def ids(body: dict) -> str:
    return json.dumps([i["item_id"] for i in body["items"]])


@pytest.mark.parametrize("strategy", ["topk", "beam", "sample"])
def test_cli_python_and_http_give_the_same_list(strategy, sasrec_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(sasrec_run, run)
    opts = SETTINGS[strategy]
    gen = Generator.from_run(run)
    with make_client(run, f"sqlite:///{tmp_path / 'e.db'}") as client:
        for user in ("3", "17", "250"):
            cli = cli_list(capsys, run, user, 8, strategy, opts)
            py = gen.recommend([user], k=8, strategy=strategy, **opts)[0]
            settings = {"k": 8, "strategy": strategy, **opts}
            get = client.get("/recommend", params={"user_id": user, **settings})
            post = client.post("/recommend", json={"user_id": int(user), **settings})
            assert get.status_code == post.status_code == 200, (get.text, post.text)
            get, post = get.json(), post.json()
            assert ids(cli) == ids(py) == ids(get) == ids(post), strategy
            assert cli["user_id"] == py["user_id"] == get["user_id"] == post["user_id"] == user
            assert all(isinstance(i["item_id"], str) for i in get["items"]) and len(get["items"]) == 8
            for a, b in zip(cli["items"], get["items"]):
                assert a["score"] == pytest.approx(b["score"], abs=1e-4)
    if strategy == "sample":  # the seed is the only source of randomness
        other = gen.recommend(["3"], k=8, strategy="sample", **{**opts, "seed": 8})[0]
        assert ids(other) != ids(gen.recommend(["3"], k=8, strategy="sample", **opts)[0])


def test_beam_and_sample_refused_for_ease_over_http(client):
    for strategy in ("beam", "sample"):
        r = client.get("/recommend", params={"user_id": 5, "strategy": strategy})
        assert r.status_code == 422, r.text
        assert "ease scores are not a distribution over next items" in r.json()["detail"]
        assert "use strategy topk" in r.json()["detail"]
        r = client.post("/recommend", json={"history": [1, 2], "strategy": strategy})
        assert r.status_code == 422 and "not a distribution" in r.json()["detail"]
    assert client.post("/recommend", json={"history": [1, 2], "strategy": "greedy"}).status_code == 422
    assert client.get("/recommend", params={"user_id": 5, "k": 1001}).status_code == 422


def test_ids_stay_strings_after_an_update_with_new_ids(run_dir, tmp_path, capsys):
    events = f"sqlite:///{tmp_path / 'events.db'}"
    with make_client(run_dir, events, watch=0.1) as client:
        clicks = [{"user_id": u, "item_id": i, "type": "click"} for u in range(1, 41) for i in (7, 8, 9, 10)]
        clicks += [{"user_id": "alice", "item_id": i, "type": "click"} for i in (3, "sku-x", 5, "sku-y")]
        clicks += [{"user_id": 2, "item_id": "sku-x", "type": "purchase"}]
        assert client.post("/feedback", json={"events": clicks}, headers=KEY).json()["stored"] == len(clicks)
        args = ["--events", events, "--tolerance", "1", "--min-eval-users", "1"]
        assert main(["update", str(run_dir), *args]) == 0
        assert "published v0002" in capsys.readouterr().out
        assert client.post("/admin/reload", headers=KEY).json()["serving"] == "v0002"
        for params in ({"user_id": "alice"}, {"user_id": 2, "explain": "true"}, {"user_id": 1, "k": 500}):
            body = client.get("/recommend", params=params).json()
            assert body["model_version"] == "v0002" and body["user_id"] == str(params["user_id"])
            assert body["items"] and all(isinstance(i["item_id"], str) for i in body["items"])
            assert all(isinstance(h, str) for i in body["items"] for h in i.get("because") or [])
        body = client.post("/recommend", json={"user_id": 1, "history": [4, "sku-x"], "k": 450}).json()
        got = {i["item_id"] for i in body["items"]}
        assert "sku-y" in got and "4" not in got and "sku-x" not in got and 4 not in got
        hist = client.get("/users/alice/history").json()  # now trained on, and the stored events
        assert hist["user_id"] == "alice"
        assert [i["item_id"] for i in hist["items"]] == ["3", "sku-x", "5", "sku-y"] * 2
        assert client.get("/items/7").json()["item_id"] == "7"
        assert client.get("/items/sku-x").json()["item_id"] == "sku-x"
        assert client.delete("/users/40", headers=KEY).json()["user_id"] == "40"
