"""Prometheus metrics of the server: requests by route and status, latencies, batching, the served
model, the user-state cache and feedback (text exposition format at GET /metrics)."""

from __future__ import annotations

import time
from collections import defaultdict

from genrec.serving.engine import Engine

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """Counters and latency histograms, written by the middleware and the routes, read by /metrics."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = defaultdict(int)
        self.hist: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.sums: dict[str, float] = defaultdict(float)
        self.events = 0
        self.started = time.time()

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        self.counts[(method, path, status)] += 1
        h = self.hist[path]
        for i, b in enumerate(BUCKETS):
            if seconds <= b:
                h[i] += 1
                break
        else:
            h[-1] += 1
        self.sums[path] += seconds

    def render(self, engine: Engine) -> str:
        v = engine.state.version
        lines = [
            "# HELP genrec_requests_total HTTP requests by method, route and status.",
            "# TYPE genrec_requests_total counter",
        ]
        for (m, p, s), n in sorted(self.counts.items()):
            lines.append(f'genrec_requests_total{{method="{m}",route="{p}",status="{s}"}} {n}')
        lines += [
            "# HELP genrec_request_duration_seconds Request latency by route.",
            "# TYPE genrec_request_duration_seconds histogram",
        ]
        for p, h in sorted(self.hist.items()):
            cum = 0
            for b, c in zip(BUCKETS, h):
                cum += c
                lines.append(f'genrec_request_duration_seconds_bucket{{route="{p}",le="{b}"}} {cum}')
            cum += h[-1]
            lines.append(f'genrec_request_duration_seconds_bucket{{route="{p}",le="+Inf"}} {cum}')
            lines.append(f'genrec_request_duration_seconds_sum{{route="{p}"}} {self.sums[p]:.6f}')
            lines.append(f'genrec_request_duration_seconds_count{{route="{p}"}} {cum}')
        st = engine.stats
        lines += [
            "# HELP genrec_model_info The model version being served.",
            "# TYPE genrec_model_info gauge",
            f'genrec_model_info{{version="{v.name}",model="{v.model.name}"}} 1',
            "# HELP genrec_model_swaps_total Hot swaps to a newly published version.",
            "# TYPE genrec_model_swaps_total counter",
            f"genrec_model_swaps_total {st.swaps}",
            "# HELP genrec_score_batches_total Batched model.score calls.",
            "# TYPE genrec_score_batches_total counter",
            f"genrec_score_batches_total {st.batches}",
            "# HELP genrec_batched_requests_total Recommendation requests scored in batches.",
            "# TYPE genrec_batched_requests_total counter",
            f"genrec_batched_requests_total {st.batched_requests}",
            "# HELP genrec_user_state_cache_total Sequence-model user-state lookups by outcome.",
            "# TYPE genrec_user_state_cache_total counter",
            f'genrec_user_state_cache_total{{outcome="hit"}} {engine.state.user_states.hits}',
            f'genrec_user_state_cache_total{{outcome="miss"}} {engine.state.user_states.misses}',
            "# HELP genrec_user_state_cache_users Users whose state is cached for the served version.",
            "# TYPE genrec_user_state_cache_users gauge",
            f"genrec_user_state_cache_users {len(engine.state.user_states)}",
            "# HELP genrec_feedback_events_total Feedback events committed by this process.",
            "# TYPE genrec_feedback_events_total counter",
            f"genrec_feedback_events_total {self.events}",
            "# HELP genrec_uptime_seconds Seconds since start.",
            "# TYPE genrec_uptime_seconds gauge",
            f"genrec_uptime_seconds {time.time() - self.started:.1f}",
        ]
        return "\n".join(lines) + "\n"
