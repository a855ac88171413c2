"""`genrec report`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from genrec.cli.common import RAW, Subparsers


def cmd_report(a: argparse.Namespace) -> int:
    out = write_report([Path(r) for r in a.runs], Path(a.out), a.title, a.user_attributes)
    print(f"wrote {out} ({out.stat().st_size // 1024} kB, opens offline)")
    return 0


def write_report(runs: list[Path], out: Path, title: str, user_attributes: str | None = None) -> Path:
    """Analyse `runs` and write the report to `out` atomically (never a half-written file)."""
    from genrec.data.attributes import read_user_attributes
    from genrec.evaluation.groups import evaluate_groups
    from genrec.evaluation.report import Entry, render_report
    from genrec.generation import Generator
    from genrec.training.runs import load_run

    entries = []
    names = [r.name for r in runs]
    for path, name in zip(runs, names if len(set(names)) == len(names) else map(str, runs)):
        run = load_run(path)
        groups = {}
        attrs_path = user_attributes or attributes_beside(run.config.source)
        if attrs_path is not None:
            test = run.dataset.test
            raw = run.dataset.user_ids.ids(test.history.users.tolist())
            for attr, values in read_user_attributes(Path(attrs_path)).items():
                if len(set(values.values())) <= 25:  # categories, not free text
                    labels = [values.get(u) for u in raw]
                    groups[attr] = evaluate_groups(
                        run.model.score, test, labels, (10,), run.config.exclude_seen, min_users=20
                    )
        config = run.config.to_json()
        entries.append(
            Entry(
                name,
                run.model,
                run.dataset,
                config,
                fit_info=run.model.fit_info_,
                groups=groups,
                tradeoff=Generator(run.model, run.dataset).diversity_tradeoff(
                    run.dataset.test, 10, exclude_seen=run.config.exclude_seen
                ),
                exclude_seen=run.config.exclude_seen,
            )
        )
    page = render_report(entries, title=title)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page)
    os.replace(tmp, out)
    return out


def attributes_beside(source) -> str | None:  # noqa: ANN001 - a SourceSpec
    """MovieLens-1M's users.dat in the run's source folder, when there is one."""
    if source.data is None:
        return None
    folder = Path(source.data) if Path(source.data).is_dir() else Path(source.data).parent
    return str(folder / "users.dat") if (folder / "users.dat").exists() else None


def add_report_command(sub: Subparsers) -> None:
    rp = sub.add_parser(
        "report",
        help="one self-contained HTML report comparing runs (tables, curves, bias plots)",
        formatter_class=RAW,
        description="Write one HTML file that opens with no network: the metrics of every run (best per "
        "column marked), training and validation curves, scaling curves (runs of one model at several "
        "--size: NDCG@10 against parameters and training FLOPs), NDCG@K and HR@K against K, metrics by "
        "history length, popularity bias by item-popularity decile, coverage and Gini of exposure, "
        "metrics by user group (MovieLens-1M's users.dat beside the data, or --user-attributes), and "
        "each run's resolved configuration.\n\n"
        "  genrec report runs/ml1m-ease runs/ml1m-sasrec --out report.html",
    )
    rp.add_argument("runs", nargs="+", help="run directories")
    rp.add_argument("--out", default="report.html", help="the HTML file to write (default report.html)")
    rp.add_argument("--title", default="genrec report", help="the report's title")
    rp.add_argument("--user-attributes", metavar="FILE", help="CSV with a user column and attribute columns")
    rp.set_defaults(func=cmd_report)
