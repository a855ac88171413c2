"""POST /feedback: durable event storage; the events count for recommendations at once."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Depends, HTTPException
from fastapi.exceptions import RequestValidationError

from genrec.serving.engine import Engine
from genrec.serving.events import Event, EventConflict, StoredEvent
from genrec.serving.metrics import Metrics
from genrec.serving.routes.deps import engine, metrics, write_auth
from genrec.serving.schemas import ERRORS, Detail, EventAck, FeedbackBatch, FeedbackEvent, FeedbackResponse

router = APIRouter(tags=["feedback"], dependencies=[Depends(write_auth)])


@router.post(
    "/feedback",
    response_model=FeedbackResponse,
    responses={409: {"model": Detail, "description": "an event_id reused for another event"}, **ERRORS},
)
async def feedback(
    body: FeedbackEvent | FeedbackBatch, eng: Engine = Depends(engine), stats: Metrics = Depends(metrics)
) -> FeedbackResponse:
    """Store one event or a batch; answers only after the events are durably committed.
    Unknown users and items are stored too (they join the catalogue at the next `genrec update`)."""
    evs = body.events if isinstance(body, FeedbackBatch) else [body]
    check_times(evs, isinstance(body, FeedbackBatch), eng.max_clock_skew_s)
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
    try:
        acks = await asyncio.to_thread(eng.store.append, events)
    except EventConflict as e:  # nothing of the request was stored
        raise HTTPException(409, str(e)) from None
    fresh = []
    for e, a in zip(events, acks):
        if not a.duplicate:
            fresh.append(
                StoredEvent(e.user_id, e.item_id, e.type, e.value, e.timestamp, e.event_id, seq=a.seq)
            )
    eng.record(fresh)
    stats.events += len(fresh)
    return FeedbackResponse(
        stored=len(fresh),
        duplicates=len(acks) - len(fresh),
        events=[EventAck(event_id=a.event_id, seq=a.seq, duplicate=a.duplicate) for a in acks],
    )


def check_times(evs: list[FeedbackEvent], batch: bool, skew_s: float) -> None:
    """422 for a timestamp before 1970 or further ahead of the server's clock than `skew_s`: such a time
    would sort the event before or after everything a user ever did."""
    latest = time.time() + skew_s
    errors = []
    for i, e in enumerate(evs):
        if e.timestamp is not None and not 0 <= e.timestamp.timestamp() <= latest:
            loc = ("body", "events", i, "timestamp") if batch else ("body", "timestamp")
            msg = f"timestamp must lie between 1970-01-01 and the server's time + {skew_s:g} s"
            errors.append({"type": "value_error", "loc": loc, "msg": msg, "input": str(e.timestamp)})
    if errors:
        raise RequestValidationError(errors)
