"""`genrec serve` and `genrec update`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from genrec.cli.common import RAW, Subparsers


def add_serve_command(sub: Subparsers) -> None:
    s = sub.add_parser(
        "serve",
        help="serve a run over HTTP: recommendations, feedback, hot model swaps",
        description="Serve a run: GET/POST /recommend, POST /feedback, GET /users/{id}/history, "
        "DELETE /users/{id}, GET /items/{id}, /healthz, /readyz, /metrics. OpenAPI spec "
        "at /openapi.json, docs at /docs.",
    )
    s.add_argument("run", help="run directory (genrec train --out DIR)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument(
        "--events",
        default=None,
        help="event store: sqlite:///PATH (default sqlite:///RUN/events.db) or postgresql://USER@HOST:PORT/DB",
    )
    s.add_argument("--api-key", dest="api_key_argv", default=None, help=argparse.SUPPRESS)  # refused
    s.add_argument(
        "--api-key-file",
        default=None,
        metavar="FILE",
        help="file holding the key for write routes (X-API-Key), readable by its owner only; "
        "default $GENREC_API_KEY (a key is never given on the command line, where `ps` shows it)",
    )
    s.add_argument(
        "--read-key-file",
        default=None,
        metavar="FILE",
        help="file holding the read key (/recommend, /items; the admin key reads too), owner-only; "
        "default $GENREC_READ_KEY",
    )
    s.add_argument(
        "--anonymous-reads",
        action="store_true",
        help="let requests without a key read lists for a history they send (never a stored user's "
        "list or an explanation); by default every route but /healthz, /readyz, /metrics needs a key",
    )
    s.add_argument("--batch-wait-ms", type=float, default=2.0, help="longest wait to fill a scoring batch")
    s.add_argument("--max-batch", type=int, default=64, help="most requests scored in one model call")
    s.add_argument(
        "--user-cache",
        type=int,
        default=100_000,
        help="sequence models: users whose final hidden state is cached between requests (0 = off)",
    )
    s.add_argument(
        "--ann-candidates",
        type=int,
        default=0,
        help="approximate top-k for huge catalogues (SASRec, HSTU): an HNSW index over the item vectors "
        "(faiss) proposes N items per list and the model's exact scores rank them; 0 = exact full "
        "ranking (default). Each version's index is built when it loads",
    )
    s.add_argument(
        "--overlay-events",
        type=int,
        default=200_000,
        help="feedback events kept in memory between updates (about 200 bytes each); beyond that, the "
        "least recently served users' events are read back from the store when asked for",
    )
    s.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds a connection has to send a complete request head (then it is closed)",
    )
    s.add_argument(
        "--http-parser",
        choices=["auto", "httptools", "h11"],
        default="auto",
        help="HTTP/1.1 parser: httptools (C, the faster) when installed, else h11 (pure Python)",
    )
    s.add_argument(
        "--keep-alive-timeout", type=float, default=5.0, help="seconds an idle connection stays open"
    )
    s.add_argument(
        "--max-clock-skew",
        type=float,
        default=86_400.0,
        help="seconds a feedback timestamp may be ahead of the server's clock (later ones get 422)",
    )
    s.add_argument(
        "--watch-interval",
        type=float,
        default=1.0,
        help="seconds between checks for a newly published version (0 = never)",
    )
    s.add_argument(
        "--threads",
        type=int,
        default=max(1, (os.cpu_count() or 2) // 2),
        help="torch threads for scoring (default: half the cores; the rest run the HTTP side)",
    )
    s.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes on one port (each loads the model; the kernel spreads connections). "
        "They share the event store (use PostgreSQL for several) and each follows new versions and "
        "erasures within --watch-interval",
    )
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    s.set_defaults(
        func=lambda a: cmd_serve(a, os.environ.get("GENREC_API_KEY"), os.environ.get("GENREC_READ_KEY"))
    )


def add_update_command(sub: Subparsers) -> None:
    u = sub.add_parser(
        "update",
        help="fine-tune on stored feedback; publish only if validation NDCG holds",
        description=update_doc(),
        formatter_class=RAW,
    )
    u.add_argument("run", help="run directory")
    u.add_argument(
        "--events", default=None, help="the event store the server wrote (default sqlite:///RUN/events.db)"
    )
    u.add_argument(
        "--tolerance", type=float, default=0.01, help="largest NDCG@10 drop (absolute) still published"
    )
    u.add_argument("--model", help="fit another model family instead of the served one")
    u.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a model setting (repeatable)"
    )
    u.add_argument(
        "--min-eval-users", type=int, default=20, help="users with >= 3 new events needed to validate"
    )
    u.add_argument(
        "--warm-epochs",
        type=int,
        default=5,
        help="epochs of fine-tuning from the served weights (torch models; others refit)",
    )
    u.add_argument("--from-scratch", action="store_true", help="refit from scratch instead of fine-tuning")
    u.add_argument("--dry-run", action="store_true", help="fit and validate, publish nothing")
    u.set_defaults(func=cmd_update)


def cmd_serve(a: argparse.Namespace, env_key: str | None, env_read_key: str | None = None) -> int:
    if a.api_key_argv is not None:
        raise ValueError(
            "--api-key is not accepted: a key on the command line is visible to every local user (ps); "
            "set GENREC_API_KEY or use --api-key-file FILE"
        )
    import logging

    from genrec.serving.events import open_store
    from genrec.serving.protocol import head_timeout_protocol
    from genrec.serving.update import run_settings

    logging.basicConfig(level=a.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if a.threads < 1:
        raise ValueError("--threads must be >= 1")
    if a.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {a.workers}")
    if a.batch_wait_ms < 0 or a.max_batch < 1 or a.user_cache < 0 or a.overlay_events < 1:
        raise ValueError(
            "--batch-wait-ms and --user-cache must be >= 0, --max-batch and --overlay-events >= 1"
        )
    key = read_key_file(a.api_key_file) if a.api_key_file else env_key
    read_key = read_key_file(a.read_key_file) if a.read_key_file else env_read_key
    if key is None and read_key is None and not a.anonymous_reads:
        raise ValueError(
            "no key: every route needs one; set GENREC_API_KEY (admin) and/or GENREC_READ_KEY, or use "
            "--api-key-file / --read-key-file, or --anonymous-reads for an open read-only server"
        )
    head_timeout_protocol(a.header_timeout, a.http_parser)  # checks the values before any work
    if not a.keep_alive_timeout > 0:
        raise ValueError(f"--keep-alive-timeout must be > 0 seconds, got {a.keep_alive_timeout}")
    run_settings(a.run)
    if a.workers == 1:
        return serve_worker(a, key, read_key, None)
    open_store(events_url(a)).close()  # a bad URL or an old schema fails here, once, not in N children
    return supervise(a, key, read_key)


def serve_worker(a: argparse.Namespace, key: str | None, read_key: str | None, sock) -> int:
    """One server process: its own engine (model, caches) and store connection; `sock` is its
    listening socket when it is one of several workers (None: uvicorn binds --host/--port)."""
    import torch
    import uvicorn

    from genrec.serving.app import create_app
    from genrec.serving.engine import Engine
    from genrec.serving.events import open_store
    from genrec.serving.protocol import head_timeout_protocol
    from genrec.serving.update import run_settings

    torch.set_num_threads(a.threads)
    store = open_store(events_url(a))
    engine = Engine(
        a.run,
        store,
        max_batch=a.max_batch,
        max_wait_s=a.batch_wait_ms / 1000,
        rating_threshold=run_settings(a.run).data.rating_threshold,
        user_cache=a.user_cache,
        max_clock_skew_s=a.max_clock_skew,
        overlay_events=a.overlay_events,
        ann_candidates=a.ann_candidates,
    )
    app = create_app(
        engine,
        api_key=key,
        read_key=read_key,
        anonymous_reads=a.anonymous_reads,
        watch_interval_s=a.watch_interval,
    )
    v = engine.state.version
    who = f"worker {os.getpid()}: " if sock is not None else ""
    print(
        f"{who}serving {a.run} version {v.name} ({v.model.name}, {v.catalog.n_items} items) "
        f"on http://{a.host}:{a.port}; events in {store.url.split('@')[-1]}; "
        f"write routes {'need X-API-Key' if key else 'are OFF (no key)'}",
        flush=True,
    )
    # access_log off: URLs carry user ids; our middleware logs route templates only
    config = uvicorn.Config(
        app,
        host=a.host,
        port=a.port,
        log_level=a.log_level,
        access_log=False,
        http=head_timeout_protocol(a.header_timeout, a.http_parser),
        timeout_keep_alive=a.keep_alive_timeout,
    )
    uvicorn.Server(config).run(sockets=None if sock is None else [sock])
    store.close()
    return 0


def reuseport_socket(host: str, port: int):
    """A listening socket on host:port that other processes may bind too: the kernel then spreads new
    connections over every worker's socket (SO_REUSEPORT), instead of waking all on one shared socket."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def supervise(a: argparse.Namespace, key: str | None, read_key: str | None) -> int:
    """`--workers N`: fork N workers, each with its own socket on the same port; forward SIGTERM/SIGINT
    to them; restart a worker that dies, unless it died within 10 s of its start (a broken set-up would
    otherwise restart forever), in which case stop them all and fail."""
    import signal
    import socket
    import time

    if not hasattr(os, "fork") or not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("--workers N needs fork and SO_REUSEPORT (Linux); run one process per port instead")
    try:  # the port is checked here, so a taken one is one clear error rather than N dying children
        reuseport_socket(a.host, a.port).close()
    except OSError as e:
        raise ValueError(f"cannot listen on {a.host}:{a.port}: {e.strerror}") from None

    def start() -> int:
        pid = os.fork()
        if pid:
            return pid
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        code = 1
        try:
            code = serve_worker(a, key, read_key, reuseport_socket(a.host, a.port))
        finally:
            os._exit(code)

    workers = {start(): time.time() for _ in range(a.workers)}
    stopping = False

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in workers:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"{a.workers} workers on http://{a.host}:{a.port} (pids {', '.join(map(str, workers))})", flush=True
    )
    failed = False
    while workers:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        started = workers.pop(pid, None)
        if started is None or stopping:
            continue
        code = os.waitstatus_to_exitcode(status)
        if time.time() - started < 10:
            print(
                f"worker {pid} exited ({code}) right after its start: stopping", file=sys.stderr, flush=True
            )
            failed = True
            stop(signal.SIGTERM, None)
            continue
        print(f"worker {pid} exited ({code}): starting another", file=sys.stderr, flush=True)
        workers[start()] = time.time()
    return 1 if failed else 0


def cmd_update(a: argparse.Namespace) -> int:
    from genrec.serving.update import update_run
    from genrec.training.settings import parse_sets

    res = update_run(
        a.run,
        events_url(a),
        tolerance=a.tolerance,
        model_name=a.model,
        overrides=parse_sets(a.set),
        min_eval_users=a.min_eval_users,
        dry_run=a.dry_run,
        warm_epochs=a.warm_epochs,
        from_scratch=a.from_scratch,
    )
    print(res.message)
    if res.report.get("gate"):
        g = res.report["gate"]
        print(f"{'':<12}{'ndcg@10':>10}{'hr@10':>10}")
        for k in ("served", "candidate"):
            print(f"{k:<12}{g[k]['ndcg@10']:>10.4f}{g[k]['hr@10']:>10.4f}")
    return res.exit_code


def update_doc() -> str:
    from genrec.serving import update

    return update.__doc__ or ""


def events_url(a: argparse.Namespace) -> str:
    """--events, or the run's own SQLite store so that `serve` and `update` meet without flags."""
    return a.events or f"sqlite:///{Path(a.run).resolve() / 'events.db'}"


def read_key_file(path: str) -> str:
    """The key in FILE (surrounding whitespace dropped); refused when others may read the file."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
        key = p.read_text().strip()
    except OSError as e:
        raise ValueError(f"--api-key-file {path}: {e.strerror}") from None
    if mode & 0o077:
        raise ValueError(
            f"--api-key-file {path}: permissions {mode & 0o777:04o} let other users read the key; "
            f"run: chmod 600 {path}"
        )
    if not key:
        raise ValueError(f"--api-key-file {path} is empty")
    return key
