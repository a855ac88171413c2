"""GET /users/{id}/history and DELETE /users/{id} (erasure)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from genrec.serving.engine import Engine
from genrec.serving.routes.deps import engine, read_auth, unknown_user, write_auth
from genrec.serving.schemas import ERRORS, Detail, Erased, History, HistoryItem

log = logging.getLogger("genrec.serving")
router = APIRouter(tags=["users"])
UserId = Annotated[str, Path(min_length=1, max_length=256)]


@router.get(
    "/users/{user_id}/history",
    response_model=History,
    dependencies=[Depends(read_auth)],
    responses={404: {"model": Detail, "description": "unknown user"}, **ERRORS},
)
async def history(user_id: UserId, eng: Engine = Depends(engine)) -> History:
    """Training history (unless erased) followed by every stored feedback event, oldest first."""
    st = eng.state
    cat = st.version.catalog
    idx = cat.user_ids.get(user_id)
    stored = await asyncio.to_thread(eng.store.user_events, user_id)
    base = cat.histories.row(idx) if idx is not None and not st.hides_base(user_id) else []
    if not len(base) and not stored:
        raise unknown_user(user_id)
    items = [HistoryItem(item_id=cat.item_ids.id(i), source="training", title=cat.title(i)) for i in base]
    for e in stored:
        i = cat.item_ids.get(e.item_id)
        items.append(
            HistoryItem(
                item_id=e.item_id,
                source="feedback",
                type=e.type,
                value=e.value,
                timestamp=e.timestamp,
                event_id=e.event_id,
                seq=e.seq,
                title=cat.title(i) if i is not None else None,
            )
        )
    return History(user_id=user_id, items=items)


@router.delete(
    "/users/{user_id}", response_model=Erased, dependencies=[Depends(write_auth)], responses=ERRORS
)
async def erase(user_id: UserId, eng: Engine = Depends(engine)) -> Erased:
    """Erase the user's stored events and exclude them from every future training run."""
    n, seq = await asyncio.to_thread(eng.store.erase_user, user_id)
    eng.erase(user_id, seq)
    log.info("erased a user (%d events)", n)  # no ids, no histories in logs
    return Erased(user_id=user_id, events_deleted=n)
