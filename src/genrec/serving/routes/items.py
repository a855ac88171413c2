"""GET /items/{id}: what the served catalogue knows about an item."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path

from genrec.serving.engine import Engine
from genrec.serving.routes.deps import engine, read_auth
from genrec.serving.schemas import ERRORS, Detail, ItemInfo

router = APIRouter(tags=["items"], dependencies=[Depends(read_auth)])


@router.get(
    "/items/{item_id}",
    response_model=ItemInfo,
    responses={404: {"model": Detail, "description": "unknown item"}, **ERRORS},
)
async def item(
    item_id: Annotated[str, Path(min_length=1, max_length=256)], eng: Engine = Depends(engine)
) -> ItemInfo:
    st = eng.state
    cat = st.version.catalog
    i = cat.item_ids.get(item_id)
    if i is None:
        raise HTTPException(
            404,
            f"unknown item {item_id!r}: not in the catalogue of model "
            f"{st.version.name} (feedback on it is kept for the next update)",
        )
    return ItemInfo(
        item_id=cat.item_ids.id(i),
        title=cat.title(i),
        known_to_model=True,
        interactions=int(st.item_users[i]),  # counted off the event loop when the version loaded
    )
