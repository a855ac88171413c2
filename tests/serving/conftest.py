"""Fixtures for the serving tests: a small trained EASE run, app clients, real server processes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

NO_KEY = {"X-API-Key": ""}  # an empty header: as if none was sent
API_KEY = "test-key"


@pytest.fixture(scope="session")
def ease_run(tmp_path_factory) -> Path:
    """EASE on the embedded synthetic data (1,000 users, 400 items); copy it before changing it."""
    from genrec.data.sources import SourceSpec
    from genrec.training.runs import RunConfig, train_run

    out = tmp_path_factory.mktemp("serving") / "ease-run"
    train_run(
        RunConfig(source=SourceSpec(synthetic=True), model="ease", model_config={"l2": 200.0}, ks=[10]),
        out,
        progress=False,
    )
    return out


@pytest.fixture(scope="session")
def sasrec_run(tmp_path_factory) -> Path:
    """SASRec tiny, one epoch, on the embedded synthetic data; copy it before changing it."""
    from genrec.data.sources import SourceSpec
    from genrec.training import TrainConfig
    from genrec.training.runs import RunConfig, train_run

    out = tmp_path_factory.mktemp("serving") / "sasrec-run"
    train_run(
        RunConfig(
            source=SourceSpec(synthetic=True),
            model="sasrec",
            model_config={"size": "tiny", "epochs": 1},
            train=TrainConfig(threads=1),
            ks=[10],
        ),
        out,
        progress=False,
    )
    return out


@pytest.fixture
def run_dir(ease_run, tmp_path) -> Path:
    """A private copy of the run (tests publish versions into it)."""
    dst = tmp_path / "run"
    shutil.copytree(ease_run, dst)
    return dst


def make_client(run: Path, events: str, **kw):
    from fastapi.testclient import TestClient

    from genrec.serving.app import create_app
    from genrec.serving.engine import Engine
    from genrec.serving.events import open_store

    engine = Engine(
        str(run),
        open_store(events),
        max_wait_s=kw.pop("max_wait_s", 0.002),
        user_cache=kw.pop("user_cache", 100_000),
        overlay_events=kw.pop("overlay_events", 200_000),
        ann_candidates=kw.pop("ann_candidates", 0),
    )
    api_key = kw.pop("api_key", API_KEY)
    app = create_app(engine, api_key=api_key, watch_interval_s=kw.pop("watch", 0.0), **kw)
    # every route but the ops ones needs a key: the client sends the admin key unless told otherwise
    # (headers=NO_KEY for a request without one)
    return TestClient(app, raise_server_exceptions=False, headers={"X-API-Key": api_key} if api_key else None)


@pytest.fixture
def client(run_dir, tmp_path):
    with make_client(run_dir, f"sqlite:///{tmp_path / 'events.db'}") as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`genrec serve` in a subprocess on loopback."""

    def __init__(self, run: Path, events: str, log: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, GENREC_API_KEY=API_KEY)
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "genrec.cli",
                "serve",
                str(run),
                "--port",
                str(self.port),
                "--events",
                events,
                "--log-level",
                "warning",
                *extra,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {log}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not become ready in 90 s; see {log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    cands = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return cands[-1].parent if cands else None


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server on loopback (initdb + pg_ctl in a temp dir, as a non-root user)."""
    import tempfile

    bindir = _pg_bin()
    if bindir is None:
        reason = "PostgreSQL tests skipped: no initdb binary (apt-get install postgresql; .ci/run does)"
        print(reason)
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="genrec-pg-", dir="/tmp"))
    os.chmod(root, 0o755)
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()

    def run(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(root / "log"),
        "-w",
        "-t",
        "60",
        "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1",
        "start",
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    url = request.getfixturevalue("postgres_url")
    import psycopg  # a fresh schema per test: drop what an earlier test made

    with psycopg.connect(url, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS events, erased_users, erasures, store_secrets, schema_migrations")
    return url


class ThreadedServer:
    """The same app under uvicorn in a thread of the test process: real HTTP without a second torch import."""

    def __init__(self, run: Path, events: str, watch: float = 0.0, **kw) -> None:
        import threading

        import uvicorn

        from genrec.serving.app import create_app
        from genrec.serving.engine import Engine
        from genrec.serving.events import open_store

        self.store = open_store(events)
        app = create_app(Engine(str(run), self.store), api_key=API_KEY, watch_interval_s=watch, **kw)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("in-process server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.store.close()
