"""Event stores: the same behaviour on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import sqlite3

import pytest

from genrec.serving.events import MIGRATIONS, SCHEMA_VERSION, Event, open_store


def test_append_dedup_order_erase(store_url):
    with open_store(store_url) as s:
        assert s.schema_version() == SCHEMA_VERSION
        acks = s.append(
            [
                Event("u1", "i1", "click", event_id="a"),
                Event("u1", "i2", "view", event_id="b"),
                Event("u2", "new-item", "rating", 4.0, 1.7e9, event_id="c"),
                Event("u1", "i2", "view", event_id="b"),
            ]
        )  # repeated inside the batch
        assert [a.duplicate for a in acks] == [False, False, False, True]
        assert acks[0].seq < acks[1].seq < acks[2].seq and acks[3].seq == acks[1].seq
        retry = s.append([Event("u1", "i1", "click", event_id="a"), Event("u1", "i3", "skip", event_id="d")])
        assert [a.duplicate for a in retry] == [True, False] and retry[0].seq == acks[0].seq
        assert [e.event_id for e in s.user_events("u1")] == ["a", "b", "d"]
        e = s.user_events("u2")[0]
        assert (e.item_id, e.type, e.value, e.timestamp) == ("new-item", "rating", 4.0, 1.7e9)
        assert [e.event_id for e in s.events_after(acks[1].seq)] == ["c", "d"]
        assert s.count() == 4 and s.max_seq() == retry[1].seq
        n, erased_at = s.erase_user("u1")
        assert n == 3 and erased_at > retry[1].seq  # the erasure has its own number, above u1's events
        assert s.user_events("u1") == [] and s.erased_users().get("u1") == erased_at
        assert s.count() == 1 and s.max_seq() == acks[2].seq  # its placeholder row is gone
        back = s.append([Event("u1", "i9", "click", event_id="e")])  # a returning user: new consent
        assert back[0].seq > erased_at
        n, again = s.erase_user("u1")
        assert n == 1 and again > back[0].seq and s.erased_users().get("u1") == again
        assert s.count() == 1
        assert s.ping()
    with open_store(store_url) as s:  # reopening migrates nothing twice and keeps the data
        assert s.schema_version() == SCHEMA_VERSION and s.count() == 1


def test_sqlite_is_wal_full_and_migrates_old_schemas(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)  # a store written by schema version 1 only
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
        "applied_at REAL NOT NULL)"
    )
    for stmt in MIGRATIONS[0][2]:
        conn.execute(stmt)
    conn.execute("INSERT INTO schema_migrations VALUES (1, 'events table', 0)")
    conn.execute(
        "INSERT INTO events (event_id, user_id, item_id, type, value, ts, received_at) "
        "VALUES ('old', 'u', 'i', 'view', NULL, 0, 0)"
    )
    conn.commit()
    conn.close()
    with open_store(f"sqlite:///{path}") as s:
        assert s.schema_version() == SCHEMA_VERSION == 3
        assert [e.event_id for e in s.user_events("u")] == ["old"] and len(s.erased_users()) == 0
        mode = s._conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = s._conn.execute("PRAGMA synchronous").fetchone()[0]
        assert (mode, sync) == ("wal", 2)  # 2 = FULL


def test_tombstones_hold_no_user_id_and_old_ones_are_converted(tmp_path):
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path)  # a store of schema version 2, with a raw-id tombstone
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
        "applied_at REAL NOT NULL)"
    )
    for version, desc, sqlite_sql, _ in MIGRATIONS[:2]:
        for stmt in sqlite_sql:
            conn.execute(stmt)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, desc))
    conn.execute("INSERT INTO erased_users VALUES ('old-victim-51f2', 0, 7)")
    conn.commit()
    conn.close()
    with open_store(f"sqlite:///{path}") as s:
        assert s.erased_users().get("old-victim-51f2") == 7 and "old-victim-51f2" in s.erased_users()
        s.append([Event("new-victim-9c0d", "i1", "click"), Event("bystander", "i1", "click")])
        _, seq = s.erase_user("new-victim-9c0d")
        er = s.erased_users()
        assert er.get("new-victim-9c0d") == seq and er.get("bystander") == 0 and len(er) == 2
    with open_store(f"sqlite:///{path}") as s:  # the key lives in the store: tags still match
        assert s.erased_users().get("new-victim-9c0d") == seq
    raw = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.is_file())
    assert b"old-victim-51f2" not in raw and b"new-victim-9c0d" not in raw and b"bystander" in raw


def test_bad_store_url():
    with pytest.raises(ValueError, match="sqlite:///PATH or postgresql://"):
        open_store("mysql://x")
