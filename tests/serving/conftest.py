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

    engine = Engine(str(run), open_store(events), max_wait_s=kw.pop("max_wait_s", 0.002))
    app = create_app(engine, api_key=kw.pop("api_key", API_KEY), watch_interval_s=kw.pop("watch", 0.0), **kw)
    return TestClient(app, raise_server_exceptions=False)


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
