"""Request and response bodies of the HTTP API (pydantic): the OpenAPI spec is generated from these.

Ids are accepted as strings or integers ("42" and 42 name the same user) and always answered as strings.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from genrec.generation import MAX_K

MAX_BODY_BYTES = 1 << 20  # 1 MiB: a batch of 1,000 events fits comfortably
MAX_HISTORY = 2000
MAX_EVENTS = 1000
MAX_FILTER = 10000
MAX_BEAM = 64  # beams per list: memory grows with lists x beams x items
RawId = Annotated[
    int | Annotated[str, Field(min_length=1, max_length=256)], Field(union_mode="left_to_right")
]
Strategy = Literal["topk", "beam", "sample"]  # genrec.generation.STRATEGIES


class RecommendedItem(BaseModel):
    item_id: str
    score: float = Field(
        description="topk: the model's score; beam/sample: log-probability given the "
        "history and the items above"
    )
    title: str | None = None
    because: list[str] | None = Field(None, description="history items that most drove this item")


class Recommendations(BaseModel):
    user_id: str | None
    model_version: str
    items: list[RecommendedItem]
    unknown_items: list[str] = Field([], description="history items the model does not know (ignored)")


class ListSettings(BaseModel):
    """How the list is written; the same settings as `genrec recommend` and `Generator.recommend`."""

    k: int = Field(10, ge=1, le=MAX_K)
    strategy: Strategy = Field(
        "topk",
        description="topk: best scores of one pass; beam: beam search; sample: temperature / top-p sampling",
    )
    beam_size: int = Field(4, ge=1, le=MAX_BEAM, description="beams kept per step (strategy beam)")
    temperature: float = Field(1.0, ge=0.0, le=100.0, description="strategy sample; 0 = greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="strategy sample: keep the top-p probability mass")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="strategy sample: same seed, same list")
    exclude_seen: bool = True
    explain: bool = False


class RecommendRequest(ListSettings):
    model_config = ConfigDict(extra="forbid")
    user_id: RawId | None = Field(None, description="a known user: their stored history is used too")
    history: list[RawId] = Field([], max_length=MAX_HISTORY, description="item ids, oldest first")
    timestamps: list[datetime] | None = Field(
        None,
        max_length=MAX_HISTORY,
        description="when each history item happened (ISO 8601 or unix seconds), one per history item; "
        "time-aware models (HSTU) read them; default: the time of the request",
    )
    request_time: datetime | None = Field(
        None,
        description="when the list is for (ISO 8601 or unix seconds), e.g. to replay a past request; "
        "HSTU with query_time=next reads it; default: the time of the request",
    )
    blocked: list[RawId] = Field([], max_length=MAX_FILTER, description="never recommend these")
    allowed: list[RawId] | None = Field(None, max_length=MAX_FILTER, description="recommend only among these")

    @field_validator("timestamps")
    @classmethod
    def _sane_times(cls, v: list[datetime] | None) -> list[datetime] | None:
        for t in v or ():
            unix(t)
        return v

    @field_validator("request_time")
    @classmethod
    def _sane_time(cls, v: datetime | None) -> datetime | None:
        if v is not None:
            unix(v)
        return v

    @model_validator(mode="after")
    def _one_time_per_item(self) -> RecommendRequest:
        if self.timestamps is not None and len(self.timestamps) != len(self.history):
            raise ValueError(
                f"timestamps has {len(self.timestamps)} entries but history has {len(self.history)}; "
                "give one per history item or none"
            )
        return self


def unix(t: datetime) -> int:
    try:
        return int(t.timestamp())
    except (OverflowError, OSError, ValueError):
        raise ValueError("timestamp out of range") from None


class FeedbackEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="client-chosen id; a retry with the same id is stored once",
    )
    user_id: RawId
    item_id: RawId
    type: Literal["view", "click", "purchase", "rating", "skip"]
    value: float | None = Field(None, description="the rating for type=rating; optional otherwise")
    timestamp: datetime | None = Field(None, description="when it happened (ISO 8601 or unix seconds)")

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("value must be a finite number")
        return v

    @field_validator("timestamp")
    @classmethod
    def _sane_time(cls, v: datetime | None) -> datetime | None:
        if v is not None:
            try:
                v.timestamp()
            except (OverflowError, OSError, ValueError):
                raise ValueError("timestamp out of range") from None
        return v


class FeedbackBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[FeedbackEvent] = Field(min_length=1, max_length=MAX_EVENTS)


class EventAck(BaseModel):
    event_id: str
    seq: int
    duplicate: bool


class FeedbackResponse(BaseModel):
    stored: int = Field(description="events newly committed")
    duplicates: int = Field(description="events already stored under the same event_id (retries)")
    events: list[EventAck]


class HistoryItem(BaseModel):
    item_id: str
    source: Literal["training", "feedback"]
    type: str | None = None
    value: float | None = None
    timestamp: float | None = None
    event_id: str | None = None
    seq: int | None = None
    title: str | None = None


class History(BaseModel):
    user_id: str
    items: list[HistoryItem]
    total: int = Field(description="entries in the whole history (training items + stored events)")
    next_offset: int | None = Field(description="`offset` of the next page; null on the last one")


class ItemInfo(BaseModel):
    item_id: str
    title: str | None = None
    known_to_model: bool
    interactions: int = Field(description="users whose stored history contains the item")


class Erased(BaseModel):
    user_id: str
    events_deleted: int


class Detail(BaseModel):
    detail: Any


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Detail, "description": "missing or wrong X-API-Key"},
    413: {"model": Detail, "description": "request body too large"},
}
