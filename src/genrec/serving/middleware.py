"""ASGI middleware: the request body limit, per-route metrics and an access log without user data."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from genrec.serving.metrics import Metrics

log = logging.getLogger("genrec.serving")


class Limits:
    """Pure ASGI: 413 for bodies over `max_body` (declared or streamed); per-route counts and latencies."""

    def __init__(self, app: Any, max_body: int, metrics: Metrics) -> None:
        self.app, self.max_body, self.metrics = app, max_body, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = {"code": 500}
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _send_json(send, 413, {"detail": f"request body over {self.max_body} bytes"})
            self.metrics.observe(scope["method"], "(rejected)", 413, time.perf_counter() - t0)
            return
        if declared is None and scope["method"] in ("POST", "PUT", "PATCH"):
            # no declared length (chunked): buffer up to the limit, then replay to the app
            chunks, n, more = [], 0, True
            while more:
                msg = await receive()
                if msg["type"] != "http.request":
                    break
                chunks.append(msg.get("body", b""))
                n += len(chunks[-1])
                more = msg.get("more_body", False)
                if n > self.max_body:
                    await _send_json(send, 413, {"detail": f"request body over {self.max_body} bytes"})
                    self.metrics.observe(scope["method"], "(rejected)", 413, time.perf_counter() - t0)
                    return
            body, replayed = b"".join(chunks), False

            async def replay() -> dict:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            receive = replay

        async def tracking_send(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                status["code"] = msg["status"]
            await send(msg)

        await self.app(scope, receive, tracking_send)
        route = scope.get("route")
        path = getattr(route, "path", "(unmatched)")
        dt = time.perf_counter() - t0
        self.metrics.observe(scope["method"], path, status["code"], dt)
        # the path template only: no user ids, no query strings, no histories in the logs
        log.debug("%s %s %d %.1fms", scope["method"], path, status["code"], dt * 1e3)


async def _send_json(send: Any, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})
