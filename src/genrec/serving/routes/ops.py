"""Operations: liveness, readiness, Prometheus metrics; admin: the registry and an immediate swap."""

from __future__ import annotations

import asyncio
import os
import time

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse, PlainTextResponse

from genrec.serving.engine import Engine
from genrec.serving.metrics import Metrics
from genrec.serving.routes.deps import engine, metrics, write_auth
from genrec.serving.schemas import ERRORS, Detail

router = APIRouter()


@router.get("/healthz", tags=["ops"])
async def healthz() -> dict:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", tags=["ops"], responses={503: {"model": Detail}})
async def readyz(eng: Engine = Depends(engine)) -> JSONResponse:
    """A model is loaded and the event store answers; a newer version that failed to load is shown with
    its error and when it is tried again (the old version keeps serving)."""
    ok = await asyncio.to_thread(eng.store.ping)
    body: dict = {"status": "ready" if ok else "event store unavailable"}
    body["model_version"] = eng.state.version.name
    body["worker"] = os.getpid()  # which process answered, when `genrec serve --workers N` runs several
    if (fail := eng.load_failure) is not None:  # still serving the old version: ready, but say why
        body["failed_load"] = {
            "version": fail.version,
            "error": fail.error,
            "attempts": fail.attempts,
            "retry_in_s": round(max(0.0, fail.retry_at - time.time()), 1),
        }
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
async def prometheus(eng: Engine = Depends(engine), stats: Metrics = Depends(metrics)) -> PlainTextResponse:
    """Prometheus text format: request counts and latencies per route, batching, model version."""
    return PlainTextResponse(stats.render(eng), media_type="text/plain; version=0.0.4")


@router.get("/admin/versions", tags=["admin"], responses=ERRORS, dependencies=[Depends(write_auth)])
async def versions(eng: Engine = Depends(engine)) -> dict:
    """Every published version with its metrics, and the one being served."""
    reg = eng.registry
    return {
        "serving": eng.state.version.name,
        "current": reg.current(),
        "versions": [reg.meta(v) for v in reg.versions()],
    }


@router.post(
    "/admin/reload",
    tags=["admin"],
    responses={503: {"model": Detail, "description": "the current version failed to load"}, **ERRORS},
    dependencies=[Depends(write_auth)],
)
async def reload(eng: Engine = Depends(engine)) -> dict:
    """Swap to the registry's current version now instead of at the next watch tick (a version that
    failed to load is tried again at once)."""
    try:
        swapped = await eng.maybe_swap(force=True)
    except Exception as e:  # the old version keeps serving; say which one failed and why
        raise HTTPException(
            503, f"could not load {eng.registry.current()}: {e}; still serving {eng.state.version.name}"
        ) from None
    return {"serving": eng.state.version.name, "swapped": swapped}
