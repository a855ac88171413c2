"""Load test of `genrec serve`: GET /recommend?k=10 on loopback at concurrency 1 and 32.

Trains (or reuses) EASE, SASRec and HSTU runs on ml-1m-u2999, starts `genrec serve` in a subprocess on
127.0.0.1, and drives it with a minimal keep-alive HTTP/1.1 client (asyncio, one connection per
concurrent client) for a fixed time per setting, so the loop is bounded and stops by itself. Reports
p50/p99 latency, requests/s, errors and server CPU per request for, in the same run:

- "cached": the default server. Its first pass asks for every user once at the top concurrency (the
  "cold" row: every request of a sequence model runs the transformer), then the timed rows read
  cached user states (sequence models; EASE has none and recomputes every request).
- "no cache" (sequence models): `--user-cache 0`, every request runs the transformer, batched.
- "no batching": `--max-batch 1 --user-cache 0`, one model call per request.

    python benchmarks/serve_load.py [--models ease,sasrec,hstu] [--seconds 8] [--concurrency 1,32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "serve_load.json"
READ_KEY = "serve-load-read-key"


def ensure_run(run: Path, data: Path, model: str, settings: dict) -> Path:
    """Reuse RUN when it holds this model trained with these settings; (re)train it otherwise."""
    import shutil

    from genrec.data.sources import SourceSpec
    from genrec.training import TrainConfig
    from genrec.training.runs import RunConfig, read_run_config, train_run

    cfg = RunConfig(
        source=SourceSpec(data=str(data)),
        model=model,
        model_config=settings,
        ks=[10],
        train=TrainConfig(threads=1),
    )
    if (run / "model" / "model.json").exists():
        try:
            if read_run_config(run)[0].to_json() == cfg.to_json():
                return run
        except (FileNotFoundError, ValueError):
            pass
    if run.exists():
        print(f"{run}: trained with other settings; retraining", flush=True)
        shutil.rmtree(run)
    print(f"training {model} {settings} on {data} into {run} ...", flush=True)
    train_run(cfg, run, progress=False)
    return run


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to report CPU cost per request independently of
    how busy the shared machine is."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")  # `--workers N`: the workers do the work
    kids = [int(c) for c in children.read_text().split()] if children.exists() else []
    return own + sum(cpu_seconds(k) for k in kids)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path, events: str, port: int, *extra: str) -> subprocess.Popen:
    import httpx

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "genrec.cli",
            "serve",
            str(run),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--events",
            events,
            "--log-level",
            "warning",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, GENREC_READ_KEY=READ_KEY),  # reads need a key; the client sends it
    )
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not become ready in 180 s")


async def drive(port: int, paths: list[str], concurrency: int, seconds: float, once: bool = False) -> dict:
    """`concurrency` keep-alive connections, each sending its next request when the last one is answered;
    for `seconds`, or (once=True) until every path was asked for once."""
    lat: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def client(c: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = c
        try:
            while time.perf_counter() < stop_at and not (once and i >= len(paths)):
                path = paths[i % len(paths)]
                i += concurrency
                t = time.perf_counter()
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {READ_KEY}\r\n\r\n".encode()
                )
                status = await reader.readline()
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    k, _, v = line.partition(b":")
                    if k.lower() == b"content-length":
                        length = int(v)
                body = await reader.readexactly(length)
                lat.append(time.perf_counter() - t)
                if not status.startswith(b"HTTP/1.1 200") or b'"items"' not in body:
                    errors += 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(concurrency)))
    wall = time.perf_counter() - t0
    a = np.array(lat) * 1e3
    return {
        "concurrency": concurrency,
        "requests": len(lat),
        "errors": errors,
        "seconds": wall,
        "req_per_s": len(lat) / wall,
        "p50_ms": float(np.percentile(a, 50)),
        "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(a.max()),
    }


# what each benchmarked model is; the sequence models are trained briefly: serving speed does not depend on
# how long they trained, and their accuracy is reported in the sequential-models section, not here
MODELS = {
    "ease": {},
    "sasrec": {"size": "small", "epochs": 3},
    "hstu": {"size": "small", "epochs": 1},  # one epoch: bounds the benchmark's run time
}
SEQUENCE = ("sasrec", "hstu")


def report(r: dict) -> None:
    print(
        f"{r['model']:<7} {r['mode']:<12} c={r['concurrency']:<3} {r['req_per_s']:8.1f} req/s  "
        f"p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  errors {r['errors']}  server CPU "
        f"{r['server_cpu_ms_per_request']:.2f} ms/req  (load {r['loadavg_1m']:.1f})",
        flush=True,
    )


def measure(proc, port, paths, c, seconds, once: bool = False, **tags) -> dict:
    cpu0 = cpu_seconds(proc.pid)
    r = asyncio.run(drive(port, paths, c, seconds, once))
    r["server_cpu_ms_per_request"] = (cpu_seconds(proc.pid) - cpu0) / max(r["requests"], 1) * 1e3
    r.update(tags, loadavg_1m=os.getloadavg()[0])
    report(r)
    return r


def bench_model(name: str, run: Path, a: argparse.Namespace, levels: list[int], tmp: str) -> list[dict]:
    from genrec.serving.registry import Registry

    reg = Registry(run)
    reg.ensure()
    cat = reg.load().catalog
    users = [cat.user_raw[u] for u in range(1, cat.n_users + 1)]
    paths = [f"/recommend?user_id={u}&k=10" for u in np.random.default_rng(0).permutation(users)]
    top = max(levels)
    modes = [("cached", [])]
    if name in SEQUENCE:
        modes.append(("no cache", ["--user-cache", "0"]))
    modes.append(("no batching", ["--max-batch", "1", "--user-cache", "0"]))
    if a.workers > 1:  # the default server (one thread each) in N processes on one port
        modes.append((f"{a.workers} workers", ["--workers", str(a.workers), "--threads", "1"]))
    rows = []
    for label, extra in modes:
        port = free_port()
        events = a.events or f"sqlite:///{tmp}/{name}-{label.replace(' ', '-')}.db"
        proc = start_server(run, events, port, *extra)
        tags = dict(model=name, n_items=cat.n_items)
        try:
            if label.endswith("workers"):  # each worker fills its own user cache: two cold passes
                for _ in range(2):
                    asyncio.run(drive(port, paths, top, 1e9, once=True))
            if label == "cached":
                # every user once at the top concurrency (bounded by the number of users): the cold pass
                rows.append(measure(proc, port, paths, top, 1e9, once=True, **tags, mode="cold"))
            for c in levels:
                if label != "cached" and c != top:
                    continue  # concurrency 1 is not what batching or caching change
                asyncio.run(drive(port, paths, c, 2.0))  # warm-up
                rows.append(measure(proc, port, paths, c, a.seconds, **tags, mode=label))
        finally:
            proc.terminate()
            proc.wait(30)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data_dir = Path(os.environ.get("GENREC_DATA_DIR", ROOT.parent / "shared" / "datasets"))
    p.add_argument("--data", default=str(data_dir / "ml-1m-u2999"))
    p.add_argument("--runs", default=str(ROOT / "runs"), help="where bench-serve-MODEL-ml-1m-u2999 runs live")
    p.add_argument("--models", default="ease,sasrec,hstu", help=f"comma-separated, from {', '.join(MODELS)}")
    p.add_argument(
        "--seconds", type=float, default=8.0, help="measured seconds per setting (after 2 s warm-up)"
    )
    p.add_argument("--concurrency", default="1,32")
    p.add_argument("--events", help="one event store for every server, e.g. postgresql://USER@HOST:PORT/DB")
    p.add_argument(
        "--workers", type=int, default=0, help="also serve with `--workers N` (against 1 process, same run)"
    )
    a = p.parse_args()
    levels = [int(c) for c in a.concurrency.split(",")]
    load_before = os.getloadavg()
    t_start = time.time()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models.split(","):
            run = ensure_run(
                Path(a.runs) / f"bench-serve-{name}-ml-1m-u2999", Path(a.data), name, MODELS[name]
            )
            rows += bench_model(name, run, a, levels, tmp)
    print(
        f"\nGET /recommend k=10 on ml-1m-u2999 (2,999 users, {rows[0]['n_items']} items), loopback, "
        f"{os.cpu_count()} cores, load average before {load_before[0]:.1f}"
    )
    print(
        f"{'model':<8}{'mode':<12}{'conc':>6}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}"
        f"{'CPU ms/req':>12}"
    )
    for r in rows:
        print(
            f"{r['model']:<8}{r['mode']:<12}{r['concurrency']:>6}{r['req_per_s']:>10.1f}{r['p50_ms']:>10.2f}"
            f"{r['p99_ms']:>10.2f}{r['errors']:>8}{r['server_cpu_ms_per_request']:>12.2f}"
        )
    by = {(r["model"], r["mode"], r["concurrency"]): r["req_per_s"] for r in rows}
    top = max(levels)
    gains: dict[str, dict[str, float]] = {}
    for name in a.models.split(","):
        batched = by.get((name, "no cache" if name in SEQUENCE else "cached", top))
        g = gains[name] = {}
        if batched and (name, "no batching", top) in by:
            g["batching"] = batched / by[(name, "no batching", top)]
        if name in SEQUENCE and (name, "cached", top) in by and batched:
            g["user_cache"] = by[(name, "cached", top)] / batched
        n_workers = (name, f"{a.workers} workers", top)
        if n_workers in by and (name, "cached", top) in by:
            g[f"{a.workers}_workers"] = by[n_workers] / by[(name, "cached", top)]
        print(
            f"{name}: throughput ratios at concurrency {top} (same run): "
            + ", ".join(f"{k} x{v:.2f}" for k, v in g.items())
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "serve_load",
                "dataset": "ml-1m-u2999",
                "k": 10,
                "cores": os.cpu_count(),
                "loadavg_before": load_before,
                "seconds_per_setting": a.seconds,
                "models": {m: MODELS[m] for m in gains},
                "rows": rows,
                "gains": gains,
                "wall_seconds": time.time() - t_start,
                "command": "python benchmarks/serve_load.py " + " ".join(sys.argv[1:]),
            },
            indent=2,
        )
    )
    print(f"wrote {RESULTS}")
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
