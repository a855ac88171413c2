"""`genrec serve --workers 2`: two processes on one port, one shared event store; each follows a new
version and an erasure made through the other within a second."""

from __future__ import annotations

import http.client
import json
import time

import pytest
from conftest import API_KEY, Server

from genrec.serving.registry import Registry

KEY = {"X-API-Key": API_KEY}


def per_worker(port: int, n: int, seconds: float = 60.0) -> dict[int, http.client.HTTPConnection]:
    """One kept-alive connection to each of `n` workers: new connections land on a worker chosen by the
    kernel, and /readyz says which one answered."""
    found: dict[int, http.client.HTTPConnection] = {}
    deadline = time.time() + seconds
    while len(found) < n:
        assert time.time() < deadline, f"only workers {sorted(found)} answered"
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        body = get(c, "/readyz")
        if body.get("status") == "ready" and body["worker"] not in found:
            found[body["worker"]] = c
        else:
            c.close()
            time.sleep(0.05)
    return found


def get(c: http.client.HTTPConnection, path: str) -> dict:
    c.request("GET", path, headers=KEY)
    r = c.getresponse()
    body = json.loads(r.read() or b"{}")
    body["_status"] = r.status
    return body


def within_a_second(conns: dict, path: str, done) -> None:
    t0 = time.time()
    for pid, c in conns.items():
        while not done(get(c, path)):
            assert time.time() - t0 < 1.0, f"worker {pid} has not caught up with {path}"
            time.sleep(0.05)


@pytest.mark.slow  # a server with two worker processes
def test_every_worker_follows_new_versions_and_erasures(run_dir, tmp_path, store_url):
    server = Server(
        run_dir, store_url, tmp_path / "serve.log", "--workers", "2", "--watch-interval", "0.2",
        "--keep-alive-timeout", "60",
    )  # fmt: skip
    try:
        conns = per_worker(server.port, 2)
        assert len(set(conns)) == 2 and server.proc.pid not in conns  # two worker processes
        for c in conns.values():
            assert get(c, "/recommend?user_id=9")["_status"] == 200
        # an erasure through one worker: the other stops serving the user within a second
        first = next(iter(conns.values()))
        first.request("DELETE", "/users/9", headers=KEY)
        r = first.getresponse()
        assert r.status == 200, r.read()
        r.read()
        within_a_second(conns, "/recommend?user_id=9", lambda b: b["_status"] == 404)
        # a new version published beside the servers: every worker serves it within a second
        reg = Registry(run_dir)
        v = reg.load()
        new = reg.publish(v.model, v.catalog, {"source": "test"})
        within_a_second(conns, "/readyz", lambda b: b["model_version"] == new)
    finally:
        server.stop()
    log = (tmp_path / "serve.log").read_text()
    assert "2 workers on http://" in log and "Traceback" not in log, log
