"""POST /feedback: durable event storage; the events count for recommendations at once."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends

from genrec.serving.engine import Engine
from genrec.serving.events import Event, StoredEvent
from genrec.serving.metrics import Metrics
from genrec.serving.routes.deps import engine, metrics, write_auth
from genrec.serving.schemas import ERRORS, EventAck, FeedbackBatch, FeedbackEvent, FeedbackResponse

router = APIRouter(tags=["feedback"], dependencies=[Depends(write_auth)])


@router.post("/feedback", response_model=FeedbackResponse, responses=ERRORS)
async def feedback(
    body: FeedbackEvent | FeedbackBatch, eng: Engine = Depends(engine), stats: Metrics = Depends(metrics)
) -> FeedbackResponse:
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
    acks = await asyncio.to_thread(eng.store.append, events)
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
