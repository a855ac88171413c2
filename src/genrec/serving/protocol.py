"""uvicorn's HTTP/1.1 protocol with a deadline for a request's head.

uvicorn closes a connection that stays idle between requests (`timeout_keep_alive`), but one that sends
a request's headers a byte at a time is never closed: fifty such "slowloris" connections hold fifty
sockets open forever. Here a connection must deliver a complete request head within `head_timeout_s` of
opening, or of its previous response; otherwise it is closed.

The deadline is added to httptools' protocol (uvicorn's default, a C parser) when it is installed, and
to h11's (pure Python, ~0.2 ms more CPU per request) otherwise.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is not installed
    HttpToolsProtocol = None


class _HeadDeadline:
    """The deadline itself; the subclasses below say when a request head is complete."""

    head_timeout_s: float
    _head_timer: asyncio.TimerHandle | None = None
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expire(self) -> None:
        self._head_timer = None
        if self.cycle is None or self.cycle.response_complete:  # no request is being served
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self._arm()  # the next request's head has the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]


class HeadTimeoutH11(_HeadDeadline, H11Protocol):
    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a complete request head arrived: a new request cycle began
            self._disarm()


if HttpToolsProtocol is not None:

    class HeadTimeoutHttpTools(_HeadDeadline, HttpToolsProtocol):
        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()


def head_timeout_protocol(head_timeout_s: float, parser: str = "auto") -> type:
    """A protocol class (for `uvicorn.run(..., http=...)`) with this head deadline; `parser` is
    "httptools", "h11" or "auto" (httptools when installed)."""
    if not head_timeout_s > 0:
        raise ValueError(f"--header-timeout must be > 0 seconds, got {head_timeout_s}")
    if parser not in ("auto", "httptools", "h11"):
        raise ValueError(f"unknown HTTP parser {parser!r}: auto, httptools or h11")
    if parser == "httptools" and HttpToolsProtocol is None:
        raise ValueError("the httptools parser is not installed (pip install httptools)")
    use_httptools = parser != "h11" and HttpToolsProtocol is not None
    base = HeadTimeoutHttpTools if use_httptools else HeadTimeoutH11
    return type(base.__name__, (base,), {"head_timeout_s": head_timeout_s})
