"""GET and POST /recommend: lists from genrec.generation, batched by the engine."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError

from genrec.generation import check_strategy, records
from genrec.serving.engine import Engine, Job, ListSpec, State
from genrec.serving.routes.deps import engine, read_auth, refuse_anonymous, unknown_user
from genrec.serving.schemas import ERRORS, Detail, ListSettings, Recommendations, RecommendRequest, unix

router = APIRouter(tags=["recommend"], dependencies=[Depends(read_auth)])
RESPONSES = {
    404: {"model": Detail, "description": "unknown user"},
    422: {"model": Detail, "description": "bad parameters, or a strategy the model cannot use"},
    **ERRORS,
}


class RecommendQuery(ListSettings):
    user_id: str = Field(min_length=1, max_length=256, description="a user id of the dataset")


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The OpenAPI query parameters of a flat pydantic model (what FastAPI writes for a query model)."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema["properties"].items():
        p: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if "description" in prop:
            p["description"] = prop["description"]
        out.append(p)
    return out


def recommend_query(request: Request) -> RecommendQuery:
    """GET /recommend's query, validated by pydantic in one call; errors keep FastAPI's shape."""
    try:
        return RecommendQuery.model_validate(dict(request.query_params))
    except ValidationError as e:
        raise RequestValidationError([{**err, "loc": ("query", *err["loc"])} for err in e.errors()]) from None


def checked(st: State, settings: ListSettings) -> ListSpec:
    """The list spec, after refusing (422, with the reason) a strategy the served model cannot use."""
    try:
        check_strategy(st.version.model, settings.strategy)
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    return ListSpec(
        settings.k, settings.strategy, settings.beam_size, settings.temperature, settings.top_p, settings.seed
    )


async def answer(eng: Engine, job: Job, user_id: str | None, unknown: list[str]) -> Response:
    eng.arriving(-1)  # queued: the batcher no longer waits for this one
    res = await eng.submit(job)
    st = job.state
    cat = st.version.catalog
    because = None if res.because is None else [res.because]
    rec = records(cat.item_ids, cat.item_title, [user_id], [res.items], [res.scores], because)[0]
    body = {"user_id": user_id, "model_version": st.version.name, "items": rec["items"]}
    if unknown:
        body["unknown_items"] = unknown
    return Response(json.dumps(body), media_type="application/json")


@router.get(
    "/recommend",
    response_model=Recommendations,
    responses=RESPONSES,
    openapi_extra={"parameters": query_parameters(RecommendQuery)},
)
async def recommend_get(request: Request) -> Response:
    """A list for a known user from everything stored about them (training history + feedback)."""
    # the hottest route reads its query and engine itself: FastAPI resolves each dependency, and each
    # query field of a query model, in Python, which cost a third of a cached request's CPU; the
    # OpenAPI document lists the query parameters through `openapi_extra`
    refuse_anonymous(request, "a stored user's list")
    eng: Engine = request.app.state.engine
    eng.arriving(1)
    try:
        q = recommend_query(request)
        st = eng.state
        spec = checked(st, q)
        if st.overlay.spilled(q.user_id):  # their new feedback left memory: read it back first
            await eng.refresh(st, q.user_id)
        if not eng.known_user(st, q.user_id):
            raise unknown_user(q.user_id)
        user, items, skips, ts = eng.user_history(st, q.user_id)
        job = Job(
            st,
            items,
            user,
            spec,
            q.exclude_seen,
            skips,
            explain=q.explain,
            cache_key=q.user_id,
            timestamps=ts,
            request_ts=int(time.time()),
        )
    except BaseException:
        eng.arriving(-1)
        raise
    return await answer(eng, job, q.user_id, [])


@router.post("/recommend", response_model=Recommendations, responses=RESPONSES)
async def recommend_post(req: RecommendRequest, request: Request, eng: Engine = Depends(engine)) -> Response:
    """A list for an ad-hoc history, optionally on top of a known user's stored history, with business
    filters and explanations."""
    if req.user_id is not None:
        refuse_anonymous(request, "a stored user's list")
    if req.explain:
        refuse_anonymous(request, "an explanation")
    eng.arriving(1)
    try:
        st = eng.state
        spec = checked(st, req)
        cat = st.version.catalog
        uid = None if req.user_id is None else str(req.user_id)
        none = np.zeros(0, np.int64)
        user, items, skips, ts = 0, none, none, none
        if uid is not None:
            if st.overlay.spilled(uid):
                await eng.refresh(st, uid)
            if not eng.known_user(st, uid) and not req.history:
                raise unknown_user(uid)
            user, items, skips, ts = eng.user_history(st, uid)
        given, unknown = cat.item_ids.known(req.history)
        now = int(time.time())
        times = [unix(t) for t in req.timestamps] if req.timestamps is not None else [now] * len(req.history)
        known_ts = np.asarray(
            [t for t, r in zip(times, req.history) if cat.item_ids.get(r) is not None], dtype=np.int64
        )
        job = Job(
            st,
            np.concatenate([items, given]),
            user,
            spec,
            req.exclude_seen,
            skips,
            allowed=None if req.allowed is None else cat.item_ids.known(req.allowed)[0],
            blocked=cat.item_ids.known(req.blocked)[0],
            explain=req.explain,
            # the stored history alone is what the user-state cache holds
            cache_key=uid if uid is not None and not req.history else None,
            timestamps=np.concatenate([ts, known_ts]),
            request_ts=now if req.request_time is None else unix(req.request_time),
        )
    except BaseException:
        eng.arriving(-1)
        raise
    return await answer(eng, job, uid, unknown)
