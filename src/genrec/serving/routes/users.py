"""GET /users/{id}/history and DELETE /users/{id} (erasure)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Path, Query

from genrec.serving.engine import Engine
from genrec.serving.routes.deps import engine, unknown_user, write_auth
from genrec.serving.schemas import ERRORS, Detail, Erased, History, HistoryItem

log = logging.getLogger("genrec.serving")
router = APIRouter(tags=["users"])
UserId = Annotated[str, Path(min_length=1, max_length=256)]
MAX_HISTORY_PAGE = 10_000


@router.get(
    "/users/{user_id}/history",
    response_model=History,
    dependencies=[Depends(write_auth)],  # a whole history is personal data: the admin key
    responses={404: {"model": Detail, "description": "unknown user"}, **ERRORS},
)
async def history(
    user_id: UserId,
    offset: Annotated[int, Query(ge=0, description="entries to skip")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY_PAGE, description="entries in this page")] = 1000,
    eng: Engine = Depends(engine),
) -> History:
    """Training history (unless erased) followed by every stored feedback event, oldest first, a page
    at a time (`offset`, `limit`; `next_offset` says where the next page starts)."""
    st = eng.state
    cat = st.version.catalog
    idx = cat.user_ids.get(user_id)
    base = cat.histories.row(idx) if idx is not None and not st.hides_base(user_id) else np.zeros(0, np.int64)
    skip = max(0, offset - len(base))  # the page's feedback part starts this far into the stored events
    take = limit - len(base[offset : offset + limit])

    def read() -> tuple[int, list]:
        page = eng.store.user_events(user_id, skip, take) if take else []
        return eng.store.count_user_events(user_id), page

    n_stored, stored = await asyncio.to_thread(read)
    if not len(base) and not n_stored:
        raise unknown_user(user_id)
    items = [
        HistoryItem(item_id=cat.item_ids.id(i), source="training", title=cat.title(i))
        for i in base[offset : offset + limit]
    ]
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
    total = len(base) + n_stored
    end = offset + len(items)
    return History(user_id=user_id, items=items, total=total, next_offset=end if end < total else None)


@router.delete(
    "/users/{user_id}", response_model=Erased, dependencies=[Depends(write_auth)], responses=ERRORS
)
async def erase(user_id: UserId, eng: Engine = Depends(engine)) -> Erased:
    """Erase the user's stored events and exclude them from every future training run."""
    n, seq = await asyncio.to_thread(eng.store.erase_user, user_id)
    eng.erase(user_id, seq)
    await asyncio.to_thread(eng.scrub_files, [user_id])  # their id and history off the disk, then answer
    log.info("erased a user (%d events)", n)  # no ids, no histories in logs
    return Erased(user_id=user_id, events_deleted=n)
