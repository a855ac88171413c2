"""The serving core, independent of HTTP: the served version, live histories, micro-batched scoring.

Hot swap: a request resolves its ids against one `State` (version + feedback overlay) and is
scored by that version's model, so swapping `Engine.state` (one reference assignment on the event
loop) never mixes id spaces and never fails an in-flight request.

Micro-batching: requests queue `Job`s; one worker takes whatever is queued (waiting at most
`max_wait_s` while more requests are on their way in) and writes the lists of the whole batch in a
single scoring thread, so the event loop keeps accepting requests while the model runs. Lists come
from genrec.generation (one `generate` call per version and list settings; each request keeps its own
filters as per-row constraints), so a request gets the list the CLI and the Python API give.

User states: for models whose scores are a dot product of user and item vectors (`DotProductScores`:
SASRec, HSTU) each known user's vector is cached per served version, tagged with a digest of the
history it was computed from. A top-k request for a user whose history has not changed then costs one
(B, D) x (D, I) matmul instead of a transformer pass over up to `max_len` items; feedback for the user
drops the entry, and a new version starts with an empty cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from genrec.data.dataset import Histories
from genrec.generation import Constraints, explain, generate
from genrec.generation.ann import ItemIndex, ann_top_k_slates
from genrec.models.base import DotProductScores
from genrec.ranking import RowSets
from genrec.serving.erasure import scrub_run
from genrec.serving.events import Erasures, Event, EventStore, StoredEvent
from genrec.serving.overlay import Overlay
from genrec.serving.registry import Registry, Version

log = logging.getLogger("genrec.serving")

POSITIVE = ("view", "click", "purchase", "rating")


def is_positive(e: Event, rating_threshold: float | None) -> bool:
    """Does the event say the user wanted the item? (skips never; ratings above the run's threshold)."""
    if e.type not in POSITIVE:
        return False
    if e.type == "rating" and rating_threshold is not None:
        return e.value is not None and e.value >= rating_threshold
    return True


class UserStates:
    """User vectors of known users for one version: raw user id -> (history digest, (D,) vector).

    Written by the scoring thread, dropped by the event loop when feedback arrives; a lookup only
    hits when the digest of the history being scored equals the one the state was computed from, so a
    race between the two can cost a recomputation but never serve a stale state. At most `capacity`
    users are kept (the oldest entries go first); capacity 0 turns the cache off.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._states: dict[str, tuple[bytes, torch.Tensor]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, user: str, digest: bytes) -> torch.Tensor | None:
        hit = self._states.get(user)
        if hit is not None and hit[0] == digest:
            self.hits += 1
            return hit[1]
        self.misses += 1
        return None

    def put(self, user: str, digest: bytes, state: torch.Tensor) -> None:
        with self._lock:
            self._states.pop(user, None)  # re-insert at the end: eviction order is insertion order
            while len(self._states) >= self.capacity:
                del self._states[next(iter(self._states))]
            self._states[user] = (digest, state.clone())

    def drop(self, user: str) -> None:
        with self._lock:
            self._states.pop(user, None)

    def __len__(self) -> int:
        return len(self._states)

    def users(self) -> list[str]:
        with self._lock:
            return list(self._states)


def history_digest(
    items: np.ndarray, timestamps: np.ndarray | None = None, request_ts: int | None = None
) -> bytes:
    h = hashlib.blake2b(np.ascontiguousarray(items, dtype=np.int64).tobytes(), digest_size=16)
    if timestamps is not None:
        h.update(b"ts")
        h.update(np.ascontiguousarray(timestamps, dtype=np.int64).tobytes())
    if request_ts is not None:
        h.update(b"at")
        h.update(np.int64(request_ts).tobytes())
    return h.digest()


@dataclass
class State:
    """What one request sees: a version and the feedback that arrived after its training watermark."""

    version: Version
    overlay: Overlay  # raw user id -> events with seq > watermark, in seq order (bounded, see overlay.py)
    loaded_seq: int  # highest seq read from the store when this state was built
    erased: Erasures  # who was erased and when (the engine's one table, shared by every state)
    user_states: UserStates = field(default_factory=lambda: UserStates(0))
    # (n_items + 1,) users whose visible history holds each item
    item_users: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    uncounted: set[str] = field(default_factory=set)  # erased users already taken out of item_users
    index: ItemIndex | None = None  # approximate retrieval over the item vectors (--ann-candidates)

    def uncount(self, user_id: str) -> None:
        """Take a user whose history this version must hide out of the per-item user counts."""
        idx = self.version.catalog.user_ids.get(user_id)
        if idx is None or user_id in self.uncounted or not self.hides_base(user_id):
            return
        self.uncounted.add(user_id)
        np.subtract.at(self.item_users, np.unique(self.version.catalog.histories.row(idx)), 1)

    def hides_base(self, user_id: str) -> bool:
        """True when the version's own history of the user predates their erasure (it must not show)."""
        return self.erased.get(user_id, 0) > self.version.erased_through


@dataclass(frozen=True)
class ListSpec:
    """How a list is written (requests with equal specs share one `generate` call)."""

    k: int = 10
    strategy: str = "topk"
    beam_size: int = 4
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0


@dataclass
class Job:
    state: State
    items: np.ndarray  # internal item ids of the history the model reads
    user: int  # internal user id, 0 = ad hoc
    spec: ListSpec = ListSpec()
    exclude_seen: bool = True  # drop the history items from the list
    skips: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # never returned
    allowed: np.ndarray | None = None
    blocked: np.ndarray | None = None
    explain: bool = False
    cache_key: str | None = None  # raw user id when `items` is exactly that user's stored history
    timestamps: np.ndarray | None = None  # unix seconds of each history item (time-aware models read them)
    request_ts: int | None = None  # unix seconds the list is for (the arrival); None: after the last item
    future: asyncio.Future | None = None


@dataclass
class Result:
    items: np.ndarray  # (<= k,) internal item ids, best first
    scores: np.ndarray  # (<= k,) score of each (see genrec.generation: model score or log-probability)
    because: list[list[int]] | None = None  # per item, the history items that most drove it


LOAD_CHUNK = 50_000  # events read from the store at a time when a version loads
LOAD_RETRY_S, LOAD_RETRY_MAX_S = 5.0, 600.0  # a failed version load is retried after 5 s, 10 s, ... 10 min


@dataclass
class LoadFailure:
    version: str
    error: str
    attempts: int
    retry_at: float  # unix time of the next automatic try


@dataclass
class Stats:
    batches: int = 0
    batched_requests: int = 0
    batch_sizes: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    swaps: int = 0


class Engine:
    def __init__(
        self,
        run_dir: str,
        store: EventStore,
        max_batch: int = 64,
        max_wait_s: float = 0.002,
        rating_threshold: float | None = None,
        user_cache: int = 100_000,
        max_clock_skew_s: float = 86_400.0,
        overlay_events: int = 200_000,
        ann_candidates: int = 0,
    ) -> None:
        if not max_clock_skew_s >= 0:
            raise ValueError(f"max_clock_skew_s must be >= 0 seconds, got {max_clock_skew_s}")
        self.registry = Registry(run_dir)
        self.max_clock_skew_s = max_clock_skew_s  # feedback timestamps may run this far ahead of ours
        self.store = store
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.rating_threshold = rating_threshold
        self.user_cache = user_cache
        self._reads: dict[tuple[str, str], asyncio.Future] = {}  # store reads of spilled users in flight
        self.overlay_events = overlay_events  # feedback events held in memory; older users are re-read
        if ann_candidates < 0:
            raise ValueError(f"ann_candidates must be >= 0 (0 = exact top-k), got {ann_candidates}")
        self.ann_candidates = ann_candidates  # candidates per list from an HNSW index; 0 = exact ranking
        self.stats = Stats()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="genrec-score")  # models are not thread-safe
        self._queue: asyncio.Queue[Job] | None = None
        self._arriving = 0  # requests inside a handler that have not queued their job yet
        self._worker: asyncio.Task | None = None
        self._swap_lock: asyncio.Lock | None = None
        self.load_failure: LoadFailure | None = None  # the last version that failed to load, until one loads
        self.registry.ensure()
        self.state = self._build_state(self.registry.load())
        self.erased = self.state.erased  # every later state shares this table: an erasure is never lost
        self._erased_here: set[str] = set()  # ids erased by this process (memory only), for item counts
        self.scrub_files()  # erasures this run's files may still hold (made while no server ran)
        # what other processes write to the same store (several servers behind one address): followed
        self._tail = self.state.loaded_seq  # every event up to here is in the overlay (or trained on)
        self._erasure_tail = self.erased.last_seq

    # --- versions -----------------------------------------------------------------------------
    def _build_state(self, version: Version) -> State:
        """Load the feedback a version has not been trained on (blocking: call off the event loop)."""
        overlay = Overlay(self.overlay_events)
        loaded = version.watermark
        while events := self.store.events_after(loaded, limit=LOAD_CHUNK):  # memory: one chunk at a time
            overlay.extend(events)
            loaded = events[-1].seq
        # only models that score by a dot product get a user-vector cache (checked once per version: a
        # runtime Protocol check costs tens of microseconds, a real share of a cached request)
        cache = UserStates(self.user_cache if isinstance(version.model, DotProductScores) else 0)
        counts = version.catalog.interactions.copy()
        st = State(version, overlay, loaded, self.store.erased_users(), cache, counts)
        if self.ann_candidates and isinstance(version.model, DotProductScores):
            st.index = ItemIndex.build(version.model.item_embeddings(), candidates=self.ann_candidates)
        if len(st.erased):  # tombstones hold tags, not ids: find the catalogue's erased users by tag
            for user in version.catalog.user_raw[1:].tolist():
                if st.erased.get(user) > version.erased_through:
                    st.uncount(user)
        return st

    async def maybe_swap(self, force: bool = False) -> bool:
        """Swap to the registry's current version if it changed; never interrupts in-flight requests.
        A version that failed to load is retried with backoff, or at once with `force`."""
        if self._swap_lock is None:
            self._swap_lock = asyncio.Lock()
        async with self._swap_lock:  # the watcher and /admin/reload never load the same version twice
            return await self._swap(force)

    async def _swap(self, force: bool = False) -> bool:
        try:
            name = self.registry.current()
        except (FileNotFoundError, OSError) as e:
            log.warning("registry: %s", e)
            return False
        if name == self.state.version.name:
            return False
        fail = self.load_failure
        if fail is not None and fail.version == name and time.time() < fail.retry_at and not force:
            return False  # a broken version is not reloaded (and logged) on every tick
        t = time.time()
        try:
            new = await asyncio.to_thread(self._load_and_scrub, name)
        except Exception as e:
            attempts = fail.attempts + 1 if fail is not None and fail.version == name else 1
            wait = min(LOAD_RETRY_MAX_S, LOAD_RETRY_S * 2 ** (attempts - 1))
            self.load_failure = LoadFailure(name, f"{type(e).__name__}: {e}", attempts, time.time() + wait)
            raise
        self.load_failure = None
        old = self.state
        # feedback acknowledged while the new state was loading lives in the old overlay, or in the store
        # for users the old overlay sent back there: the new one looks for those there too
        seen = max(new.loaded_seq, new.version.watermark)
        new.overlay.extend(e for e in old.overlay.events() if e.seq > seen)
        if old.overlay.spills:
            new.overlay.inherit_spills(old.overlay)
        # erasures acknowledged while the new state was loading: its store reads may predate them
        self.erased.merge(new.erased)
        new.erased = self.erased
        for user in new.overlay.users():
            if (seq := self.erased.get(user)) > 0:
                new.overlay.replace(user, [e for e in new.overlay.get(user) if e.seq > seq])
        for user in self._erased_here:
            new.uncount(user)
        self._tail = max(self._tail, new.loaded_seq)
        self.state = new  # the swap: one reference assignment on the event loop thread
        self.stats.swaps += 1
        log.info("swapped model %s -> %s in %.2fs", old.version.name, name, time.time() - t)
        return True

    def _load_and_scrub(self, name: str) -> State:
        st = self._build_state(self.registry.load(name))
        if len(self.erased):  # a version built while an erasure happened may hold that user on disk
            scrub_run(self.registry.run, self.erased, version=name)
        return st

    def scrub_files(self, ids: list[str] | None = None) -> dict[str, int]:
        """Remove erased users (all of them, or just `ids`) from the run's dataset and every version's
        catalogue on disk (blocking: call off the event loop)."""
        done = scrub_run(self.registry.run, self.erased, ids)
        if done:
            log.info("erased users removed from files: %s", done)  # counts only, no ids
        return done

    async def follow_store(self) -> None:
        """Apply the feedback and the erasures that other processes sharing the store wrote since the
        last call: servers behind one address each see every event and every erasure within one watch
        interval (this process's own are applied when they happen)."""
        tail, etail = self._tail, self._erasure_tail
        evs, ers = await asyncio.to_thread(
            lambda: (self.store.events_after(tail, limit=LOAD_CHUNK), self.store.erasures_after(etail))
        )
        new = {tag: seq for tag, seq in ers if seq > self.erased.seqs.get(tag, 0)}
        if new:
            st = self.state
            hit = await asyncio.to_thread(self._users_tagged, st, set(new))
            for user, tag in hit.items():
                self.erase(user, new[tag])
            for tag, seq in new.items():  # the ids this process never saw still count from now on
                self.erased.seqs[tag] = max(self.erased.seqs.get(tag, 0), seq)
        if ers:
            self._erasure_tail = max(etail, ers[-1][1])
        st = self.state
        for e in evs:
            if e.seq > st.version.watermark and e.seq > self.erased.get(e.user_id, 0):
                st.overlay.add(e)  # a no-op for this process's own events (same seq)
                st.user_states.drop(e.user_id)
        if evs:
            self._tail = max(self._tail, evs[-1].seq)

    def _users_tagged(self, st: State, tags: set[str]) -> dict[str, str]:
        """Ids among this state's users (catalogue, overlay, cached states) whose tag is in `tags`."""
        seen = {*st.version.catalog.user_raw[1:].tolist(), *st.overlay.users(), *st.user_states.users()}
        return {u: t for u in seen if (t := self.erased.tag(u)) in tags}

    async def watch(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.follow_store()
            except Exception:  # a store hiccup must not kill the watcher; the next tick retries
                log.exception("could not read the store's new events")
            try:
                await self.maybe_swap()
            except Exception:  # a broken version must not kill the watcher; the old one keeps serving
                log.exception(
                    "could not load the new model version; still serving %s", self.state.version.name
                )

    # --- feedback -----------------------------------------------------------------------------
    def record(self, events: list[StoredEvent]) -> None:
        """Make freshly committed events visible to recommendations (event loop thread only)."""
        st = self.state
        for e in events:
            if e.seq > st.version.watermark:
                st.overlay.add(e)
                st.user_states.drop(e.user_id)

    async def refresh(self, st: State, user_id: str) -> None:
        """Read back from the store the new events of a user the overlay sent there (call when
        `st.overlay.spilled(user_id)`); concurrent requests for the user share one read."""
        key = (st.version.name, user_id)
        read = self._reads.get(key)
        if read is None:
            read = self._reads[key] = asyncio.ensure_future(self._read_back(st, user_id))
            read.add_done_callback(lambda _: self._reads.pop(key, None))
        await asyncio.shield(read)

    async def _read_back(self, st: State, user_id: str) -> None:
        st.overlay.begin_read(user_id)  # events recorded meanwhile are buffered, not dropped
        evs: list[StoredEvent] = []
        try:
            evs = await asyncio.to_thread(self.store.user_events, user_id, after=st.version.watermark)
        finally:
            st.overlay.end_read(user_id, evs)

    def erase(self, user_id: str, seq: int) -> None:
        """Hide what the user did before erasure `seq` from every state, now and after any swap (event
        loop thread only; the store has already deleted their events)."""
        st = self.state
        self.erased.record(user_id, seq)
        self._erased_here.add(user_id)
        st.overlay.replace(user_id, [e for e in st.overlay.get(user_id) if e.seq > seq])  # later: new consent
        st.user_states.drop(user_id)
        st.uncount(user_id)

    # --- histories ----------------------------------------------------------------------------
    def known_user(self, st: State, user_id: str) -> bool:
        idx = st.version.catalog.user_ids.get(user_id)
        has_base = (
            idx is not None and not st.hides_base(user_id) and len(st.version.catalog.histories.row(idx)) > 0
        )
        return has_base or bool(st.overlay.get(user_id))

    def user_history(self, st: State, user_id: str) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """(internal user id or 0, history items the model reads, extra items to exclude such as skips,
        unix seconds of each history item).

        Times: the dataset's for the training history (0 when it has none, as in training), the event's
        `timestamp` for feedback, or when the event came without one, the time the server received it."""
        cat = st.version.catalog
        h = cat.histories
        known = idx = cat.user_ids.get(user_id)
        if idx is None or st.hides_base(user_id):
            known = None
        base = h.row(known) if known is not None else np.zeros(0, np.int64)
        base_ts = h.row_timestamps(known) if known is not None else None
        if base_ts is None:
            base_ts = np.zeros(len(base), np.int64)
        add, add_ts, skips = [], [], []
        for e in st.overlay.get(user_id):
            i = cat.item_ids.get(e.item_id)
            if i is None:
                continue  # an item the model does not know yet: it joins at the next update
            if is_positive(e, self.rating_threshold):
                add.append(i)
                add_ts.append(int(e.timestamp if e.timestamp is not None else e.received_at))
            elif e.type == "skip":
                skips.append(i)
        items = np.concatenate([base, np.asarray(add, dtype=np.int64)]) if add else base
        ts = np.concatenate([base_ts, np.asarray(add_ts, dtype=np.int64)]) if add else base_ts
        return (idx or 0), items.astype(np.int64), np.asarray(skips, dtype=np.int64), ts.astype(np.int64)

    # --- batched scoring ----------------------------------------------------------------------
    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=False, cancel_futures=True)

    def arriving(self, delta: int) -> None:
        self._arriving += delta

    async def submit(self, job: Job) -> Result:
        assert self._queue is not None, "Engine.start() was not called"
        job.future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(job)
        return await job.future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        q = self._queue
        while True:
            batch = [await q.get()]
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.max_batch:
                while len(batch) < self.max_batch and not q.empty():
                    batch.append(q.get_nowait())
                # wait only while other requests are on their way in; a lone request goes at once
                if self._arriving <= 0 or loop.time() >= deadline or len(batch) >= self.max_batch:
                    break
                await asyncio.sleep(0.0002)
            try:
                results = await loop.run_in_executor(self._pool, self._score_batch, batch)
            except Exception as e:  # fail these requests, keep the worker alive
                log.exception("scoring a batch of %d failed", len(batch))
                results = [e] * len(batch)
            for job, res in zip(batch, results):
                if not job.future.done():
                    if isinstance(res, Exception):
                        job.future.set_exception(res)
                    else:
                        job.future.set_result(res)
            self.stats.batches += 1
            self.stats.batched_requests += len(batch)
            self.stats.batch_sizes[len(batch)] += 1

    def _score_batch(self, batch: list[Job]) -> list[Result | Exception]:
        by_version: dict[int, list[int]] = defaultdict(list)
        for j, job in enumerate(batch):
            by_version[id(job.state.version)].append(j)
        out: list[Result | Exception] = [None] * len(batch)  # type: ignore[list-item]
        for rows in by_version.values():
            jobs = [batch[j] for j in rows]
            try:
                res = score_jobs(jobs)
            except Exception as e:
                log.exception("scoring failed")
                res = [e] * len(jobs)
            for j, r in zip(rows, res):
                out[j] = r
        return out


def histories_of(jobs: list[Job]) -> Histories:
    timed = all(j.timestamps is not None for j in jobs)
    users = np.array([j.user for j in jobs], dtype=np.int64)
    h = Histories.from_lists(
        [j.items for j in jobs], users=users, timestamps=[j.timestamps for j in jobs] if timed else None
    )
    if any(j.request_ts is not None for j in jobs):
        after_last = [
            int(j.timestamps[-1]) if j.timestamps is not None and len(j.timestamps) else 0 for j in jobs
        ]
        h.request_ts = np.array(
            [j.request_ts if j.request_ts is not None else t for j, t in zip(jobs, after_last)],
            dtype=np.int64,
        )
    return h


def raw_scores(jobs: list[Job], hist: Histories) -> torch.Tensor:
    """(B, n_items + 1) model scores of the jobs' histories (one version): from cached user vectors
    for `DotProductScores` models (their State has a cache), one `model.score` call otherwise."""
    model = jobs[0].state.version.model
    if jobs[0].state.user_states.capacity == 0:
        return model.score(hist).float()
    return model.scores_from_embeddings(user_vectors(jobs, hist)).float()  # = model.score (the protocol)


def user_vectors(jobs: list[Job], hist: Histories) -> torch.Tensor:
    """(B, D) user vectors of the jobs' histories (a `DotProductScores` version), from the cache where
    it holds them; one `user_embeddings` pass for the rest."""
    model = jobs[0].state.version.model
    cache = jobs[0].state.user_states
    if cache.capacity == 0:
        return model.user_embeddings(hist)
    states: list[torch.Tensor | None] = [None] * len(jobs)
    digests: list[bytes | None] = [None] * len(jobs)
    missing = []
    for b, j in enumerate(jobs):
        if j.cache_key is not None:
            # a model that reads the request time holds a state per request time
            digests[b] = history_digest(
                j.items, j.timestamps, j.request_ts if model.reads_request_time else None
            )
            hit = cache.get(j.cache_key, digests[b])
            if hit is not None:
                states[b] = hit
                continue
        missing.append(b)
    if missing:
        fresh = model.user_embeddings(hist.take(missing))  # (M, D): one pass for every miss
        for b, s in zip(missing, fresh):
            states[b] = s
            if digests[b] is not None:
                cache.put(jobs[b].cache_key, digests[b], s)
    return torch.stack(states)


@torch.no_grad()
def score_jobs(jobs: list[Job]) -> list[Result]:
    """The lists of jobs of one version: one `generate` call per list spec, each job's filters as
    per-row constraints (its skips and, with exclude_seen, its history are blocked for its row)."""
    by_spec: dict[ListSpec, list[int]] = defaultdict(list)
    for b, j in enumerate(jobs):
        by_spec[j.spec].append(b)
    out: list[Result] = [None] * len(jobs)  # type: ignore[list-item]
    for spec, rows in by_spec.items():
        for b, res in zip(rows, _lists([jobs[b] for b in rows], spec)):
            out[b] = res
    return out


def _lists(jobs: list[Job], spec: ListSpec) -> list[Result]:
    model = jobs[0].state.version.model
    hist = histories_of(jobs)
    none = np.zeros(0, np.int64)
    blocked = RowSets.from_lists(
        [
            np.concatenate(
                [j.blocked if j.blocked is not None else none, j.skips, j.items if j.exclude_seen else none]
            )
            for j in jobs
        ]
    )
    allowed = (
        RowSets.from_lists([j.allowed for j in jobs]) if any(j.allowed is not None for j in jobs) else None
    )
    cons = Constraints(exclude_seen=False, allowed=allowed, blocked=blocked)
    explained = [b for b, j in enumerate(jobs) if j.explain]
    index = jobs[0].state.index
    if index is not None and spec.strategy == "topk" and not explained:  # approximate candidates
        slates = ann_top_k_slates(
            model, hist, spec.k, index, cons, index.candidates, user_vectors(jobs, hist)
        )
        items, vals = slates.items, slates.scores
        return [Result(items[b][items[b] > 0], vals[b][items[b] > 0], None) for b in range(len(jobs))]
    scores = raw_scores(jobs, hist) if spec.strategy == "topk" or explained else None
    slates = generate(
        model,
        hist,
        spec.k,
        spec.strategy,
        cons,
        beam_size=spec.beam_size,
        temperature=spec.temperature,
        top_p=spec.top_p,
        seed=spec.seed,
        scores=scores if spec.strategy == "topk" else None,
    )
    because: list[list[list[int]] | None] = [None] * len(jobs)
    if explained:
        why = explain(model, hist.take(explained), slates.items[explained], scores[explained])
        for b, w in zip(explained, why):
            because[b] = w
    results = []
    for b in range(len(jobs)):
        keep = slates.items[b] > 0  # padding slots (fewer eligible items than k) are never answered
        reasons = None if because[b] is None else [r for r, ok in zip(because[b], keep) if ok]
        results.append(Result(slates.items[b][keep], slates.scores[b][keep], reasons))
    return results
