"""uvicorn's HTTP/1.1 protocol with a deadline for a request's head.

uvicorn closes a connection that stays idle between requests (`timeout_keep_alive`), but one that sends
a request's headers a byte at a time is never closed: fifty such "slowloris" connections hold fifty
sockets open forever. Here a connection must deliver a complete request head within `head_timeout_s` of
opening, or of its previous response; otherwise it is closed.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


def head_timeout_protocol(head_timeout_s: float) -> type[H11Protocol]:
    """An H11Protocol class (for `uvicorn.run(..., http=...)`) with this head deadline."""
    if not head_timeout_s > 0:
        raise ValueError(f"--header-timeout must be > 0 seconds, got {head_timeout_s}")

    class HeadTimeoutH11(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(head_timeout_s, self._expire)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _expire(self) -> None:
            self._head_timer = None
            if self.cycle is None or self.cycle.response_complete:  # no request is being served
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def handle_events(self) -> None:
            cycle = self.cycle
            super().handle_events()
            if self.cycle is not cycle:  # a complete request head arrived: a new request cycle began
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request's head has the same deadline

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeadTimeoutH11
