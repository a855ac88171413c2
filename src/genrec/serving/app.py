"""The HTTP API (FastAPI). Ids in and out are the dataset's own ids (answered as strings); the OpenAPI
spec is at /openapi.json.

Every route but /healthz, /readyz and /metrics needs an `X-API-Key` header: the admin key for POST
/feedback, GET /users/{id}/history, DELETE /users/{id} and /admin/*; the read key (or the admin key) for
/recommend and /items. With `anonymous_reads` a request without a key may read, but only lists for a
history it sends (no stored user, no explanations). Errors are JSON `{"detail": ...}` with a 4xx
status; unexpected failures answer 500 with a request id and never a stack trace.

This module wires the app; the routes (serving/routes/), bodies (schemas.py), middleware and metrics
live beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from genrec.serving.engine import Engine
from genrec.serving.metrics import Metrics
from genrec.serving.middleware import Limits
from genrec.serving.routes import ROUTERS
from genrec.serving.schemas import MAX_BODY_BYTES

log = logging.getLogger("genrec.serving")


def create_app(
    engine: Engine,
    api_key: str | None = None,
    read_key: str | None = None,
    anonymous_reads: bool = False,
    watch_interval_s: float = 1.0,
    max_body: int = MAX_BODY_BYTES,
) -> FastAPI:
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
            # here, not after the server returns: on SIGTERM uvicorn re-raises the signal once the app has
            # shut down, and closing is what checkpoints SQLite's WAL into the database file and removes it
            engine.store.close()

    app = FastAPI(
        title="genrec",
        version="1",
        lifespan=lifespan,
        description="Recommendations from a genrec run, feedback collection, privacy erasure.",
    )
    app.state.engine = engine
    app.state.api_key = api_key
    app.state.read_key = read_key
    app.state.anonymous_reads = anonymous_reads
    app.state.metrics = Metrics()

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

    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(Limits, max_body=max_body, metrics=app.state.metrics)
    return app
