"""One self-contained HTML report comparing trained models: tables, curves and bias plots, no network.

    html = render_report([Entry("sasrec", model, dataset, config, fit_info, groups), ...])

Plots are matplotlib figures inlined as SVG: line and bar charts as vectors stay sharp and small
(tens of kB), and need no JavaScript, so the page opens offline and from a mail attachment. (plotly
would inline ~3.5 MB of JavaScript per report for interactivity these few charts do not need.)

Sections: metrics table (best value per column marked), training / validation curves, scaling curves
(test NDCG@10 against parameters and training FLOPs, one line per model and dataset), NDCG@K and HR@K
against K, metrics by history length, popularity bias (share of recommendations per item-popularity
decile against the data's own share), coverage and Gini of exposure, group metrics where the data has
user attributes, each run's resolved configuration.
"""

from __future__ import annotations

import html
import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from genrec.data.dataset import Dataset, EvalSet
from genrec.evaluation.metrics import evaluate
from genrec.models.base import MeasuresCompute, Recommender
from genrec.ranking import mask_scores, top_k

KS = (1, 2, 5, 10, 20, 50, 100)
BUCKETS = ((1, 5), (6, 10), (11, 20), (21, 50), (51, 100), (101, None))  # history lengths
SECTIONS = {
    "metrics": "Metrics",
    "curves": "Training and validation curves",
    "scaling": "Scaling: NDCG@10 against parameters and training FLOPs",
    "at-k": "NDCG@K and HR@K against K",
    "history": "Metrics by history length",
    "popularity": "Popularity bias",
    "exposure": "Coverage and Gini of exposure",
    "diversity": "Accuracy, coverage and diversity trade-off",
    "groups": "Metrics by user group",
    "config": "Resolved configurations",
}


@dataclass
class Entry:
    """One run in the report."""

    name: str
    model: Recommender
    dataset: Dataset
    config: dict[str, Any]  # the run's resolved configuration (config.json "run")
    fit_info: dict[str, Any] = field(default_factory=dict)
    groups: dict[str, dict] = field(default_factory=dict)  # attribute -> evaluate_groups(...) result
    tradeoff: list[dict] = field(default_factory=list)  # Generator.diversity_tradeoff(...) rows
    exclude_seen: bool = True


@dataclass
class Analysis:
    at_k: dict[str, float]
    buckets: list[tuple[str, int, float, float]]  # (label, users, ndcg@10, hr@10)
    rec_share: np.ndarray  # (10,) share of top-10 slots per popularity decile (most popular first)
    data_share: np.ndarray  # (10,) share of training interactions per decile


def analyse(e: Entry, split: str = "test") -> Analysis:
    ds, ev = e.dataset, getattr(e.dataset, split)
    at_k = evaluate(e.model.score, ev, KS, e.exclude_seen, item_popularity=ds.item_popularity)
    lengths = ev.history.lengths
    buckets = []
    for lo, hi in BUCKETS:
        rows = np.flatnonzero(
            (lengths >= lo) & (lengths <= (hi if hi is not None else lengths.max(initial=0)))
        )
        if len(rows) == 0:
            continue
        m = evaluate(
            e.model.score, EvalSet(ev.history.take(rows), ev.targets.take(rows)), (10,), e.exclude_seen
        )
        buckets.append((f"{lo}-{hi}" if hi is not None else f"{lo}+", len(rows), m["ndcg@10"], m["hr@10"]))
    rec_share, data_share = popularity_shares(e, ev)
    return Analysis(at_k, buckets, rec_share, data_share)


def popularity_shares(e: Entry, ev: EvalSet, k: int = 10, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Share of top-k recommendation slots, and of training interactions, per item-popularity decile
    (items sorted by training popularity, 10 groups of equal item count, most popular first)."""
    pop = e.dataset.item_popularity.astype(np.float64)
    order = np.argsort(-pop[1:], kind="stable") + 1
    decile = np.zeros(len(pop), dtype=np.int64)
    decile[order] = np.arange(len(order)) * 10 // max(len(order), 1)
    counts = np.zeros(10)
    with torch.no_grad():
        for s in range(0, len(ev), batch):
            h = ev.history.take(slice(s, min(s + batch, len(ev))))
            scores = e.model.score(h).float().clone()
            top, _ = top_k(mask_scores(scores, h, e.exclude_seen), min(k, scores.shape[1] - 1))
            items = top.reshape(-1).numpy()
            items = items[items > 0]
            counts += np.bincount(decile[items], minlength=10)[:10]
    data = np.bincount(decile[1:], weights=pop[1:], minlength=10)[:10]
    return counts / max(counts.sum(), 1), data / max(data.sum(), 1)


# --- rendering --------------------------------------------------------------------------------------
def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError("genrec report draws with matplotlib: pip install matplotlib") from None


def _svg(fig) -> str:  # noqa: ANN001 - a matplotlib Figure
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: the SVG sits inside HTML


def _figure(width: float = 7.0, height: float = 3.2, cols: int = 1):  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, cols, figsize=(width, height))
    return fig, np.atleast_1d(axes)


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_report(entries: list[Entry], title: str = "genrec report") -> str:
    """The whole report as one HTML string (no external resources)."""
    if not entries:
        raise ValueError("a report needs at least one run")
    _require_matplotlib()
    analyses = [analyse(e) for e in entries]
    names = [e.name for e in entries]
    parts = [_metrics_section(entries, analyses), _curves_section(entries)]
    parts += [_scaling_section(entries, analyses), _at_k_section(names, analyses)]
    parts += [_history_section(names, analyses), _popularity_section(names, analyses)]
    parts += [_exposure_section(names, analyses), _tradeoff_section(entries), _groups_section(entries)]
    parts += [_config_section(entries)]
    data = sorted({e.dataset.name for e in entries})
    return PAGE.format(
        title=html.escape(title),
        subtitle=html.escape(
            f"{len(entries)} run(s) on {', '.join(data)}; test split, leave-one-out, full ranking over every "
            "item, history excluded, ties counted against the model"
        ),
        toc="".join(f'<li><a href="#{k}">{v}</a></li>' for k, v in SECTIONS.items()),
        body="\n".join(parts),
    )


def _section(key: str, content: str, note: str = "") -> str:
    note_html = f"<p class='note'>{note}</p>" if note else ""
    return f'<section id="{key}"><h2>{SECTIONS[key]}</h2>{note_html}{content}</section>'


def _metrics_section(entries: list[Entry], analyses: list[Analysis]) -> str:
    cols = [("ndcg@10", True), ("hr@10", True), ("recall@10", True), ("mrr", True), ("coverage@10", True)]
    cols += [("gini@10", False), ("avg_pop@10", False)]
    values = [[a.at_k.get(c, float("nan")) for c, _ in cols] for a in analyses]
    fit_s = [e.fit_info.get("train_seconds", float("nan")) for e in entries]
    best = []
    for j, (_, higher) in enumerate(cols):
        col = [v[j] for v in values]
        best.append(max(col) if higher else min(col))
    rows = []
    for e, v, s in zip(entries, values, fit_s):
        cells = [
            f"<b>{x:.4f} &#9733;</b>" if len(entries) > 1 and x == b else f"{x:.4f}" for x, b in zip(v, best)
        ]
        rows.append([html.escape(e.name), html.escape(e.model.name), *cells, f"{s:.1f}"])
    header = ["run", "model", *[c for c, _ in cols], "fit seconds"]
    note = "&#9733; best per column (lowest for gini and avg_pop, where lower means less popularity bias)."
    return _section("metrics", _table(header, rows), note)


def _curves_section(entries: list[Entry]) -> str:
    iterative = [e for e in entries if e.fit_info.get("phases")]
    if not iterative:
        return _section("curves", "<p>No run trains in epochs (closed-form models).</p>")
    fig, (ax_loss, ax_valid) = _figure(10, 3.4, cols=2)
    for e in iterative:
        rows = [r for p in e.fit_info["phases"] for r in p["curve"]]
        x = np.arange(1, len(rows) + 1)
        loss_key = next((k for k in ("loss", "g_loss", "d_loss") if k in rows[0]), None)
        if loss_key:
            ax_loss.plot(
                x, [r.get(loss_key, np.nan) for r in rows], marker="o", ms=3, label=f"{e.name} {loss_key}"
            )
        vkey = next((k for k in rows[-1] if k.startswith("valid_")), None)
        if vkey:
            ax_valid.plot(
                x, [r.get(vkey, np.nan) for r in rows], marker="o", ms=3, label=f"{e.name} {vkey[6:]}"
            )
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss")
    ax_valid.set(xlabel="epoch", ylabel="validation metric", title="validation")
    for ax in (ax_loss, ax_valid):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    closed = [e.name for e in entries if not e.fit_info.get("phases")]
    note = f"Closed-form (no curve): {', '.join(closed)}." if closed else ""
    return _section("curves", _svg(fig), note)


def _scaling_section(entries: list[Entry], analyses: list[Analysis]) -> str:
    """One line per (model, dataset) through its runs at different sizes, as in the HSTU paper."""
    lines: dict[tuple[str, str], list[tuple[Entry, Analysis]]] = {}
    profiles: dict[str, dict[str, float]] = {}  # run name -> compute profile
    for e, a in zip(entries, analyses):
        if isinstance(e.model, MeasuresCompute):
            profiles[e.name] = e.model.compute_profile(e.dataset)
            lines.setdefault((e.model.name, e.dataset.name), []).append((e, a))
    lines = {k: v for k, v in lines.items() if len({profiles[e.name]["params"] for e, _ in v}) > 1}
    if not lines:
        return _section(
            "scaling",
            "<p>No model was trained at two sizes or more on the same data (e.g. <code>genrec train "
            "--size tiny</code> ... <code>--size large</code>, then one report of those runs).</p>",
        )
    fig, axes = _figure(10, 3.4, cols=2)
    rows = []
    for (model, data), runs in sorted(lines.items()):
        runs.sort(key=lambda r: profiles[r[0].name]["params"])
        ndcg = [a.at_k["ndcg@10"] for _, a in runs]
        for ax, key in zip(axes, ("params", "train_flops")):
            x = [profiles[e.name][key] for e, _ in runs]
            ax.plot(x, ndcg, marker="o", ms=4, label=f"{model} on {data}")
            for xi, yi, (e, _) in zip(x, ndcg, runs):
                ax.annotate(_size(e), (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
        for e, a in runs:
            info, fit = profiles[e.name], e.fit_info
            rows.append(
                [
                    html.escape(e.name),
                    html.escape(model),
                    html.escape(data),
                    html.escape(_size(e)),
                    f"{info['params']:,.0f}",
                    f"{info['non_embedding_params']:,.0f}",
                    f"{info['train_flops']:.3g}",
                    str(fit.get("epochs", "-")),
                    f"{fit['best_valid']:.4f}" if "best_valid" in fit else "-",
                    f"{a.at_k['ndcg@10']:.4f}",
                ]
            )
    axes[0].set(xscale="log", xlabel="parameters", ylabel="test NDCG@10", title="NDCG@10 vs parameters")
    axes[1].set(xscale="log", xlabel="training FLOPs", ylabel="test NDCG@10", title="NDCG@10 vs compute")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    header = ["run", "model", "data", "size", "params", "non-embedding", "train FLOPs", "epochs"]
    header += ["valid NDCG@10", "test NDCG@10"]
    note = (
        "Training FLOPs: the model's estimate per trained target (forward + backward: blocks, attention, "
        "softmax) times the targets of every epoch it trained. A curve that still rises at its largest "
        "size says a larger model would help; one that falls says the data is too small for it."
    )
    return _section("scaling", _svg(fig) + _table(header, rows), note)


def _size(e: Entry) -> str:
    return str(e.fit_info.get("config", {}).get("size") or e.config.get("model_config", {}).get("size", "?"))


def _at_k_section(names: list[str], analyses: list[Analysis]) -> str:
    fig, axes = _figure(10, 3.4, cols=2)
    for name, a in zip(names, analyses):
        for ax, m in zip(axes, ("ndcg", "hr")):
            ax.plot(KS, [a.at_k[f"{m}@{k}"] for k in KS], marker="o", ms=3, label=name)
    for ax, m in zip(axes, ("NDCG@K", "HR@K")):
        ax.set(xscale="log", xlabel="K", ylabel=m, title=m)
        ax.set_xticks(KS, [str(k) for k in KS])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _section("at-k", _svg(fig))


def _history_section(names: list[str], analyses: list[Analysis]) -> str:
    labels = [b[0] for b in analyses[0].buckets]
    fig, axes = _figure(7, 3.2)
    width = 0.8 / len(names)
    for i, (name, a) in enumerate(zip(names, analyses)):
        by = {b[0]: b[2] for b in a.buckets}
        axes[0].bar(np.arange(len(labels)) + i * width, [by.get(lab, 0) for lab in labels], width, label=name)
    axes[0].set_xticks(np.arange(len(labels)) + width * (len(names) - 1) / 2, labels)
    axes[0].set(xlabel="history length (items)", ylabel="NDCG@10")
    axes[0].legend(fontsize=7)
    rows = [
        [html.escape(n), lab, str(u), f"{nd:.4f}", f"{hr:.4f}"]
        for n, a in zip(names, analyses)
        for lab, u, nd, hr in a.buckets
    ]
    return _section(
        "history", _svg(fig) + _table(["run", "history length", "users", "NDCG@10", "HR@10"], rows)
    )


def _popularity_section(names: list[str], analyses: list[Analysis]) -> str:
    fig, axes = _figure(7, 3.2)
    x = np.arange(1, 11)
    axes[0].plot(x, analyses[0].data_share, "k--", marker="s", ms=3, label="training interactions")
    for name, a in zip(names, analyses):
        axes[0].plot(x, a.rec_share, marker="o", ms=3, label=f"{name} top-10 slots")
    axes[0].set(xlabel="item popularity decile (1 = most popular 10% of items)", ylabel="share", yscale="log")
    axes[0].set_xticks(x)
    axes[0].grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    note = (
        "A model above the dashed line in decile 1 recommends the most popular items more than users "
        "chose them."
    )
    return _section("popularity", _svg(fig), note)


def _exposure_section(names: list[str], analyses: list[Analysis]) -> str:
    rows = [
        [
            html.escape(n),
            *(
                f"{a.at_k.get(k, float('nan')):.4f}"
                for k in ("coverage@10", "gini@10", "head_hr@10", "tail_hr@10")
            ),
        ]
        for n, a in zip(names, analyses)
    ]
    note = (
        "coverage@10: share of the catalogue in at least one top-10 list; gini@10: how unequally the "
        "lists show the catalogue (0 = every item equally often); head/tail hit rate: HR@10 of test "
        "targets among the most popular items (20% of the interactions) and among the rest."
    )
    return _section(
        "exposure", _table(["run", "coverage@10", "gini@10", "head HR@10", "tail HR@10"], rows), note
    )


def _tradeoff_section(entries: list[Entry]) -> str:
    runs = [e for e in entries if e.tradeoff]
    if not runs:
        return _section("diversity", "<p>No trade-off was measured.</p>")
    fig, axes = _figure(10, 3.4, cols=2)
    for e in runs:
        ild = [r["ild@10"] for r in e.tradeoff]
        axes[0].plot(ild, [r["ndcg@10"] for r in e.tradeoff], marker="o", ms=3, label=e.name)
        axes[1].plot(ild, [r["coverage@10"] for r in e.tradeoff], marker="o", ms=3, label=e.name)
        for r in e.tradeoff:
            axes[0].annotate(f"{r['diversity']:g}", (r["ild@10"], r["ndcg@10"]), fontsize=6)
    axes[0].set(xlabel="intra-list diversity@10", ylabel="NDCG@10", title="accuracy vs diversity")
    axes[1].set(xlabel="intra-list diversity@10", ylabel="coverage@10", title="coverage vs diversity")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    rows = [
        [
            html.escape(e.name),
            f"{r['diversity']:g}",
            f"{r['ndcg@10']:.4f}",
            f"{r['hr@10']:.4f}",
            f"{r['coverage@10']:.4f}",
            f"{r['ild@10']:.4f}",
        ]
        for e in runs
        for r in e.tradeoff
    ]
    note = (
        "MMR re-ranking of each top-100 list (genrec recommend --diversity D); points are labelled with "
        "D. Intra-list diversity: 1 - the mean cosine of two items of a list (co-consumption vectors)."
    )
    table = _table(["run", "diversity", "NDCG@10", "HR@10", "coverage@10", "ILD@10"], rows)
    return _section("diversity", _svg(fig) + table, note)


def _groups_section(entries: list[Entry]) -> str:
    rows = []
    for e in entries:
        for attr, res in e.groups.items():
            for g, m in res["groups"].items():
                rows.append(
                    [
                        html.escape(e.name),
                        html.escape(attr),
                        html.escape(g),
                        str(m["n_users"]),
                        f"{m['ndcg@10']:.4f}",
                        f"{m['hr@10']:.4f}",
                    ]
                )
            gap = res["gaps"].get("ndcg@10")
            if gap:
                rows.append(
                    [
                        html.escape(e.name),
                        html.escape(attr),
                        "<i>largest gap</i>",
                        "",
                        f"{gap['difference']:.4f}",
                        f"ratio {gap['ratio']:.3f}",
                    ]
                )
    if not rows:
        return _section(
            "groups",
            "<p>The data has no user attributes (MovieLens-1M's users.dat, or --user-attributes).</p>",
        )
    return _section("groups", _table(["run", "attribute", "group", "users", "NDCG@10", "HR@10"], rows))


def _config_section(entries: list[Entry]) -> str:
    blocks = "".join(
        f"<details><summary>{html.escape(e.name)}</summary>"
        f"<pre>{html.escape(json.dumps(e.config, indent=2))}</pre></details>"
        for e in entries
    )
    return _section("config", blocks)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child, th:first-child {{ text-align: left; }}
.note {{ color: #555; font-size: 0.9em; }} svg {{ max-width: 100%; height: auto; }}
pre {{ background: #f7f7f7; padding: 0.5em; overflow-x: auto; }}
</style></head>
<body><h1>{title}</h1><p class="note">{subtitle}</p><ul>{toc}</ul>
{body}
</body></html>
"""
