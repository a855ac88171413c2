"""Real `genrec serve` processes: durability under SIGKILL, hot swap under load, fuzzing the OpenAPI spec."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import httpx
import pytest
from conftest import API_KEY, Server, ThreadedServer

pytestmark = pytest.mark.slow  # real server processes under load, kills and fuzzing

KEY = {"X-API-Key": API_KEY}


def test_acknowledged_feedback_survives_sigkill(run_dir, tmp_path):
    events = f"sqlite:///{tmp_path / 'events.db'}"
    server = Server(run_dir, events, tmp_path / "server.log")
    acked: list[str] = []
    unacked: list[list[dict]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(t: int) -> None:
        with httpx.Client(base_url=server.url, headers=KEY, timeout=5.0) as c:
            n = 0
            while not stop.is_set():
                batch = [
                    {
                        "event_id": f"t{t}-{n}-{j}",
                        "user_id": 1 + (n + j) % 5,
                        "item_id": 1 + (n * 7 + j) % 400,
                        "type": "click",
                    }
                    for j in range(3)
                ]
                n += 1
                try:
                    r = c.post("/feedback", json=batch[0] if n % 2 else {"events": batch})
                    if r.status_code == 200:
                        with lock:
                            acked.extend(e["event_id"] for e in (batch[:1] if n % 2 else batch))
                        continue
                except httpx.HTTPError:
                    pass
                with lock:  # not acknowledged: the client does not know whether it was stored
                    unacked.append(batch[:1] if n % 2 else batch)
                time.sleep(0.01)

    threads = [threading.Thread(target=client, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    deadline = time.time() + 30
    while len(acked) < 200 and time.time() < deadline:
        time.sleep(0.02)
    os.kill(server.proc.pid, signal.SIGKILL)  # mid-stream: clients are still posting
    server.proc.wait()
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    server.stop()
    assert len(acked) >= 200, "the server acknowledged too few events before the kill"

    server = ThreadedServer(run_dir, events)  # the restart (in-process: saves a second torch import)
    try:
        with httpx.Client(base_url=server.url, headers=KEY, timeout=10.0) as c:
            for batch in unacked:  # clients retry what was not acknowledged, with the same ids
                assert c.post("/feedback", json={"events": batch}).status_code == 200
            stored = []
            for u in range(1, 6):
                items = c.get(f"/users/{u}/history").json()["items"]
                stored += [i["event_id"] for i in items if i["source"] == "feedback"]
    finally:
        server.stop()
    counts = Counter(stored)
    assert set(acked) <= set(counts), f"{len(set(acked) - set(counts))} acknowledged events were lost"
    assert max(counts.values()) == 1, "an event was stored twice"
    retried = {e["event_id"] for b in unacked for e in b}
    assert set(counts) == set(acked) | retried


def test_hot_swap_under_load(run_dir, tmp_path):
    from genrec.models import Recommender
    from genrec.serving.registry import Registry
    from genrec.training.runs import load_run

    server = Server(
        run_dir, f"sqlite:///{tmp_path / 'events.db'}", tmp_path / "server.log", "--watch-interval", "0.1"
    )
    reg = Registry(run_dir)
    results: list[list[tuple[int, str]]] = [[] for _ in range(4)]
    stop = threading.Event()

    def client(t: int) -> None:
        with httpx.Client(base_url=server.url, headers=KEY, timeout=10.0) as c:
            while not stop.is_set():
                if t % 2:
                    r = c.get("/recommend", params={"user_id": 1 + t, "k": 10})
                else:
                    r = c.post("/recommend", json={"history": [1, 2, 3], "k": 10, "explain": True})
                results[t].append((r.status_code, r.json().get("model_version", r.text)))

    threads = [threading.Thread(target=client, args=(t,)) for t in range(4)]
    try:
        for t in threads:
            t.start()
        deadline = time.time() + 30
        while not all(results) and time.time() < deadline:  # every client has been served by v0001
            time.sleep(0.05)
        run = load_run(run_dir)
        model = Recommender.load(run_dir / "model")
        model.config.l2 = 20.0
        model.fit(run.dataset)
        current = reg.load()
        reg.publish(model, current.catalog, {"source": "test", "watermark": 0})
        deadline = time.time() + 20
        while time.time() < deadline and not all(r and r[-1][1] == "v0002" for r in results):
            time.sleep(0.05)
        time.sleep(1.0)
        # a broken publication must not take the server down: it keeps serving v0002
        broken = reg.root / "v0003"
        (broken / "model").mkdir(parents=True)
        (broken / "model" / "model.json").write_text("{not json")
        (broken / "meta.json").write_text("{}")
        reg.set_current("v0003")
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    try:
        r = httpx.get(server.url + "/recommend", params={"user_id": 1, "k": 3}, headers=KEY)
        after = r.json()["model_version"]
        metrics = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
    flat = [r for rs in results for r in rs]
    assert len(flat) > 20 and all(code == 200 for code, _ in flat), Counter(c for c, _ in flat)
    for rs in results:  # each client saw v0001, then v0002, never back
        versions = [v for _, v in rs]
        assert versions[0] == "v0001" and versions[-1] == "v0002"
        assert versions == sorted(versions)
    assert after == "v0002" and "genrec_model_swaps_total 1" in metrics


def test_openapi_fuzzing_finds_no_server_errors(run_dir, tmp_path):
    """Schemathesis generates requests for every operation of the OpenAPI spec; none may answer 5xx."""
    import schemathesis

    server = ThreadedServer(run_dir, f"sqlite:///{tmp_path / 'events.db'}")
    failures: list[str] = []
    n_calls = Counter()
    try:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        ops = [r.ok() for r in schema.get_all_operations()]
        assert len(ops) >= 10
        for op in ops:  # bounded in examples and in time (4 s per operation)
            fuzz(op, time.time() + 4, failures, n_calls)()
    finally:
        server.stop()
    assert not failures, "\n".join(failures[:5])
    assert sum(n_calls.values()) > 3 * len(ops) and len(n_calls) == len(ops)


def fuzz(op, budget: float, failures: list[str], n_calls: Counter):
    from hypothesis import HealthCheck, given, settings

    @settings(
        max_examples=15,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy())
    def check(case) -> None:
        # the time bound applies only after two cases per operation, so a slow (loaded) machine
        # still exercises every operation
        if time.time() > budget and n_calls[op.label] >= 4:
            return
        for headers in (KEY, {}):  # with the key (reaches the handlers) and without (auth errors)
            resp = case.call(headers=headers, timeout=10)
            n_calls[op.label] += 1
            if resp.status_code >= 500:
                failures.append(f"{op.label} -> {resp.status_code}: {case.as_curl_command()}")

    return check


@pytest.mark.parametrize("parser", ["auto", "h11"])
def test_slow_request_heads_are_cut_off(run_dir, tmp_path, parser):
    """Fifty connections that send headers a byte at a time (slowloris) are closed after
    --header-timeout, before a first request and between keep-alive requests; a normal client is served.
    Both parsers: httptools (the default) and h11."""
    import socket

    server = Server(
        run_dir,
        f"sqlite:///{tmp_path / 'events.db'}",
        tmp_path / "server.log",
        "--header-timeout",
        "1",
        "--http-parser",
        parser,
    )
    head = f"GET /recommend?user_id=1 HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\n"
    try:
        slow = []
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(head.encode())  # never the blank line that ends the head
            slow.append(s)
        kept = socket.create_connection(("127.0.0.1", server.port))  # keep-alive: one request, then slow
        kept.sendall((head + "\r\n").encode())
        kept.settimeout(5)
        assert kept.recv(65536).startswith(b"HTTP/1.1 200")
        kept.sendall(head.encode())
        r = httpx.get(server.url + "/recommend", params={"user_id": 2}, headers=KEY)
        assert r.status_code == 200
        time.sleep(2.0)
        for s in [*slow, kept]:
            s.settimeout(5)  # a socket the server left open times out here and fails the test
            try:
                while s.recv(65536):  # the rest of `kept`'s first response, then the close
                    pass
            except ConnectionResetError:
                pass
            s.close()
    finally:
        server.stop()
