"""Version names: monotonic, never reused, never colliding between concurrent publishers."""

from __future__ import annotations

import multiprocessing as mp
import shutil
import threading
from pathlib import Path

import pytest

from genrec.serving.registry import Registry


def publish_in_time(reg: Registry, seconds: float = 60.0) -> str:
    """reg.publish of the current version's model and catalog, failing (not hanging) past `seconds`."""
    v = reg.load()
    out: list[str] = []
    t = threading.Thread(target=lambda: out.append(reg.publish(v.model, v.catalog, {"source": "test"})))
    t.daemon = True
    t.start()
    t.join(seconds)
    assert out, f"publish did not return within {seconds} s (versions: {reg.versions()})"
    return out[0]


def test_names_grow_past_deleted_versions(run_dir):
    reg = Registry(run_dir)
    assert reg.ensure() == "v0001"
    assert publish_in_time(reg) == "v0002"
    shutil.rmtree(reg.root / "v0001")  # an operator prunes the oldest: 1 version left, v0002 taken
    assert publish_in_time(reg) == "v0003"
    reg.set_current("v0002")
    shutil.rmtree(reg.root / "v0003")  # the newest is deleted: its name is still never handed out again
    assert publish_in_time(reg) == "v0004"
    assert reg.versions() == ["v0002", "v0004"]
    assert reg.current() == "v0004"
    assert reg.load().catalog.n_items == reg.load("v0002").catalog.n_items


def _publish_many(run: str, n: int, q) -> None:
    reg = Registry(run)
    v = reg.load()
    q.put([reg.publish(v.model, v.catalog, {"source": "test"}, make_current=False) for _ in range(n)])


@pytest.mark.slow  # four fresh interpreters importing torch
def test_concurrent_publishers_get_distinct_complete_versions(run_dir):
    reg = Registry(run_dir)
    reg.ensure()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_publish_many, args=(str(run_dir), 3, q)) for _ in range(4)]
    for p in procs:
        p.start()
    names = [name for _ in procs for name in q.get(timeout=120)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert len(set(names)) == 12
    assert sorted(names) == [f"v{i:04d}" for i in range(2, 14)]
    assert reg.versions() == [f"v{i:04d}" for i in range(1, 14)]
    assert not [p.name for p in Path(reg.root).iterdir() if p.name.startswith(".tmp-")]


PUBLISH_FOREVER = """
import sys
from genrec.serving.registry import Registry
reg = Registry(sys.argv[1])
v = reg.load()
print("ready", flush=True)
while True:
    reg.publish(v.model, v.catalog, {"source": "test"})
"""


@pytest.mark.slow  # 20 fresh interpreters importing torch
def test_publishers_killed_mid_publish_leave_a_sound_registry(run_dir):
    import random
    import subprocess
    import sys

    reg = Registry(run_dir)
    reg.ensure()
    rng = random.Random(0)
    mid_write = 0
    for _ in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", PUBLISH_FOREVER, str(run_dir)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout.readline().strip() == "ready"
        threading.Event().wait(rng.uniform(0.0, 0.3))  # somewhere inside a publish
        child.kill()
        child.wait()
        mid_write += any(p.name.startswith(".tmp-") for p in reg.root.iterdir())
        names = reg.versions()
        assert names == sorted(set(names)) and reg.current() in names
        for name in (names[-1], reg.current()):
            reg.load(name)  # complete and loadable
    assert mid_write >= 3  # the kills did land inside publishes
    before = reg.versions()
    new = publish_in_time(reg, 30)  # no hang, a fresh name, and the dead publishers' debris swept
    assert new not in before and int(new[1:]) > max(int(n[1:]) for n in before)
    assert not [p for p in reg.root.iterdir() if p.name.startswith(".tmp-")]
