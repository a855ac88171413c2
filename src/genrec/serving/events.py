"""Durable feedback event store: SQLite (embedded default) or PostgreSQL, one interface.

    store = open_store("sqlite:///events.db")          # or "postgresql://user@host:5432/db"
    acks = store.append([Event(...), ...])             # returns only after a durable commit
    store.user_events("42"); store.events_after(seq); store.erase_user("42")

Every event gets a global, monotonically increasing `seq` (the training watermark of a model
version is the highest `seq` it has seen). `event_id` is unique: a client that retries with the
same id never creates a duplicate. Schema changes are versioned migrations (MIGRATIONS), applied
in order on open and recorded in `schema_migrations`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVENT_TYPES = ("view", "click", "purchase", "rating", "skip")


@dataclass
class Event:
    user_id: str
    item_id: str
    type: str
    value: float | None = None
    timestamp: float | None = None  # unix seconds when it happened (client clock); None = received_at
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class StoredEvent(Event):
    seq: int = 0
    received_at: float = 0.0


@dataclass
class Ack:
    event_id: str
    seq: int
    duplicate: bool  # True: an event with this id was already stored (a retry); nothing new written


# (version, description, sqlite DDL, postgres DDL); never edit a released entry, append a new one
MIGRATIONS: list[tuple[int, str, list[str], list[str]]] = [
    (
        1,
        "events table",
        [
            "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, "
            "user_id TEXT NOT NULL, item_id TEXT NOT NULL, type TEXT NOT NULL, value REAL, ts REAL NOT NULL, "
            "received_at REAL NOT NULL)",
            "CREATE INDEX events_user ON events (user_id, seq)",
        ],
        [
            "CREATE TABLE events (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "event_id TEXT NOT NULL UNIQUE, "
            "user_id TEXT NOT NULL, item_id TEXT NOT NULL, type TEXT NOT NULL, value DOUBLE PRECISION, "
            "ts DOUBLE PRECISION NOT NULL, received_at DOUBLE PRECISION NOT NULL)",
            "CREATE INDEX events_user ON events (user_id, seq)",
        ],
    ),
    (
        2,
        "erased users (privacy: excluded from future training)",
        [
            "CREATE TABLE erased_users (user_id TEXT PRIMARY KEY, erased_at REAL NOT NULL, "
            "after_seq INTEGER NOT NULL)"
        ],
        [
            "CREATE TABLE erased_users (user_id TEXT PRIMARY KEY, erased_at DOUBLE PRECISION NOT NULL, "
            "after_seq BIGINT NOT NULL)"
        ],
    ),
    (
        3,
        "tombstones keep a keyed hash of the user id, never the id (rows of erased_users moved over)",
        [
            "CREATE TABLE store_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE erasures (user_tag TEXT PRIMARY KEY, erased_at REAL NOT NULL, "
            "seq INTEGER NOT NULL)",
        ],
        [
            "CREATE TABLE store_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE erasures (user_tag TEXT PRIMARY KEY, erased_at DOUBLE PRECISION NOT NULL, "
            "seq BIGINT NOT NULL)",
        ],
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


@dataclass
class Erasures:
    """Erased users, by a keyed hash of their id (HMAC-SHA256 with the store's own random key): the
    store can tell whether an id was erased, and when, but holds no erased id to read back."""

    key: bytes
    seqs: dict[str, int] = field(default_factory=dict)  # user tag -> seq of their last erasure

    def tag(self, user_id: str) -> str:
        return hmac.new(self.key, str(user_id).encode(), hashlib.sha256).hexdigest()

    def get(self, user_id: str, default: int = 0) -> int:
        return self.seqs.get(self.tag(user_id), default) if self.seqs else default

    def __contains__(self, user_id: object) -> bool:
        return bool(self.seqs) and self.tag(str(user_id)) in self.seqs

    def __len__(self) -> int:
        return len(self.seqs)

    def record(self, user_id: str, seq: int) -> None:
        t = self.tag(user_id)
        self.seqs[t] = max(self.seqs.get(t, 0), seq)

    def merge(self, other: Erasures) -> None:
        for t, seq in other.seqs.items():
            self.seqs[t] = max(self.seqs.get(t, 0), seq)

    @property
    def last_seq(self) -> int:
        return max(self.seqs.values(), default=0)


_COLS = "seq, event_id, user_id, item_id, type, value, ts, received_at"


class EventConflict(ValueError):
    """An event id that is already stored (or repeated in the batch) with a different payload."""

    def __init__(self, event_id: str) -> None:
        super().__init__(
            f"event_id {event_id!r} was already used for a different event (user, item, type, value or "
            "timestamp differ); a retry must repeat the event exactly, a new event needs a new id"
        )
        self.event_id = event_id


class EventStore:
    """Shared logic; subclasses provide a DB-API connection and the dialect's placeholders."""

    url: str
    dialect: str
    ph: str  # parameter placeholder

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one writer at a time: seq order == commit order
        self._conn: Any = None
        self._key: bytes | None = None  # the tombstones' HMAC key (store_secrets), read by migrate()

    # --- dialect hooks ------------------------------------------------------------------------
    def _connect(self) -> Any:
        raise NotImplementedError

    def _insert_ignore(self) -> str:
        raise NotImplementedError

    def _begin_write(self, cur: Any) -> None:
        """Start a write transaction that serialises writers (so seq order is commit order)."""

    # --- schema -------------------------------------------------------------------------------
    def migrate(self) -> int:
        """Apply pending migrations in order; returns the schema version."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "description TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            self._conn.commit()
            cur.execute("SELECT version FROM schema_migrations")
            done = {int(r[0]) for r in cur.fetchall()}
            for version, desc, sqlite_sql, pg_sql in MIGRATIONS:
                if version in done:
                    continue
                self._begin_write(cur)
                for stmt in sqlite_sql if self.dialect == "sqlite" else pg_sql:
                    cur.execute(stmt)
                if version == 3:
                    self._hash_tombstones(cur)
                cur.execute(
                    f"INSERT INTO schema_migrations VALUES ({self.ph}, {self.ph}, {self.ph})",
                    (version, desc, time.time()),
                )
                self._conn.commit()  # each migration is its own transaction
            cur.execute(f"SELECT value FROM store_secrets WHERE name = {self.ph}", ("erasure_key",))
            self._key = bytes.fromhex(cur.fetchone()[0])
            cur.execute("SELECT max(version) FROM schema_migrations")
            version = int(cur.fetchone()[0] or 0)
            self._conn.commit()
            return version

    def _hash_tombstones(self, cur: Any) -> None:
        """Migration 3: a random key for the tombstones, and erased_users' raw ids replaced by tags."""
        p = self.ph
        key = secrets.token_bytes(32)
        cur.execute(f"INSERT INTO store_secrets VALUES ({p}, {p})", ("erasure_key", key.hex()))
        cur.execute("SELECT user_id, erased_at, after_seq FROM erased_users")
        tags = Erasures(key)
        rows = [(tags.tag(u), at, seq) for u, at, seq in cur.fetchall()]
        if rows:
            cur.executemany(f"INSERT INTO erasures VALUES ({p}, {p}, {p})", rows)
        cur.execute("DROP TABLE erased_users")

    def _erasures(self) -> Erasures:
        assert self._key is not None, "migrate() reads the key"
        return Erasures(self._key)

    def schema_version(self) -> int:
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("SELECT max(version) FROM schema_migrations")
            return int(cur.fetchone()[0] or 0)

    # --- writes -------------------------------------------------------------------------------
    def append(self, events: list[Event]) -> list[Ack]:
        """Store events in one transaction; returns after the commit is durable. Idempotent on event_id."""
        if not events:
            return []
        now = time.time()
        rows = [
            (
                e.event_id,
                str(e.user_id),
                str(e.item_id),
                e.type,
                e.value,
                e.timestamp if e.timestamp is not None else now,
                now,
            )
            for e in events
        ]
        p = self.ph
        with self._lock:
            cur = self._conn.cursor()
            try:
                self._begin_write(cur)
                ids = [r[0] for r in rows]
                existing = set(self._check_payloads(cur, events, rows))
                cur.executemany(self._insert_ignore().format(p=p), rows)
                found = self._seqs(cur, ids)
                self._conn.commit()
            except BaseException:
                self._conn.rollback()
                raise
        acks, seen = [], set()
        for eid in ids:
            # a duplicate is an id stored by an earlier request, or repeated inside this batch
            acks.append(Ack(eid, found[eid], duplicate=eid in existing or eid in seen))
            seen.add(eid)
        return acks

    def _check_payloads(self, cur: Any, events: list[Event], rows: list[tuple]) -> dict[str, int]:
        """seq of every already stored event id among `rows`; EventConflict when an id comes back (from
        the store or earlier in the batch) with another user, item, type or value, or another explicit
        timestamp (a retry without one matches: the stored time is then the first arrival's)."""
        stored: dict[str, tuple] = {}
        ids = list(dict.fromkeys(r[0] for r in rows))
        for i in range(0, len(ids), 500):  # stay under the driver's parameter limit
            chunk = ids[i : i + 500]
            cur.execute(
                f"SELECT event_id, seq, user_id, item_id, type, value, ts FROM events "
                f"WHERE event_id IN ({', '.join([self.ph] * len(chunk))})",
                chunk,
            )
            stored.update({r[0]: r[1:] for r in cur.fetchall()})
        first = {eid: (tuple(v[1:5]), v[5]) for eid, v in stored.items()}
        for e, r in zip(events, rows):
            payload, ts = first.setdefault(r[0], (r[1:5], r[5]))
            if payload != r[1:5] or (e.timestamp is not None and ts != r[5]):
                raise EventConflict(r[0])
        return {eid: int(v[0]) for eid, v in stored.items()}

    def _seqs(self, cur: Any, ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for i in range(0, len(ids), 500):  # stay under the driver's parameter limit
            chunk = ids[i : i + 500]
            cur.execute(
                f"SELECT event_id, seq FROM events WHERE event_id IN ({', '.join([self.ph] * len(chunk))})",
                chunk,
            )
            found.update({r[0]: int(r[1]) for r in cur.fetchall()})
        return found

    def erase_user(self, user_id: str) -> tuple[int, int]:
        """Delete every event of the user and record the erasure; returns (events deleted, erasure seq).

        The erasure takes its own number from the events' sequence (a placeholder row, inserted and
        deleted in the same transaction; neither SQLite AUTOINCREMENT nor a PostgreSQL identity ever
        hands a number out twice): above every event of the user it erased, below every later event,
        and never equal to another erasure's, so "built with every erasure up to seq S" is exact."""
        p = self.ph
        with self._lock:
            cur = self._conn.cursor()
            try:
                self._begin_write(cur)
                cur.execute(f"DELETE FROM events WHERE user_id = {p}", (str(user_id),))
                n = cur.rowcount
                cur.execute(
                    "INSERT INTO events (event_id, user_id, item_id, type, value, ts, received_at) "
                    f"VALUES ({p}, '', '', 'erasure', NULL, 0, 0)",
                    (f"erasure-{uuid.uuid4().hex}",),
                )
                cur.execute("SELECT max(seq) FROM events")
                seq = int(cur.fetchone()[0])
                cur.execute(f"DELETE FROM events WHERE seq = {p}", (seq,))
                tag = self._erasures().tag(user_id)
                cur.execute(f"DELETE FROM erasures WHERE user_tag = {p}", (tag,))
                cur.execute(f"INSERT INTO erasures VALUES ({p}, {p}, {p})", (tag, time.time(), seq))
                self._conn.commit()
            except BaseException:
                self._conn.rollback()
                raise
            self._forget(cur)
        return int(n), seq

    def _forget(self, cur: Any) -> None:
        """After an erasure: make sure no copy of the deleted rows outlives it in the database's files."""

    # --- reads --------------------------------------------------------------------------------
    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            cur = self._conn.cursor()
            cur.execute(sql, params)
            rows = cur.fetchall()
            self._conn.commit()  # end the read transaction (PostgreSQL) so later reads see new data
            return rows

    @staticmethod
    def _event(r: tuple) -> StoredEvent:
        return StoredEvent(
            user_id=r[2],
            item_id=r[3],
            type=r[4],
            value=r[5],
            timestamp=r[6],
            event_id=r[1],
            seq=int(r[0]),
            received_at=r[7],
        )

    def user_events(
        self, user_id: str, offset: int = 0, limit: int | None = None, after: int = 0
    ) -> list[StoredEvent]:
        """The user's events with seq > `after`, in seq order; `offset`/`limit` page through them in the
        database."""
        page = f" LIMIT {int(limit)} OFFSET {int(offset)}" if limit is not None else ""
        rows = self._query(
            f"SELECT {_COLS} FROM events WHERE user_id = {self.ph} AND seq > {self.ph} ORDER BY seq{page}",
            (str(user_id), int(after)),
        )
        return [self._event(r) for r in rows]

    def count_user_events(self, user_id: str) -> int:
        rows = self._query(f"SELECT count(*) FROM events WHERE user_id = {self.ph}", (str(user_id),))
        return int(rows[0][0])

    def events_after(self, seq: int, limit: int | None = None) -> list[StoredEvent]:
        """Events with seq > `seq` in seq order (what a model trained up to `seq` has not seen): all of
        them, or the first `limit`."""
        page = f" LIMIT {int(limit)}" if limit is not None else ""
        sql = f"SELECT {_COLS} FROM events WHERE seq > {self.ph} ORDER BY seq{page}"
        rows = self._query(sql, (int(seq),))
        return [self._event(r) for r in rows]

    def erased_users(self) -> Erasures:
        """Every erasure: `.get(user_id)` is the seq of theirs (0: never erased); their events below it
        are gone, later ones are new consent."""
        er = self._erasures()
        er.seqs.update({r[0]: int(r[1]) for r in self._query("SELECT user_tag, seq FROM erasures")})
        return er

    def erasures_after(self, seq: int) -> list[tuple[str, int]]:
        """(user tag, erasure seq) of every erasure numbered above `seq` (what another process did since)."""
        rows = self._query(
            f"SELECT user_tag, seq FROM erasures WHERE seq > {self.ph} ORDER BY seq", (int(seq),)
        )
        return [(r[0], int(r[1])) for r in rows]

    def max_seq(self) -> int:
        return int(self._query("SELECT coalesce(max(seq), 0) FROM events")[0][0])

    def count(self) -> int:
        return int(self._query("SELECT count(*) FROM events")[0][0])

    def ping(self) -> bool:
        try:
            self._query("SELECT 1")
            return True
        except Exception:
            return False

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SQLiteStore(EventStore):
    """SQLite in WAL mode with synchronous=FULL: a commit is on disk before append() returns."""

    dialect, ph = "sqlite", "?"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = self._connect()
        self.migrate()

    def _connect(self) -> sqlite3.Connection:
        # owner-only from the first byte: events are personal data (SQLite gives -wal/-shm the same mode)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        # isolation_level=None: we issue BEGIN ourselves; check_same_thread=False: guarded by _lock
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "PRAGMA synchronous=FULL"
        )  # WAL + FULL: fsync on every commit (NORMAL may lose the last)
        conn.execute("PRAGMA secure_delete=ON")  # erased users' bytes are overwritten, not left in free pages
        conn.execute("PRAGMA busy_timeout=30000")
        return _AutoBegin(conn)

    def _forget(self, cur: Any) -> None:
        # the WAL still holds the pages the user's rows were written in: copy it into the (secure_delete)
        # database file and truncate it to zero bytes
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cur.fetchall()

    def _insert_ignore(self) -> str:
        return (
            "INSERT OR IGNORE INTO events (event_id, user_id, item_id, type, value, ts, received_at) "
            "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})"
        )

    def _begin_write(self, cur: Any) -> None:
        cur.execute("BEGIN IMMEDIATE")  # take the write lock now: other processes wait, not fail later


class _AutoBegin:
    """sqlite3 connection in autocommit mode whose commit()/rollback() are no-ops outside a transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def cursor(self) -> sqlite3.Cursor:
        return self.conn.cursor()

    def execute(self, *a: Any) -> sqlite3.Cursor:
        return self.conn.execute(*a)

    def commit(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()


class PostgresStore(EventStore):
    """PostgreSQL through psycopg 3; commits are durable with the server's default synchronous_commit=on."""

    dialect, ph = "postgresql", "%s"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._conn = self._connect()
        self.migrate()

    def _connect(self) -> Any:
        try:
            import psycopg
        except ImportError as e:  # pragma: no cover - the serve extra installs it
            raise RuntimeError("PostgreSQL event stores need psycopg 3: pip install 'genrec[serve]'") from e
        return psycopg.connect(self.url, connect_timeout=10)

    def _insert_ignore(self) -> str:
        return (
            "INSERT INTO events (event_id, user_id, item_id, type, value, ts, received_at) "
            "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}) ON CONFLICT (event_id) DO NOTHING"
        )

    def _begin_write(self, cur: Any) -> None:
        # identity values are handed out before commit; serialising writers across processes keeps
        # seq order equal to commit order, so a watermark never skips an event committed late
        cur.execute("SELECT pg_advisory_xact_lock(6206)")


def open_store(url: str | Path) -> EventStore:
    """`sqlite:///path/to/events.db`, a plain path, or `postgresql://user@host:port/db`."""
    url = str(url)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        return SQLiteStore(url[len("sqlite:///") :])
    if "://" in url:
        raise ValueError(
            f"unsupported event store {url!r}: use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        )
    return SQLiteStore(url)
