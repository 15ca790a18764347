"""``dfc run --trace FILE``: where the compute phase's time goes.

Every ``session.run`` of the compute phase runs with TensorFlow's full tracing; the step
statistics every task sends back are merged into one Chrome trace (open it at
``chrome://tracing`` or https://ui.perfetto.dev) and summarised per device: the span
it was active, the time its ops ran (ops overlap on a task's threads, so this can exceed
the span) and its costliest op types. Tracing itself slows the run a little; take
figures from untraced runs."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class Trace:
    """Step statistics of several ``session.run`` calls."""

    steps: list = field(default_factory=list)  # RunMetadata.step_stats, one per call

    def add(self, run_metadata) -> None:
        self.steps.append(run_metadata.step_stats)

    def chrome(self, predicted: list | None = None) -> str:
        """One Chrome trace of all calls: one process per device, threads as TF labels them;
        with ``predicted`` (the simulator's slots), the predicted schedule too, one process
        per device and link named ``predicted: ...``, from the first measured op on."""
        events: list[dict] = []
        pids: dict[str, int] = {}
        for stats in self.steps:
            for dev in stats.dev_stats:
                pid = pids.setdefault(dev.device, len(pids))
                for ns in dev.node_stats:
                    events.append(
                        {
                            "name": ns.node_name,
                            "cat": _op_type(ns),
                            "ph": "X",
                            "pid": pid,
                            "tid": ns.thread_id,
                            "ts": ns.all_start_micros,
                            "dur": max(ns.all_end_rel_micros, 1),
                            "args": {"label": ns.timeline_label},
                        }
                    )
        origin = min((e["ts"] for e in events), default=0)
        for slot in predicted or ():
            pid = pids.setdefault(f"predicted: {slot.resource}", len(pids))
            events.append(
                {
                    "name": str(slot.node),
                    "cat": slot.kind,
                    "ph": "X",
                    "pid": pid,
                    "tid": 0,
                    "ts": origin + slot.start * 1e6,
                    "dur": max((slot.end - slot.start) * 1e6, 1),
                    "args": {"scope": slot.scope or "prologue", "group": slot.group},
                }
            )
        names = [{"name": "process_name", "ph": "M", "pid": pid, "args": {"name": dev}} for dev, pid in pids.items()]
        return json.dumps({"traceEvents": names + events, "displayTimeUnit": "ms"})

    def summary(self, predicted: dict[str, float] | None = None, top: int = 4) -> list[dict]:
        """Per device (TF's device names, including its transfer streams): active span, op
        time, the op types that took most of it, and (``predicted``: dfc's device -> busy
        seconds) the busy time the cost model predicted for it."""
        wanted = {_tf_name(d): s for d, s in (predicted or {}).items()}
        span: dict[str, list[float]] = {}
        busy: dict[str, float] = defaultdict(float)
        by_type: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for stats in self.steps:
            for dev in stats.dev_stats:
                for ns in dev.node_stats:
                    start, dur = ns.all_start_micros / 1e6, ns.all_end_rel_micros / 1e6
                    s = span.setdefault(dev.device, [start, start + dur])
                    s[0], s[1] = min(s[0], start), max(s[1], start + dur)
                    busy[dev.device] += dur
                    by_type[dev.device][_op_type(ns)] += dur
        rows = []
        for dev, (a, b) in sorted(span.items()):
            ops = sorted(by_type[dev].items(), key=lambda kv: -kv[1])[:top]
            row = {"device": dev, "span_s": b - a, "op_s": busy[dev], "top": [{"op": k, "s": v} for k, v in ops]}
            if dev in wanted:
                row["predicted_busy_s"] = wanted[dev]
            rows.append(row)
        return rows


def _op_type(ns) -> str:
    """The op type from TF's label ``name = Type(inputs)``; the node name otherwise."""
    m = re.match(r"[^=]*=\s*([\w:]+)\(", ns.timeline_label or "")
    return m.group(1) if m else ns.node_name.split("/")[-1].split(":")[0]


def _tf_name(device: str) -> str:
    """dfc's device name as TensorFlow's step statistics spell it (with the replica)."""
    return device.replace("/task:", "/replica:0/task:", 1) if "/replica:" not in device else device


def summary_lines(rows: list[dict]) -> list[str]:
    out = ["  trace (compute phase, per device: active span, op time and the predicted busy time, top ops):"]
    for r in rows:
        top = ", ".join(f"{t['op']} {t['s']:.3f} s" for t in r["top"])
        pred = f" (predicted busy {r['predicted_busy_s']:.3f} s)" if "predicted_busy_s" in r else ""
        out.append(f"    {r['device']}: span {r['span_s']:.3f} s, ops {r['op_s']:.3f} s{pred} — {top}")
    return out
