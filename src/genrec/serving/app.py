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
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from genrec.serving.engine import Engine
from genrec.serving.metrics import Metrics
from genrec.serving.middleware import Limits
from genrec.serving.routes import ROUTERS
from genrec.serving.schemas import MAX_BODY_BYTES

log = logging.getLogger("genrec.serving")


def swagger_assets() -> Path | None:
    """Swagger UI's files from the installed swagger-ui-bundle package (None when it is missing: /docs
    then loads them from a CDN, FastAPI's default, and is blank offline)."""
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def serve_docs_offline(app: FastAPI, assets: Path) -> None:
    """/docs from local files, so the API's documentation works with no network."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount("/docs/assets", StaticFiles(directory=assets), name="swagger-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="genrec API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from swagger.io
        )


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

    assets = swagger_assets()
    app = FastAPI(
        title="genrec",
        version="1",
        lifespan=lifespan,
        description="Recommendations from a genrec run, feedback collection, privacy erasure.",
        docs_url=None if assets else "/docs",  # with the assets installed, /docs is served below
    )
    if assets:
        serve_docs_offline(app, assets)
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
