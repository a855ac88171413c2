"""What the routes share: the engine and metrics of the app, API-key checks, the unknown-user error."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader

from genrec.serving.engine import Engine
from genrec.serving.metrics import Metrics

key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="the read key (/recommend, /items) or the admin key"
)


# every dependency is async: FastAPI runs a plain def dependency in a worker thread, one thread hop
# (and a large share of a cached request's CPU) per request
async def engine(request: Request) -> Engine:
    return request.app.state.engine


async def metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def _is(given: str | None, key: str | None) -> bool:
    return given is not None and key is not None and hmac.compare_digest(given.encode(), key.encode())


async def write_auth(request: Request, key: str | None = Depends(key_header)) -> None:
    """Admin routes (feedback, histories, erasure, admin): the admin key only."""
    st = request.app.state
    if st.api_key is None:
        raise HTTPException(
            403,
            "this server was started without an admin key, so admin routes (feedback, histories, "
            "erasure) are off; restart it with GENREC_API_KEY set or --api-key-file FILE",
        )
    if _is(key, st.api_key):
        return
    if _is(key, st.read_key):
        raise HTTPException(
            403, "this key may only read (/recommend, /items); this route needs the admin key"
        )
    raise HTTPException(401, "missing or wrong X-API-Key header")


async def read_auth(request: Request, key: str | None = Depends(key_header)) -> None:
    """Read routes (/recommend, /items): the read key or the admin key; with `anonymous_reads`, no key
    too, marking the request anonymous (it may then not ask about a stored user: see recommend)."""
    st = request.app.state
    request.state.anonymous = False
    if _is(key, st.api_key) or _is(key, st.read_key):
        return
    if key is None and st.anonymous_reads:
        request.state.anonymous = True
        return
    if st.api_key is None and st.read_key is None:
        raise HTTPException(
            403,
            "this server was started without keys, so reads are off; restart it with GENREC_READ_KEY "
            "(or --read-key-file FILE), GENREC_API_KEY, or --anonymous-reads",
        )
    raise HTTPException(401, "missing or wrong X-API-Key header")


def refuse_anonymous(request: Request, what: str) -> None:
    """401 for an anonymous request that asks about a stored user: it would reveal their data."""
    if request.state.anonymous:
        raise HTTPException(
            401,
            f"{what} needs a key: anonymous requests get lists only from a history they send "
            '(POST /recommend {"history": [...]}, no user_id, no explain)',
        )


def unknown_user(user_id: Any) -> HTTPException:
    return HTTPException(
        404,
        f"unknown user {str(user_id)!r}: no training history and no feedback; for a new or "
        'anonymous user POST /recommend with {"history": [item ids]}',
    )
