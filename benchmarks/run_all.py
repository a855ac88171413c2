"""`make bench`: run every benchmark script in turn; each prints a table and writes JSON to
benchmarks/results/. Scripts are listed here so the order (cheap first) is explicit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS: list[str] = [
    "foundation.py",
    "generation.py",
    "dropout_masks.py",
    "serve_load.py",
    "generative_cf.py",
    "sequential.py",
    "recbole_speed.py",
    "preprocess_memory.py",
    "semantic_ids.py",
    "distributed.py",
    "eval_memory.py",
]

if __name__ == "__main__":
    failed = []
    for script in SCRIPTS:
        print(f"\n===== {script}", flush=True)
        if subprocess.call([sys.executable, str(HERE / script)]) != 0:
            failed.append(script)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")
