"""A plan: the placed graph with its predicted schedule, as one plain value that every
renderer (text, JSON, DOT, pictures) reads."""

from __future__ import annotations

import json
from dataclasses import dataclass

import networkx as nx

from ..ir.devices import short
from ..ir.node import each_node, to_json
from .model import CostModel
from .simulate import Schedule, simulate


@dataclass
class Plan:
    name: str
    strategy: str
    graph: nx.DiGraph
    schedule: Schedule
    devices: tuple[str, ...]
    hosts: dict  # device -> its host
    profile: str = ""  # which cost profile predicted it

    @property
    def many_hosts(self) -> bool:
        return len(set(self.hosts.values())) > 1

    @property
    def ratio(self) -> float:
        return self.schedule.makespan / self.schedule.lower_bound if self.schedule.lower_bound else 1.0

    def task_classes(self) -> list[dict]:
        classes: dict[tuple[str, str], dict] = {}
        for n in each_node(self.graph):  # summed: no order needed
            if n.kind in ("const", "send", "recv"):  # transfers: see the links
                continue
            c = classes.setdefault(
                (n.group, n.kind),
                {"class": n.group, "kind": n.kind, "count": 0, "flops": 0, "scope": n.scope or "once"},
            )
            c["count"] += 1
            c["flops"] += n.flops
        return sorted(classes.values(), key=lambda c: (c["scope"] != "once", c["class"], c["kind"]))

    def device_rows(self) -> list[dict]:
        s = self.schedule
        top = s.makespan or 1.0
        return [
            {
                "device": d,
                "short": short(d),
                "host": self.hosts[d],
                "busy_s": s.busy[d],
                "load": s.busy[d] / top,
                "flops": s.flops[d],
                "memory_bytes": s.memory[d],
            }
            for d in self.devices
        ]

    def link_rows(self) -> list[dict]:
        return [{"from": a, "to": b, "bytes": n} for (a, b), n in sorted(self.schedule.links.items())]

    def reductions(self) -> list[dict]:
        """How each queue's ``via:`` reductions run (the ``collective`` pass's choice): the
        form, what the spec asked, and under ``auto`` the makespans predicted for both."""
        return [{"queue": q, **r} for q, r in sorted(self.graph.graph.get("reductions", {}).items())]

    def to_json(self, with_graph: bool = True) -> dict:
        s = self.schedule
        out = {
            "name": self.name,
            "strategy": self.strategy,
            "predicted_makespan_s": s.makespan,
            "lower_bound_s": s.lower_bound,
            "ratio": self.ratio,
            "predicted_init_s": s.init,
            "prologue_s": s.prologue,
            "iteration_s": s.iteration,
            "iterations": s.iterations,
            "overhead_s": s.overhead,
            "bytes_moved": s.bytes_moved,
            "devices": self.device_rows(),
            "links": self.link_rows(),
            "task_classes": self.task_classes(),
            "reductions": self.reductions(),
            "profile": self.profile,
        }
        if with_graph:
            out.update(to_json(self.graph))
        return out

    def dumps(self) -> str:
        """:meth:`to_json` as text: the summary indented, the graph one node or edge per
        line (json's indenting encoder is pure Python: 4 s for a graph of 150k nodes)."""
        out = self.to_json()
        graph = {key: out.pop(key) for key in ("nodes", "edges")}
        parts = [json.dumps(out, indent=1)[:-2]]  # the summary, open: without "\n}"
        for key, items in graph.items():
            lines = ",\n".join("  " + json.dumps(x) for x in items)
            parts.append(f',\n "{key}": [\n{lines}\n ]' if items else f',\n "{key}": []')
        return "".join(parts) + "\n}\n"


def make_plan(g: nx.DiGraph, cm: CostModel, iterations: int | None = None, timeline: bool | None = None) -> Plan:
    return Plan(
        g.graph["facts"].name,
        g.graph.get("strategy", ""),
        g,
        simulate(g, cm, iterations, timeline),
        cm.devices,
        dict(cm.host),
        cm.profile.describe(),
    )
