"""`genrec update`: learn from the feedback stored since the served version's training watermark.

1. Read events with seq > watermark (erased users excluded); positive ones (view, click, purchase,
   ratings at or above the run's threshold) extend the users' histories; new users and new items
   join the catalogue with new internal ids appended after the old ones (old ids never move).
2. Held-back slice (leave-one-out on the new behaviour): for every user with >= 3 new events, the
   last new event is the gate target and the second last the model's own validation target; the
   model is fit (`Recommender.fit`) on everything else. Models that can (SASRec, HSTU, Mult-VAE,
   Mult-DAE) fine-tune from the served weights for `--warm-epochs` epochs: new items get new embedding
   rows, the old rows start where they were. Others (and --from-scratch) are refit from scratch, and
   so is every model after an erasure the served version was not built with (its weights learnt from
   the erased data). A version's `erased_through` is the last erasure seq it was built with. With
   erasures and no new feedback, the slice is every user's last two items instead, and the served
   model is refit without the erased users.
3. Gate: NDCG@10 of the candidate and of the served model on the held-back slice (same histories,
   full ranking over the new catalogue; the served model cannot rank items it never saw). The
   candidate is published only if candidate >= served - tolerance; otherwise the served version stays.

The published version serves from the complete histories, held-back events included, and its
watermark is the highest seq read, so those events become training data at the next update.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genrec.data.dataset import Dataset, EvalSet, Histories, erased_placeholder
from genrec.evaluation import evaluate
from genrec.models import Recommender, get_model_class
from genrec.models.base import WarmStartable
from genrec.serving.engine import is_positive
from genrec.serving.events import Erasures, StoredEvent, open_store
from genrec.serving.registry import Catalog, Registry, Version
from genrec.training import fit
from genrec.training.runs import RunConfig, read_run_config
from genrec.training.settings import resolve


@dataclass
class UpdateResult:
    status: str  # published | rejected | nothing-new
    message: str
    version: str  # the version served after the update
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 3 if self.status == "rejected" else 0


def run_settings(run_dir: str | Path) -> RunConfig:
    """The run's resolved configuration (config.json); `serve` and `update` read it here only."""
    return read_run_config(run_dir)[0]


def extend(
    version: Version,
    events: list[StoredEvent],
    erased: Erasures,
    rating_threshold: float | None,
    dedup: str,
) -> tuple[Catalog, list[np.ndarray], np.ndarray, dict[str, int]]:
    """The new catalogue, each user's new (positive, de-duplicated) items, and which users are new."""
    old = version.catalog
    users = old.user_raw.tolist()
    items = old.item_raw.tolist()
    # privacy: a user erased since `version` was built leaves the catalogue, id and history; the slot
    # stays (internal ids never move) under a placeholder with an empty history, and if they come back
    # they join as a new user (new consent)
    gone = set()
    if len(erased):  # tombstones hold tags, not ids: every old user is checked
        for i in range(1, old.n_users + 1):
            if erased.get(users[i]) > version.erased_through:
                users[i] = erased_placeholder(i)
                gone.add(i)
    user_index = {u: i for i, u in enumerate(users) if i > 0}
    item_index = {v: i for i, v in enumerate(items) if i > 0}
    pos = [e for e in events if is_positive(e, rating_threshold)]
    for e in pos:  # first appearance order: deterministic ids for new users and items
        if e.user_id not in user_index:
            user_index[e.user_id] = len(users)
            users.append(e.user_id)
        if e.item_id not in item_index:
            item_index[e.item_id] = len(items)
            items.append(e.item_id)
    n_users = len(users) - 1
    none = np.zeros(0, np.int64)
    base = [old.histories.row(u) if u <= old.n_users and u not in gone else none for u in range(n_users + 1)]
    new: list[list[int]] = [[] for _ in range(n_users + 1)]
    for e in sorted(pos, key=lambda e: ((e.timestamp or 0.0), e.seq)):
        new[user_index[e.user_id]].append(item_index[e.item_id])
    new_arr = []
    for u in range(n_users + 1):
        seq = np.asarray(new[u], dtype=np.int64)
        if dedup != "none" and len(seq):
            seen = set(base[u].tolist())
            keep, out = set(), []
            order = seq if dedup == "first" else seq[::-1]
            for i in order.tolist():
                if i not in seen and i not in keep:
                    keep.add(i)
                    out.append(i)
            seq = np.asarray(out if dedup == "first" else out[::-1], dtype=np.int64)
        new_arr.append(seq)
    full = Histories.from_lists([np.concatenate([b, n]) for b, n in zip(base, new_arr)])
    titles = None
    if old.item_title is not None:
        titles = np.concatenate([old.item_title, np.array([""] * (len(items) - len(old.item_raw)))]).astype(
            str
        )
    catalog = Catalog(np.array(items, dtype=str), np.array(users, dtype=str), full, titles)
    counts = {
        "events": len(events),
        "positive_events": len(pos),
        "new_users": len(users) - len(old.user_raw),
        "new_items": len(items) - len(old.item_raw),
    }
    return catalog, new_arr, np.array([len(b) for b in base]), counts


def split_new(
    catalog: Catalog, base: list[np.ndarray], new: list[np.ndarray]
) -> tuple[Histories, EvalSet, EvalSet]:
    """Training histories, the model's validation slice and the gate slice (leave-one-out on new events)."""
    users = np.array([u for u in range(1, len(new)) if len(new[u]) >= 3], dtype=np.int64)
    is_eval = np.zeros(len(new), dtype=bool)
    is_eval[users] = True
    train_rows = [np.concatenate([base[u], new[u][:-2] if is_eval[u] else new[u]]) for u in range(len(new))]
    train = Histories.from_lists(train_rows, users=np.arange(len(new)))
    valid = EvalSet(
        Histories.from_lists([np.concatenate([base[u], new[u][:-2]]) for u in users], users=users),
        Histories.from_lists([new[u][-2:-1] for u in users], users=users),
    )
    gate = EvalSet(
        Histories.from_lists([np.concatenate([base[u], new[u][:-1]]) for u in users], users=users),
        Histories.from_lists([new[u][-1:] for u in users], users=users),
    )
    return train, valid, gate


def restricted_score(model: Recommender, n_known: int, n_total: int):
    """Score over a grown catalogue with a model that knows ids 1..n_known only (others: -inf)."""

    def score(h: Histories) -> torch.Tensor:
        keep = h.items <= n_known
        lens = np.bincount(h.row_ids()[keep], minlength=len(h))
        indptr = np.concatenate([[0], np.cumsum(lens)])
        s = model.score(
            Histories(indptr, h.items[keep], None, np.where(h.users <= n_known, h.users, 0))
        ).float()
        out = torch.full((len(h), n_total + 1), -torch.inf)
        out[:, : s.shape[1]] = s[:, : n_total + 1]
        return out

    return score


def update_run(
    run_dir: str | Path,
    events_url: str,
    tolerance: float = 0.01,
    model_name: str | None = None,
    overrides: dict[str, Any] | None = None,
    min_eval_users: int = 20,
    dry_run: bool = False,
    log: Any = print,
    warm_epochs: int = 5,
    from_scratch: bool = False,
) -> UpdateResult:
    if warm_epochs < 1:
        raise ValueError(f"--warm-epochs must be >= 1, got {warm_epochs}")
    if not 0 <= tolerance <= 1:  # NDCG lies in [0, 1]: more (or inf, or nan) would publish anything
        raise ValueError(f"--tolerance must be between 0 and 1 (an NDCG@10 drop), got {tolerance}")
    run_dir = Path(run_dir)
    reg = Registry(run_dir)
    reg.ensure()
    cur = reg.load()
    settings = run_settings(run_dir)
    with open_store(events_url) as store:
        events = store.events_after(cur.watermark)
        erased = store.erased_users()
    events = [e for e in events if e.seq > erased.get(e.user_id, -1)]
    erased_since = erased.last_seq > cur.erased_through  # the served weights learnt from erased users
    if not events and not erased_since:
        return UpdateResult(
            "nothing-new",
            f"no feedback since {cur.name}'s watermark (seq {cur.watermark}); still serving {cur.name}",
            cur.name,
        )
    t0 = time.time()
    catalog, new, base_lens, counts = extend(
        cur, events, erased, settings.data.rating_threshold, settings.data.dedup
    )
    if events:
        base = [catalog.histories.row(u)[: base_lens[u]] for u in range(catalog.n_users + 1)]
    else:  # only erasures: refit without them, validated on every user's last two items (leave-one-out)
        base = [np.zeros(0, np.int64)] * (catalog.n_users + 1)
        new = [catalog.histories.row(u) for u in range(catalog.n_users + 1)]
    train, valid, gate = split_new(catalog, base, new)
    watermark = max([cur.watermark] + [e.seq for e in events])
    report: dict[str, Any] = {
        "from_version": cur.name,
        "watermark": watermark,
        **counts,
        "gate_users": len(gate),
        "tolerance": tolerance,
        "erased_since": erased_since,
    }
    if len(gate) < min_eval_users:
        msg = (
            f"rejected: only {len(gate)} users have >= 3 {'new ' if events else ''}events, fewer than "
            "--min-eval-users "
            f"{min_eval_users}, so the update cannot be validated; still serving {cur.name}"
        )
        return UpdateResult("rejected", msg, cur.name, report)
    name = model_name or cur.model.name
    same = name == cur.model.name
    base = dataclasses.asdict(cur.model.config) if same else {}
    # fine-tuning: a few epochs from the served weights (`--set epochs=N` still wins), unless a user was
    # erased since they were trained: weights that learnt from erased data are never a starting point
    warm = not from_scratch and not erased_since and same and isinstance(cur.model, WarmStartable)
    if warm and "epochs" in base:
        base["epochs"] = warm_epochs
    config, train_config = resolve(
        name, {k: str(v) for k, v in (overrides or {}).items()}, base, settings.train
    )
    candidate = get_model_class(name)(config)
    if warm:
        candidate.start_from(cur.model)
    report["warm_start"] = warm
    ds = Dataset(
        name=f"{run_dir.name}-update",
        user_raw=catalog.user_raw,
        item_raw=catalog.item_raw,
        train=train,
        valid=valid,
        test=gate,
        protocol="update-loo",
        item_title=catalog.item_title,
        manifest={"n_interactions": int(len(train.items))},
    )
    log(
        f"{'fine-tuning' if warm else 'fitting'} {name} on {len(train.items):,} interactions "
        f"({counts['positive_events']:,} new positive events, "
        f"{counts['new_items']} new items, {counts['new_users']} new users)"
    )
    t1 = time.time()
    fit(candidate, ds, train_config, progress=False, exclude_seen=settings.exclude_seen)
    report["fit_seconds"] = time.time() - t1
    excl = settings.exclude_seen
    new_m = evaluate(candidate.score, gate, ks=(10,), exclude_seen=excl)
    old_m = evaluate(
        restricted_score(cur.model, cur.catalog.n_items, catalog.n_items), gate, ks=(10,), exclude_seen=excl
    )
    report["gate"] = {
        "served": {k: old_m[k] for k in ("ndcg@10", "hr@10")},
        "candidate": {k: new_m[k] for k in ("ndcg@10", "hr@10")},
    }
    old_n, new_n = old_m["ndcg@10"], new_m["ndcg@10"]
    verdict = (
        f"held-back NDCG@10 on {len(gate)} users: served {cur.name} {old_n:.4f}, candidate {new_n:.4f} "
        f"(tolerance {tolerance})"
    )
    if not new_n >= old_n - tolerance:
        return UpdateResult(
            "rejected",
            f"rejected: {verdict}; the candidate is worse by {old_n - new_n:.4f}, so {cur.name} stays"
            + (
                f". {cur.name} was built before a user's erasure and still holds their data (its "
                "server hides it); publish a version without it, e.g. with a larger --tolerance"
                if erased_since
                else ""
            ),
            cur.name,
            report,
        )
    if dry_run:
        return UpdateResult("nothing-new", f"dry run: would publish; {verdict}", cur.name, report)
    report["seconds"] = time.time() - t0
    meta = {
        "source": "update",
        "parent": cur.name,
        "watermark": watermark,
        "erased_through": max(cur.erased_through, erased.last_seq),
        "update": report,
        "metrics": {"update_gate": report["gate"]},
    }
    published = reg.publish(candidate, catalog, meta)
    msg = f"published {published}: {verdict}"
    if erased_since:  # older versions hold what the erased users did: they go once this one is served
        dropped = reg.drop_unerased(meta["erased_through"], keep=published)
        report["dropped_versions"] = dropped
        msg += f"; deleted {', '.join(dropped)} (built before an erasure)" if dropped else ""
    return UpdateResult("published", msg, published, report)
