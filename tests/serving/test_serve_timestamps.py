"""HSTU reads the times of served histories (its relative time bias), from the catalogue, feedback and
POST /recommend's `timestamps`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import API_KEY, make_client

from genrec.data.dataset import Histories
from genrec.models import Recommender
from genrec.serving.registry import Registry

pytestmark = pytest.mark.slow  # trains HSTU

KEY = {"X-API-Key": API_KEY}


def trained(tmp_path_factory, **settings):
    """HSTU tiny, one epoch, with a strong random time bias (so times visibly move scores)."""
    from genrec.data.sources import SourceSpec
    from genrec.training import TrainConfig
    from genrec.training.runs import RunConfig, train_run

    out = tmp_path_factory.mktemp("serving") / "hstu-run"
    cfg = {"size": "tiny", "epochs": 1, **settings}
    train_run(
        RunConfig(
            source=SourceSpec(synthetic=True),
            model="hstu",
            model_config=cfg,
            ks=[10],
            train=TrainConfig(threads=1),
        ),
        out,
        progress=False,
    )
    model = Recommender.load(out / "model")
    g = torch.Generator().manual_seed(0)
    for layer in model.net.layers:
        layer.time_bias.data = torch.randn(layer.time_bias.shape, generator=g) * 3
    model.save(out / "model")
    return out


@pytest.fixture(scope="module")
def hstu_run(tmp_path_factory):
    return trained(tmp_path_factory, query_time="own")  # history times alone (the request's: below)


@pytest.fixture(scope="module")
def hstu_next_run(tmp_path_factory):
    return trained(tmp_path_factory, query_time="next")


def scores(r) -> dict:
    assert r.status_code == 200, r.text
    return {i["item_id"]: i["score"] for i in r.json()["items"]}


def test_hstu_serves_with_history_times(hstu_run, tmp_path):
    with make_client(hstu_run, f"sqlite:///{tmp_path / 'e.db'}") as c:
        version = Registry(hstu_run).load()
        cat, model = version.catalog, version.model
        assert cat.histories.timestamps is not None  # the catalogue keeps the dataset's times

        # POST: the same items at other times score differently, exactly as the model scores them
        hist = [cat.item_ids.id(i) for i in cat.histories.row(1)[:8]]
        t0 = 1_600_000_000
        dense = [t0 + 60 * j for j in range(8)]  # a minute apart
        sparse = [t0 + 86_400 * 30 * j for j in range(8)]  # a month apart
        a = scores(c.post("/recommend", json={"history": hist, "timestamps": dense, "k": 20}))
        b = scores(c.post("/recommend", json={"history": hist, "timestamps": sparse, "k": 20}))
        common = sorted(set(a) & set(b))
        assert a != b and not np.allclose([a[i] for i in common], [b[i] for i in common], atol=1e-3)
        items = np.array([cat.item_ids.get(h) for h in hist])
        ref = model.score(Histories(np.array([0, 8]), items, np.array(dense)))[0]
        assert np.allclose([a[i] for i in a], [float(ref[cat.item_ids.get(i)]) for i in a], atol=1e-4)
        iso = [f"2020-09-13T12:{26 + j:02d}:40Z" for j in range(8)]  # = dense, as ISO 8601
        assert scores(c.post("/recommend", json={"history": hist, "timestamps": iso, "k": 20})) == a

        # GET: a known user's training history is read with the dataset's times
        got = scores(c.get("/recommend", params={"user_id": cat.user_ids.id(1), "k": 20}))
        ref = model.score(cat.histories.take([1]))[0]
        assert np.allclose([got[i] for i in got], [float(ref[cat.item_ids.get(i)]) for i in got], atol=1e-4)

        # feedback times count too: the same click a minute vs a year after the last training event
        u = cat.user_ids.id(2)
        last = int(cat.histories.row_timestamps(2)[-1])
        item = cat.item_ids.id(int(np.setdiff1d(np.arange(1, cat.n_items + 1), cat.histories.row(2))[0]))
        ev = {"event_id": "t1", "user_id": u, "item_id": item, "type": "click", "timestamp": last + 60}
        assert c.post("/feedback", json=ev, headers=KEY).status_code == 200
        soon = scores(c.get("/recommend", params={"user_id": u, "k": 20}))
        engine = c.app.state.engine
        assert engine.user_history(engine.state, str(u))[3][-1] == last + 60

        # bad input: one time per history item
        r = c.post("/recommend", json={"history": hist, "timestamps": dense[:3]})
        assert r.status_code == 422 and "one per history item" in r.text
    with make_client(hstu_run, f"sqlite:///{tmp_path / 'f.db'}") as c:
        ev = dict(ev, timestamp=last + 86_400 * 365)
        assert c.post("/feedback", json=ev, headers=KEY).status_code == 200
        late = scores(c.get("/recommend", params={"user_id": u, "k": 20}))
        assert soon != late


def test_hstu_reading_the_request_time_is_served_at_the_requests_time(hstu_next_run, tmp_path, monkeypatch):
    """query_time=next: a list is for the time of its request (its arrival, or POST's `request_time`):
    the same history a minute or a year later scores differently, as the model scores it at that time,
    and a cached user state never answers a request at another time."""
    from genrec.serving.routes import recommend

    clock = [1_700_000_000.0]
    monkeypatch.setattr(recommend, "time", type("Clock", (), {"time": staticmethod(lambda: clock[0])}))
    with make_client(hstu_next_run, f"sqlite:///{tmp_path / 'e.db'}") as c:
        version = Registry(hstu_next_run).load()
        cat, model = version.catalog, version.model
        assert model.reads_request_time
        hist = [cat.item_ids.id(i) for i in cat.histories.row(1)[:8]]
        items = np.array([cat.item_ids.get(h) for h in hist])
        t0 = 1_600_000_000
        times = [t0 + 60 * j for j in range(8)]
        soon, late = times[-1] + 60, times[-1] + 86_400 * 365
        body = {"history": hist, "timestamps": times, "k": 20}
        a = scores(c.post("/recommend", json=dict(body, request_time=soon)))
        b = scores(c.post("/recommend", json=dict(body, request_time=late)))
        assert a != b
        for got, at in ((a, soon), (b, late)):
            ref = model.score(Histories(np.array([0, 8]), items, np.array(times), request_ts=np.array([at])))[
                0
            ]
            assert np.allclose(
                [got[i] for i in got], [float(ref[cat.item_ids.get(i)]) for i in got], atol=1e-4
            )
        clock[0] = late  # no request_time: the arrival's
        assert scores(c.post("/recommend", json=body)) == b

        # GET: a known user's list at two arrival times; the second is not the first one's cached state
        user = {"user_id": cat.user_ids.id(1), "k": 20}
        last = int(cat.histories.row_timestamps(1)[-1])
        lists = []
        for at in (last + 60, last + 86_400 * 365, last + 60):
            clock[0] = at
            lists.append(scores(c.get("/recommend", params=user)))
            h = cat.histories.take([1])
            h.request_ts = np.array([at])
            ref, got = model.score(h)[0], lists[-1]
            assert np.allclose(
                [got[i] for i in got], [float(ref[cat.item_ids.get(i)]) for i in got], atol=1e-4
            )
        assert lists[0] != lists[1] and lists[2] == lists[0]
