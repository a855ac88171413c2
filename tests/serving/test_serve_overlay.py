"""The feedback overlay stays within its bound and still serves every user's fresh feedback."""

from __future__ import annotations

from conftest import make_client

from genrec.serving.events import StoredEvent
from genrec.serving.overlay import Overlay
from genrec.serving.registry import Registry


def ev(seq: int, user: str, item: str = "1") -> StoredEvent:
    return StoredEvent(user_id=user, item_id=item, type="click", event_id=f"e{seq}", seq=seq)


def test_overlay_keeps_at_most_capacity_events_and_remembers_who_left():
    o = Overlay(capacity=5)
    for seq in range(1, 13):  # users a..f, two events each
        o.add(ev(seq, "abcdef"[(seq - 1) // 2]))
    assert o.n_events <= 5 and o.spills >= 3
    gone = [u for u in "abcdef" if u not in o]
    assert gone and all(o.spilled(u) for u in gone)
    assert [e.seq for e in o.get("f")] == [11, 12] and not o.spilled("f")
    o.add(ev(13, gone[0]))  # a user who is in the store only stays there: the store has this event
    assert gone[0] not in o
    o.begin_read(gone[0])  # ... unless a read is in flight: then the event waits for it
    o.add(ev(14, gone[0]))
    o.end_read(gone[0], [ev(1, gone[0]), ev(13, gone[0])])
    assert [e.seq for e in o.get(gone[0])] == [1, 13, 14] and o.n_events <= 5
    o.put("nobody", [])  # read back and found nothing: no second read for them
    assert not o.spilled("nobody")


def test_a_small_overlay_serves_the_same_lists_as_a_large_one(run_dir, tmp_path):
    """30 users' feedback through an overlay of 10 events: each user's list still reflects all of it,
    before and after a hot swap, and memory holds at most 10 events."""
    events = f"sqlite:///{tmp_path / 'events.db'}"
    users = [str(u) for u in range(1, 31)]
    feedback = [
        {"user_id": u, "item_id": str(1 + (int(u) * 7 + j) % 400), "type": "click", "event_id": f"{u}-{j}"}
        for u in users
        for j in range(3)
    ] + [{"user_id": "newcomer", "item_id": "5", "type": "click"}]

    def lists(client) -> dict[str, list[str]]:
        out = {}
        for u in [*users, "newcomer"]:
            r = client.get("/recommend", params={"user_id": u, "k": 10})
            assert r.status_code == 200, r.text
            out[u] = [i["item_id"] for i in r.json()["items"]]
        return out

    with make_client(run_dir, events) as big:
        assert big.post("/feedback", json={"events": feedback}).status_code == 200
        want = lists(big)
    with make_client(run_dir, events, overlay_events=10) as small:
        eng = small.app.state.engine
        assert eng.state.overlay.n_events <= 10 and eng.state.overlay.spills > 0
        assert lists(small) == want
        more = [{"user_id": u, "item_id": "9", "type": "click"} for u in users]
        assert small.post("/feedback", json={"events": more}).status_code == 200
        after = lists(small)
        assert all("9" not in after[u] for u in users)  # the new click is history: excluded from lists
        v = Registry(run_dir).load()
        Registry(run_dir).publish(v.model, v.catalog, {"source": "test"})  # watermark 0: all is overlay
        assert small.post("/admin/reload").status_code == 200
        assert lists(small) == after and eng.state.overlay.n_events <= 10
