"""Operations: liveness, readiness, Prometheus metrics; admin: the registry and an immediate swap."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends
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
    """A model is loaded and the event store answers."""
    ok = await asyncio.to_thread(eng.store.ping)
    body = {"status": "ready" if ok else "event store unavailable", "model_version": eng.state.version.name}
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


@router.post("/admin/reload", tags=["admin"], responses=ERRORS, dependencies=[Depends(write_auth)])
async def reload(eng: Engine = Depends(engine)) -> dict:
    """Swap to the registry's current version now instead of at the next watch tick."""
    swapped = await eng.maybe_swap()
    return {"serving": eng.state.version.name, "swapped": swapped}
