"""Feedback a served version has not been trained on, held in memory up to a bound.

The store holds every event; the overlay is a cache of the newest ones by user, so a recommendation
reads a user's fresh feedback without a database round trip. Past `capacity` events, the users touched
least recently leave memory and a fixed-size bit filter remembers that they may have events there:
a request for such a user reads them back from the store first (`Engine.refresh`). Memory stays
bounded however long a version serves (the filter is 1 MiB; a false positive costs one indexed read).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Iterable, Iterator

import numpy as np

from genrec.serving.events import StoredEvent

FILTER_BITS = 1 << 23  # 1 MiB


class Overlay:
    def __init__(self, capacity: int = 200_000) -> None:
        if capacity < 1:
            raise ValueError(f"the feedback overlay must hold at least 1 event, got {capacity}")
        self.capacity = capacity
        self._users: OrderedDict[str, list[StoredEvent]] = OrderedDict()  # least recently touched first
        self.n_events = 0
        self.spills = 0  # users sent back to the store so far
        self._reading: dict[str, list[StoredEvent]] = {}  # users being read back: events arriving meanwhile
        self._spilled = bytearray(FILTER_BITS // 8)

    # --- reads ----------------------------------------------------------------------------------
    def get(self, user_id: str) -> list[StoredEvent]:
        """The user's events held in memory (call `spilled` first: they may be in the store only)."""
        evs = self._users.get(user_id)
        if evs is None:
            return []
        self._users.move_to_end(user_id)
        return evs

    def spilled(self, user_id: str) -> bool:
        """True when the user is not in memory but may have events in the store (read them back)."""
        if user_id in self._users:
            return False
        b = hash(user_id) & (FILTER_BITS - 1)
        return bool(self._spilled[b >> 3] >> (b & 7) & 1)

    def __contains__(self, user_id: str) -> bool:
        return user_id in self._users

    def users(self) -> list[str]:
        return list(self._users)

    def events(self) -> Iterator[StoredEvent]:
        for evs in self._users.values():
            yield from evs

    # --- writes ---------------------------------------------------------------------------------
    def add(self, e: StoredEvent) -> None:
        """Append one event (events arrive in seq order per user)."""
        evs = self._users.get(e.user_id)
        if evs is None:
            if e.user_id in self._reading:  # the read may miss it: kept until the read lands
                self._reading[e.user_id].append(e)
                return
            if self.spilled(e.user_id):  # their older events are in the store only: keep it that way
                return
            evs = self._users[e.user_id] = []
        if evs and e.seq <= evs[-1].seq:  # from the store and from this process: once, in seq order
            seqs = [x.seq for x in evs]
            i = bisect.bisect_left(seqs, e.seq)
            if i < len(seqs) and seqs[i] == e.seq:
                return
            evs.insert(i, e)
        else:
            evs.append(e)
        self._users.move_to_end(e.user_id)
        self.n_events += 1
        self._bound(keep=e.user_id)

    def extend(self, events: Iterable[StoredEvent]) -> None:
        for e in events:
            self.add(e)

    def begin_read(self, user_id: str) -> None:
        self._reading.setdefault(user_id, [])

    def end_read(self, user_id: str, events: list[StoredEvent]) -> None:
        """`events`: the user's events read from the store; those recorded during the read join them."""
        last = events[-1].seq if events else -1
        self.put(user_id, events + [e for e in self._reading.pop(user_id, ()) if e.seq > last])

    def put(self, user_id: str, events: list[StoredEvent]) -> None:
        """A user's complete events, read back from the store: they are in memory again."""
        self.n_events -= len(self._users.pop(user_id, ()))
        self._users[user_id] = list(events)  # even none: the next request need not read again
        self.n_events += len(events)
        self._bound(keep=user_id)

    def replace(self, user_id: str, events: list[StoredEvent]) -> None:
        """Keep only `events` of the user (after an erasure: their later events)."""
        self.n_events -= len(self._users.pop(user_id, ()))
        if events:
            self._users[user_id] = list(events)
            self.n_events += len(events)

    def inherit_spills(self, other: Overlay) -> None:
        """Mark every user `other` sent to the store as possibly there (a superset is safe)."""
        bits = np.frombuffer(self._spilled, dtype=np.uint8)  # a view: the OR writes into the filter
        bits |= np.frombuffer(other._spilled, dtype=np.uint8)

    def _bound(self, keep: str) -> None:
        while (self.n_events > self.capacity or len(self._users) > self.capacity) and len(self._users) > 1:
            user, evs = next(iter(self._users.items()))
            if user == keep:  # the user being served stays; the next least recent goes instead
                self._users.move_to_end(user)
                continue
            del self._users[user]
            self.n_events -= len(evs)
            self.spills += 1
            b = hash(user) & (FILTER_BITS - 1)
            self._spilled[b >> 3] |= 1 << (b & 7)
