"""GET /recommend without HTTP: the ASGI app driven in process by httpx, to compare two source trees'
serving code with less noise than `serve_load.py` (no sockets, no second process).

Run it once per tree, with that tree's code first on the path, e.g.

    PYTHONPATH=../genrec-before/src python benchmarks/serve_inprocess.py --model ease
    PYTHONPATH=src python benchmarks/serve_inprocess.py --model ease

or, for a tree whose genrec cannot train with this script, give each tree a run it trained itself
(`--run`, e.g. the runs `regression.py` leaves in its temporary folder), and
`--user-cache 0` to time the uncached path.

Trains (or reuses) the model's run under --runs with the settings of serve_load.py, fills the user
cache with one request per user, then times `--requests` cached requests at concurrency 1 and 32, best
of `--repeats`, and prints req/s and the process's CPU milliseconds per request as one JSON line, with
the Python function calls per request at c=32 (the client's included, the same on both trees): a
count the machine's load does not move.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


async def drive(app, paths: list[str], requests: int, repeats: int) -> dict:
    import httpx

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        key = {"X-API-Key": "k"}
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=key) as c:

            async def worker(ps: list[str]) -> None:
                for p in ps:
                    r = await c.get(p)
                    assert r.status_code == 200, r.text

            await asyncio.gather(*(worker(paths[i::32]) for i in range(32)))  # every user cached
            out = {}
            for conc in (1, 32):
                ps = [paths[i % len(paths)] for i in range(requests)]
                best, cpu = 0.0, float("inf")
                for _ in range(repeats):
                    t, c0 = time.perf_counter(), time.process_time()
                    await asyncio.gather(*(worker(ps[i::conc]) for i in range(conc)))
                    best = max(best, requests / (time.perf_counter() - t))
                    cpu = min(cpu, (time.process_time() - c0) / requests * 1e3)
                out[f"c={conc} req/s"] = round(best, 1)
                out[f"c={conc} cpu_ms"] = round(cpu, 3)
            # Python function calls per request at c=32, both threads: a count, so not moved by a
            # busy machine the way times are (the same code makes the same calls)
            ps = [paths[i % len(paths)] for i in range(requests)]
            main_prof, score_prof = cProfile.Profile(), cProfile.Profile()
            engine = app.state.engine
            score = type(engine)._score_batch

            def profiled(self, batch):  # the scoring thread's share
                score_prof.enable()
                try:
                    return score(self, batch)
                finally:
                    score_prof.disable()

            type(engine)._score_batch = profiled
            main_prof.enable()
            await asyncio.gather(*(worker(ps[i::32]) for i in range(32)))
            main_prof.disable()
            type(engine)._score_batch = score
            calls = sum(pstats.Stats(p).total_calls for p in (main_prof, score_prof))
            out["c=32 python calls/req"] = round(calls / requests, 1)
            return out


def main() -> int:
    import inspect

    from genrec.serving.app import create_app
    from genrec.serving.engine import Engine
    from genrec.serving.events import open_store
    from genrec.serving.registry import Registry

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ease", help="ease, sasrec or hstu (serve_load.py's settings)")
    p.add_argument("--run", help="serve this run instead (one trained by the tree under test)")
    p.add_argument("--data", default=str(HERE.parents[1] / "shared" / "datasets" / "ml-1m-u2999"))
    p.add_argument("--runs", default=str(Path(tempfile.gettempdir()) / "genrec-serve-inprocess"))
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--user-cache", type=int, default=100_000, help="0: every request runs the model")
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.run:
        run = Path(a.run)
    else:
        from serve_load import MODELS, ensure_run

        run = ensure_run(Path(a.runs) / f"{a.model}-ml-1m-u2999", Path(a.data), a.model, MODELS[a.model])
    store = open_store(f"sqlite:///{tempfile.mkdtemp()}/events.db")
    engine = Engine(str(run), store, user_cache=a.user_cache)
    kw = {"watch_interval_s": 0} if "watch_interval_s" in inspect.signature(create_app).parameters else {}
    app = create_app(engine, api_key="k", **kw)  # older trees: no watch interval to set
    cat = Registry(run).load().catalog
    users = [cat.user_raw[u] for u in range(1, cat.n_users + 1)]
    paths = [f"/recommend?user_id={u}&k=10" for u in np.random.default_rng(0).permutation(users)]
    res = asyncio.run(drive(app, paths, a.requests, a.repeats))
    print(json.dumps({"model": a.model, "user_cache": a.user_cache, **res}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
