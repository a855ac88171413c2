"""What the routes share: the engine and metrics of the app, API-key checks, the unknown-user error."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader

from genrec.serving.engine import Engine
from genrec.serving.metrics import Metrics

key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="required for writes")


# every dependency is async: FastAPI runs a plain def dependency in a worker thread, one thread hop
# (and a large share of a cached request's CPU) per request
async def engine(request: Request) -> Engine:
    return request.app.state.engine


async def metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def check_key(request: Request, given: str | None) -> None:
    api_key: str | None = request.app.state.api_key
    if api_key is None:
        raise HTTPException(
            403,
            "this server was started without an API key, so write routes are off; "
            "restart it with GENREC_API_KEY set or --api-key-file FILE",
        )
    if given is None or not hmac.compare_digest(given.encode(), api_key.encode()):
        raise HTTPException(401, "missing or wrong X-API-Key header")


async def write_auth(request: Request, key: str | None = Depends(key_header)) -> None:
    check_key(request, key)


async def read_auth(request: Request, key: str | None = Depends(key_header)) -> None:
    if request.app.state.protect_reads:
        check_key(request, key)


def unknown_user(user_id: Any) -> HTTPException:
    return HTTPException(
        404,
        f"unknown user {str(user_id)!r}: no training history and no feedback; for a new or "
        'anonymous user POST /recommend with {"history": [item ids]}',
    )
