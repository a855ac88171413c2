"""The HTTP API (FastAPI). Ids in and out are the dataset's own ids; the OpenAPI spec is at /openapi.json.

Write routes (POST /feedback, DELETE /users/{id}, /admin/*) need the `X-API-Key` header; read
routes too when the server runs with `protect_reads`. Errors are JSON `{"detail": ...}` with a 4xx
status; unexpected failures answer 500 with a request id and never a stack trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import time
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from genrec.serving.engine import Engine, Job, State
from genrec.serving.events import Event, StoredEvent

log = logging.getLogger("genrec.serving")

MAX_BODY_BYTES = 1 << 20  # 1 MiB: a batch of 1,000 events fits comfortably
MAX_K = 1000
MAX_HISTORY = 2000
MAX_EVENTS = 1000
MAX_FILTER = 10000
RawId = Annotated[
    int | Annotated[str, Field(min_length=1, max_length=256)], Field(union_mode="left_to_right")
]


# --- schemas ----------------------------------------------------------------------------------------
class RecommendedItem(BaseModel):
    item_id: int | str
    score: float
    title: str | None = None
    because: list[int | str] | None = Field(None, description="history items that most drove this item")


class Recommendations(BaseModel):
    user_id: int | str | None
    model_version: str
    items: list[RecommendedItem]
    unknown_items: list[int | str] = Field([], description="history items the model does not know (ignored)")


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: RawId | None = Field(None, description="a known user: their stored history is used too")
    history: list[RawId] = Field([], max_length=MAX_HISTORY, description="item ids, oldest first")
    timestamps: list[datetime] | None = Field(
        None,
        max_length=MAX_HISTORY,
        description="when each history item happened (ISO 8601 or unix seconds), one per history item; "
        "time-aware models (HSTU) read them; default: the time of the request",
    )
    k: int = Field(10, ge=1, le=MAX_K)
    exclude_seen: bool = True
    blocked: list[RawId] = Field([], max_length=MAX_FILTER, description="never recommend these")
    allowed: list[RawId] | None = Field(None, max_length=MAX_FILTER, description="recommend only among these")
    temperature: float = Field(0.0, ge=0.0, le=100.0, description="0 = top-k; > 0 = sample from softmax(s/T)")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="makes sampling reproducible")
    explain: bool = False

    @field_validator("timestamps")
    @classmethod
    def _sane_times(cls, v: list[datetime] | None) -> list[datetime] | None:
        for t in v or ():
            _unix(t)
        return v

    @model_validator(mode="after")
    def _one_time_per_item(self) -> RecommendRequest:
        if self.timestamps is not None and len(self.timestamps) != len(self.history):
            raise ValueError(
                f"timestamps has {len(self.timestamps)} entries but history has {len(self.history)}; "
                "give one per history item or none"
            )
        return self


def _unix(t: datetime) -> int:
    try:
        return int(t.timestamp())
    except (OverflowError, OSError, ValueError):
        raise ValueError("timestamp out of range") from None


class FeedbackEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="client-chosen id; a retry with the same id is stored once",
    )
    user_id: RawId
    item_id: RawId
    type: Literal["view", "click", "purchase", "rating", "skip"]
    value: float | None = Field(None, description="the rating for type=rating; optional otherwise")
    timestamp: datetime | None = Field(None, description="when it happened (ISO 8601 or unix seconds)")

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("value must be a finite number")
        return v

    @field_validator("timestamp")
    @classmethod
    def _sane_time(cls, v: datetime | None) -> datetime | None:
        if v is not None:
            try:
                v.timestamp()
            except (OverflowError, OSError, ValueError):
                raise ValueError("timestamp out of range") from None
        return v


class FeedbackBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[FeedbackEvent] = Field(min_length=1, max_length=MAX_EVENTS)


class EventAck(BaseModel):
    event_id: str
    seq: int
    duplicate: bool


class FeedbackResponse(BaseModel):
    stored: int = Field(description="events newly committed")
    duplicates: int = Field(description="events already stored under the same event_id (retries)")
    events: list[EventAck]


class HistoryItem(BaseModel):
    item_id: int | str
    source: Literal["training", "feedback"]
    type: str | None = None
    value: float | None = None
    timestamp: float | None = None
    event_id: str | None = None
    seq: int | None = None
    title: str | None = None


class History(BaseModel):
    user_id: int | str
    items: list[HistoryItem]


class ItemInfo(BaseModel):
    item_id: int | str
    title: str | None = None
    known_to_model: bool
    interactions: int = Field(description="users whose stored history contains the item")


class Erased(BaseModel):
    user_id: int | str
    events_deleted: int


class Detail(BaseModel):
    detail: Any


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Detail, "description": "missing or wrong X-API-Key"},
    413: {"model": Detail, "description": "request body too large"},
}


# --- the app ----------------------------------------------------------------------------------------
def create_app(
    engine: Engine,
    api_key: str | None = None,
    protect_reads: bool = False,
    watch_interval_s: float = 1.0,
    max_body: int = MAX_BODY_BYTES,
) -> FastAPI:
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.start()
        watcher = (
            asyncio.get_running_loop().create_task(engine.watch(watch_interval_s))
            if watch_interval_s
            else None
        )
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
            await engine.stop()

    app = FastAPI(
        title="genrec",
        version="1",
        lifespan=lifespan,
        description="Recommendations from a genrec run, feedback collection, privacy erasure.",
    )
    app.state.engine = engine
    key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="required for writes")

    def check_key(given: str | None) -> None:
        if api_key is None:
            raise HTTPException(
                403,
                "this server was started without an API key, so write routes are off; "
                "restart it with --api-key KEY or GENREC_API_KEY",
            )
        if given is None or not hmac.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(401, "missing or wrong X-API-Key header")

    # async: a plain def dependency would run in a worker thread, one thread hop per request
    async def write_auth(key: str | None = Depends(key_header)) -> None:
        check_key(key)

    async def read_auth(key: str | None = Depends(key_header)) -> None:
        if protect_reads:
            check_key(key)

    # --- errors: clear 4xx, never a stack trace ---------------------------------------------------
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errs}, status_code=422)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        rid = uuid.uuid4().hex[:12]
        log.error(
            "request %s %s failed (id %s): %s",
            request.method,
            request.url.path,
            rid,
            type(exc).__name__,
            exc_info=exc,
        )
        return JSONResponse({"detail": f"internal error (request id {rid})"}, status_code=500)

    # --- recommendations ---------------------------------------------------------------------------
    async def run_job(
        st: State,
        user_id: Any,
        user: int,
        items: np.ndarray,
        skips: np.ndarray,
        req: RecommendRequest,
        unknown: list,
        cache_key: str | None = None,
        timestamps: np.ndarray | None = None,
    ) -> Response:
        cat = st.version.catalog
        exclude = np.concatenate([items, skips]) if req.exclude_seen else skips

        def ids(raw: list | None) -> np.ndarray | None:
            if raw is None:
                return None
            idx = [cat.item_index(r) for r in raw]
            return np.asarray([i for i in idx if i is not None], dtype=np.int64)

        job = Job(
            st,
            items,
            user,
            req.k,
            exclude,
            ids(req.allowed),
            ids(req.blocked),
            req.temperature,
            req.seed,
            req.explain,
            cache_key,
            timestamps,
        )
        engine.arriving(-1)  # queued: the batcher no longer waits for this one
        res = await engine.submit(job)
        out = []
        for r, (i, s) in enumerate(zip(res.items, res.scores)):
            row: dict[str, Any] = {"item_id": cat.item_id(i), "score": s}
            title = cat.title(i)
            if title is not None:
                row["title"] = title
            if res.because is not None:
                row["because"] = [cat.item_id(h) for h in res.because[r]]
            out.append(row)
        body = {"user_id": user_id, "model_version": st.version.name, "items": out}
        if unknown:
            body["unknown_items"] = unknown
        return Response(json.dumps(body), media_type="application/json")

    def unknown_user(user_id: Any) -> HTTPException:
        return HTTPException(
            404,
            f"unknown user {user_id!r}: no training history and no feedback; for a new or "
            'anonymous user POST /recommend with {"history": [item ids]}',
        )

    @app.get(
        "/recommend",
        response_model=Recommendations,
        tags=["recommend"],
        responses={404: {"model": Detail, "description": "unknown user"}, **ERRORS},
        dependencies=[Depends(read_auth)],
    )
    async def recommend_get(
        user_id: Annotated[str, Query(min_length=1, max_length=256, description="a user id of the dataset")],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
        exclude_seen: bool = True,
        explain: bool = False,
    ) -> Response:
        """Top-k for a known user from everything stored about them (training history + feedback)."""
        engine.arriving(1)
        try:
            st = engine.state
            if not engine.known_user(st, user_id):
                raise unknown_user(user_id)
            user, items, skips, ts = engine.user_history(st, user_id)
            req = RecommendRequest(k=k, exclude_seen=exclude_seen, explain=explain)
        except BaseException:
            engine.arriving(-1)
            raise
        uid = st.version.catalog.user_id(user_id)
        return await run_job(st, uid, user, items, skips, req, [], user_id, ts)

    @app.post(
        "/recommend",
        response_model=Recommendations,
        tags=["recommend"],
        responses={404: {"model": Detail, "description": "unknown user"}, **ERRORS},
        dependencies=[Depends(read_auth)],
    )
    async def recommend_post(req: RecommendRequest) -> Response:
        """Top-k (or sampled) for an ad-hoc history, optionally on top of a known user's stored history,
        with business filters and explanations."""
        engine.arriving(1)
        try:
            st = engine.state
            cat = st.version.catalog
            none = np.zeros(0, np.int64)
            user, items, skips, ts = 0, none, none, none
            if req.user_id is not None:
                if not engine.known_user(st, str(req.user_id)) and not req.history:
                    raise unknown_user(req.user_id)
                user, items, skips, ts = engine.user_history(st, str(req.user_id))
            given = [cat.item_index(r) for r in req.history]
            unknown = [r for r, i in zip(req.history, given) if i is None]
            known = np.asarray([i for i in given if i is not None], dtype=np.int64)
            now = int(time.time())
            times = [_unix(t) for t in req.timestamps] if req.timestamps is not None else [now] * len(given)
            known_ts = np.asarray([t for t, i in zip(times, given) if i is not None], dtype=np.int64)
            items = np.concatenate([items, known])
            ts = np.concatenate([ts, known_ts])
            # the stored history alone is what the user-state cache holds
            cache_key = str(req.user_id) if req.user_id is not None and not req.history else None
        except BaseException:
            engine.arriving(-1)
            raise
        return await run_job(st, req.user_id, user, items, skips, req, unknown, cache_key, ts)

    # --- feedback ----------------------------------------------------------------------------------
    @app.post(
        "/feedback",
        response_model=FeedbackResponse,
        tags=["feedback"],
        responses=ERRORS,
        dependencies=[Depends(write_auth)],
    )
    async def feedback(body: FeedbackEvent | FeedbackBatch) -> FeedbackResponse:
        """Store one event or a batch; answers only after the events are durably committed.
        Unknown users and items are stored too (they join the catalogue at the next `genrec update`)."""
        evs = body.events if isinstance(body, FeedbackBatch) else [body]
        events = [
            Event(
                str(e.user_id),
                str(e.item_id),
                e.type,
                e.value,
                e.timestamp.timestamp() if e.timestamp is not None else None,
                **({"event_id": e.event_id} if e.event_id else {}),
            )
            for e in evs
        ]
        acks = await asyncio.to_thread(engine.store.append, events)
        fresh = []
        for e, a in zip(events, acks):
            if not a.duplicate:
                fresh.append(
                    StoredEvent(e.user_id, e.item_id, e.type, e.value, e.timestamp, e.event_id, seq=a.seq)
                )
        engine.record(fresh)
        metrics.events += len(fresh)
        return FeedbackResponse(
            stored=len(fresh),
            duplicates=len(acks) - len(fresh),
            events=[EventAck(event_id=a.event_id, seq=a.seq, duplicate=a.duplicate) for a in acks],
        )

    # --- users and items ---------------------------------------------------------------------------
    @app.get(
        "/users/{user_id}/history",
        response_model=History,
        tags=["users"],
        responses={404: {"model": Detail, "description": "unknown user"}, **ERRORS},
        dependencies=[Depends(read_auth)],
    )
    async def history(user_id: Annotated[str, Path(min_length=1, max_length=256)]) -> History:
        """Training history (unless erased) followed by every stored feedback event, oldest first."""
        st = engine.state
        cat = st.version.catalog
        idx = cat.user_index(user_id)
        stored = await asyncio.to_thread(engine.store.user_events, user_id)
        base = cat.histories.row(idx) if idx is not None and user_id not in st.erased else []
        if not len(base) and not stored:
            raise unknown_user(user_id)
        items = [HistoryItem(item_id=cat.item_id(i), source="training", title=cat.title(i)) for i in base]
        for e in stored:
            i = cat.item_index(e.item_id)
            items.append(
                HistoryItem(
                    item_id=cat.item_id(i) if i is not None else e.item_id,
                    source="feedback",
                    type=e.type,
                    value=e.value,
                    timestamp=e.timestamp,
                    event_id=e.event_id,
                    seq=e.seq,
                    title=cat.title(i) if i is not None else None,
                )
            )
        return History(user_id=cat.user_id(user_id), items=items)

    @app.delete(
        "/users/{user_id}",
        response_model=Erased,
        tags=["users"],
        responses=ERRORS,
        dependencies=[Depends(write_auth)],
    )
    async def erase(user_id: Annotated[str, Path(min_length=1, max_length=256)]) -> Erased:
        """Erase the user's stored events and exclude them from every future training run."""
        n = await asyncio.to_thread(engine.store.erase_user, user_id)
        after = (await asyncio.to_thread(engine.store.erased_users)).get(user_id, 0)
        engine.erase(user_id, after)
        log.info("erased a user (%d events)", n)  # no ids, no histories in logs
        return Erased(user_id=engine.state.version.catalog.user_id(user_id), events_deleted=n)

    @app.get(
        "/items/{item_id}",
        response_model=ItemInfo,
        tags=["items"],
        responses={404: {"model": Detail, "description": "unknown item"}, **ERRORS},
        dependencies=[Depends(read_auth)],
    )
    async def item(item_id: Annotated[str, Path(min_length=1, max_length=256)]) -> ItemInfo:
        cat = engine.state.version.catalog
        i = cat.item_index(item_id)
        if i is None:
            raise HTTPException(
                404,
                f"unknown item {item_id!r}: not in the catalogue of model "
                f"{engine.state.version.name} (feedback on it is kept for the next update)",
            )
        return ItemInfo(
            item_id=cat.item_id(i),
            title=cat.title(i),
            known_to_model=True,
            interactions=int(popularity(cat)[i]),
        )

    # --- operations --------------------------------------------------------------------------------
    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"model": Detail}})
    async def readyz() -> JSONResponse:
        """A model is loaded and the event store answers."""
        ok = await asyncio.to_thread(engine.store.ping)
        body = {
            "status": "ready" if ok else "event store unavailable",
            "model_version": engine.state.version.name,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        """Prometheus text format: request counts and latencies per route, batching, model version."""
        return PlainTextResponse(metrics.render(engine), media_type="text/plain; version=0.0.4")

    @app.get("/admin/versions", tags=["admin"], responses=ERRORS, dependencies=[Depends(write_auth)])
    async def versions() -> dict:
        """Every published version with its metrics, and the one being served."""
        reg = engine.registry
        return {
            "serving": engine.state.version.name,
            "current": reg.current(),
            "versions": [reg.meta(v) for v in reg.versions()],
        }

    @app.post("/admin/reload", tags=["admin"], responses=ERRORS, dependencies=[Depends(write_auth)])
    async def reload() -> dict:
        """Swap to the registry's current version now instead of at the next watch tick."""
        swapped = await engine.maybe_swap()
        return {"serving": engine.state.version.name, "swapped": swapped}

    app.add_middleware(Limits, max_body=max_body, metrics=metrics)
    return app


_POP_CACHE: dict[int, np.ndarray] = {}


def popularity(cat: Any) -> np.ndarray:
    key = id(cat)
    if key not in _POP_CACHE:
        h = cat.histories
        users_per_item = np.zeros(cat.n_items + 1, dtype=np.int64)
        pairs = np.unique(np.stack([h.row_ids(), h.items]), axis=1)
        np.add.at(users_per_item, pairs[1], 1)
        _POP_CACHE.clear()
        _POP_CACHE[key] = users_per_item
    return _POP_CACHE[key]


# --- middleware: body limit, request metrics, access log without user data ------------------------
class Limits:
    """Pure ASGI: 413 for bodies over `max_body` (declared or streamed); per-route counts and latencies."""

    def __init__(self, app: Any, max_body: int, metrics: Metrics) -> None:
        self.app, self.max_body, self.metrics = app, max_body, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = {"code": 500}
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _send_json(send, 413, {"detail": f"request body over {self.max_body} bytes"})
            self.metrics.observe(scope["method"], "(rejected)", 413, time.perf_counter() - t0)
            return
        if declared is None and scope["method"] in ("POST", "PUT", "PATCH"):
            # no declared length (chunked): buffer up to the limit, then replay to the app
            chunks, n, more = [], 0, True
            while more:
                msg = await receive()
                if msg["type"] != "http.request":
                    break
                chunks.append(msg.get("body", b""))
                n += len(chunks[-1])
                more = msg.get("more_body", False)
                if n > self.max_body:
                    await _send_json(send, 413, {"detail": f"request body over {self.max_body} bytes"})
                    self.metrics.observe(scope["method"], "(rejected)", 413, time.perf_counter() - t0)
                    return
            body, replayed = b"".join(chunks), False

            async def replay() -> dict:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            receive = replay

        async def tracking_send(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                status["code"] = msg["status"]
            await send(msg)

        await self.app(scope, receive, tracking_send)
        route = scope.get("route")
        path = getattr(route, "path", "(unmatched)")
        dt = time.perf_counter() - t0
        self.metrics.observe(scope["method"], path, status["code"], dt)
        # the path template only: no user ids, no query strings, no histories in the logs
        log.debug("%s %s %d %.1fms", scope["method"], path, status["code"], dt * 1e3)


async def _send_json(send: Any, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = defaultdict(int)
        self.hist: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.sums: dict[str, float] = defaultdict(float)
        self.events = 0
        self.started = time.time()

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        self.counts[(method, path, status)] += 1
        h = self.hist[path]
        for i, b in enumerate(BUCKETS):
            if seconds <= b:
                h[i] += 1
                break
        else:
            h[-1] += 1
        self.sums[path] += seconds

    def render(self, engine: Engine) -> str:
        v = engine.state.version
        lines = [
            "# HELP genrec_requests_total HTTP requests by method, route and status.",
            "# TYPE genrec_requests_total counter",
        ]
        for (m, p, s), n in sorted(self.counts.items()):
            lines.append(f'genrec_requests_total{{method="{m}",route="{p}",status="{s}"}} {n}')
        lines += [
            "# HELP genrec_request_duration_seconds Request latency by route.",
            "# TYPE genrec_request_duration_seconds histogram",
        ]
        for p, h in sorted(self.hist.items()):
            cum = 0
            for b, c in zip(BUCKETS, h):
                cum += c
                lines.append(f'genrec_request_duration_seconds_bucket{{route="{p}",le="{b}"}} {cum}')
            cum += h[-1]
            lines.append(f'genrec_request_duration_seconds_bucket{{route="{p}",le="+Inf"}} {cum}')
            lines.append(f'genrec_request_duration_seconds_sum{{route="{p}"}} {self.sums[p]:.6f}')
            lines.append(f'genrec_request_duration_seconds_count{{route="{p}"}} {cum}')
        st = engine.stats
        lines += [
            "# HELP genrec_model_info The model version being served.",
            "# TYPE genrec_model_info gauge",
            f'genrec_model_info{{version="{v.name}",model="{v.model.name}"}} 1',
            "# HELP genrec_model_swaps_total Hot swaps to a newly published version.",
            "# TYPE genrec_model_swaps_total counter",
            f"genrec_model_swaps_total {st.swaps}",
            "# HELP genrec_score_batches_total Batched model.score calls.",
            "# TYPE genrec_score_batches_total counter",
            f"genrec_score_batches_total {st.batches}",
            "# HELP genrec_batched_requests_total Recommendation requests scored in batches.",
            "# TYPE genrec_batched_requests_total counter",
            f"genrec_batched_requests_total {st.batched_requests}",
            "# HELP genrec_user_state_cache_total Sequence-model user-state lookups by outcome.",
            "# TYPE genrec_user_state_cache_total counter",
            f'genrec_user_state_cache_total{{outcome="hit"}} {engine.state.user_states.hits}',
            f'genrec_user_state_cache_total{{outcome="miss"}} {engine.state.user_states.misses}',
            "# HELP genrec_user_state_cache_users Users whose state is cached for the served version.",
            "# TYPE genrec_user_state_cache_users gauge",
            f"genrec_user_state_cache_users {len(engine.state.user_states)}",
            "# HELP genrec_feedback_events_total Feedback events committed by this process.",
            "# TYPE genrec_feedback_events_total counter",
            f"genrec_feedback_events_total {self.events}",
            "# HELP genrec_uptime_seconds Seconds since start.",
            "# TYPE genrec_uptime_seconds gauge",
            f"genrec_uptime_seconds {time.time() - self.started:.1f}",
        ]
        return "\n".join(lines) + "\n"
