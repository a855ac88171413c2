"""Peak memory and time of `genrec data prepare --engine duckdb` on a log larger than memory budgets.

Generates a synthetic Parquet log (benchmarks/generate_log.py: long-tailed users, Zipf-like items,
repeated pairs, tied timestamps) unless --file names one, then runs
`genrec data prepare --data FILE --engine duckdb` in a fresh subprocess and reports the child's peak RSS
(resource.getrusage(RUSAGE_CHILDREN).ru_maxrss) and wall seconds. Target: 100M rows within 6 GiB.
Generated files and the processed dataset go to a temp dir (--tmp), never into the repository.

    python benchmarks/preprocess_outofcore.py                           # 100,000,000 rows
    python benchmarks/preprocess_outofcore.py --rows 10000000 --tmp /tmp
    python benchmarks/preprocess_outofcore.py --file /tmp/log-100m.parquet --memory-limit 2GB
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate_log import generate  # noqa: E402


def measure(path: Path, cache: Path, memory_limit: str, extra: list[str]) -> dict:
    """Run prepare in a fresh child; peak RSS of that child only."""
    env = {**os.environ, "GENREC_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "genrec.cli", "data", "prepare", "--data", str(path), "--engine", "duckdb"]
    cmd += ["--memory-limit", memory_limit, *extra]
    t = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    secs = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"prepare failed:\n{out.stderr[-4000:]}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the only child waited for
    folder = next(p for p in (cache / "processed").iterdir() if (p / "manifest.json").exists())
    return {
        "command": " ".join(["genrec", *cmd[3:]]).replace(str(path), path.name),  # no machine paths
        "peak_rss_mb": peak_kb / 1024,
        "seconds": secs,
        "dataset_mb": sum(f.stat().st_size for f in folder.iterdir()) / 2**20,
        "summary": out.stdout.strip().splitlines()[:2],
        "stages": [ln for ln in out.stderr.splitlines() if ln.startswith("[")],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000_000)
    ap.add_argument("--file", type=Path, default=None, help="an existing log to prepare (skips generation)")
    ap.add_argument(
        "--tmp", default=None, help="where generated files and the cache go (default: system temp)"
    )
    ap.add_argument("--memory-limit", default="2GB", help="DuckDB memory_limit (--memory-limit of prepare)")
    ap.add_argument("--keep", action="store_true", help="keep the generated log for another run")
    a, extra = ap.parse_known_args()  # anything else goes to `genrec data prepare` (e.g. --min-user 5)
    d = Path(tempfile.mkdtemp(dir=a.tmp, prefix="genrec-ooc-"))
    try:
        path, gen_s = a.file, 0.0
        if path is None:
            path = d / f"log-{a.rows}.parquet"
            t = time.perf_counter()
            generate(path, a.rows, verbose=False)
            gen_s = time.perf_counter() - t
            print(f"generated {a.rows:,} rows in {gen_s:.0f}s", flush=True)
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(path).metadata.num_rows if path.suffix == ".parquet" else None
        r = measure(path, d / "cache", a.memory_limit, extra)
        r.update(
            rows=rows,
            file_mb=path.stat().st_size / 2**20,
            generate_seconds=gen_s,
            memory_limit=a.memory_limit,
        )
        if a.keep and a.file is None:
            kept = Path(a.tmp or tempfile.gettempdir()) / path.name
            shutil.move(path, kept)
            print(f"kept the log at {kept}")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    for line in r["stages"]:
        print("  " + line)
    print(f"\n{'rows':>13} {'file MB':>8} {'limit':>6} {'peak RSS MB':>12} {'seconds':>8} {'dataset MB':>10}")
    print(
        f"{r['rows'] or 0:>13,} {r['file_mb']:>8,.0f} {r['memory_limit']:>6} {r['peak_rss_mb']:>12,.0f} "
        f"{r['seconds']:>8.0f} {r['dataset_mb']:>10,.0f}"
    )
    print("\n".join(r["summary"]))
    out = HERE / "results" / "preprocess_outofcore.json"
    out.parent.mkdir(exist_ok=True)
    # one entry per (rows, options): a run replaces its earlier figures and keeps the other settings'
    same = (r["rows"], r["memory_limit"], extra)
    old = json.loads(out.read_text())["results"] if out.exists() else []
    kept = [o for o in old if (o.get("rows"), o.get("memory_limit"), o.get("prepare_args", [])) != same]
    r["prepare_args"] = extra
    out.write_text(json.dumps({"results": [*kept, r], "python": sys.version.split()[0]}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
