"""Op and transfer costs for a cluster under a profile.

An op costs ``max(flops / rate, bytes / memory bandwidth) + overhead`` on a device; the
tasks of one host share its cores and memory bandwidth, so each gets ``1/k`` of them
(placed, :meth:`CostModel.sharing`: ``k`` counts each task by its share of the work). A
transfer occupies the link between the two devices ``gap + bytes / bandwidth`` and arrives
``latency`` later (LogGP: other messages use the link meanwhile), and costs ``bytes * cpu``
of the device's time at each end (gRPC copies and serialises on both sides: on a host with
as many tasks as cores, that time is taken from the computation).

Variables cost nothing in a schedule: the engines initialise every variable on its owner
in a phase of their own, before the first op runs (``init`` in ``dfc run``'s report), so
making a tile never delays the computation, and shipping it always does. That phase is
predicted apart (:meth:`CostModel.init`)."""

from __future__ import annotations

from ..ir.devices import task_of
from ..ir.node import Node
from .kernels import KernelTable
from .profile import Link, Profile

FREE_KINDS = frozenset({"const", "loop", "task", "variable"})


class CostModel:
    def __init__(self, profile: Profile, devices: tuple[str, ...]):
        self.profile, self.devices = profile, devices
        tasks = list(dict.fromkeys(task_of(d) for d in devices))
        named = dict(profile.hosts)  # the cluster's hosts; else tasks_per_host tasks to a host
        per_host = profile.tasks_per_host or max(len(tasks), 1)
        host_of = {t: named.get(f"{t[0]}:{t[1]}", f"host {i // per_host}") for i, t in enumerate(tasks)}
        self.host = {d: host_of[task_of(d)] for d in devices}
        cpu_tasks: dict[str, int] = {}  # a host's cores are shared by its CPU tasks
        for d in dict.fromkeys(d for d in devices if "GPU" not in d):
            cpu_tasks[self.host[d]] = cpu_tasks.get(self.host[d], 0) + 1
        self.share = {d: 1.0 / cpu_tasks[self.host[d]] if "GPU" not in d else 1.0 for d in devices}
        self.kernels = KernelTable(profile.kernels)
        self._mean_transfer: dict[int, float] = {}
        self._compute: dict[tuple, float] = {}  # (what a node's cost depends on, device or "mean"/"min")
        self._rows: dict[tuple, dict[str, float]] = {}  # the same, -> its cost on each device
        self._shared: dict[tuple, CostModel] = {}  # sharing()'s models, by each host's competing tasks

    def sharing(self, work: dict[str, float]) -> CostModel:
        """This model with each host shared among its CPU tasks by the ``work`` placed on
        them (seconds, under this model): a task competes for the host as fully as its work
        nears the busiest task's there, so a host's ``k`` tasks count as ``sum(w / w_max)``
        (processor sharing, averaged over the run): tasks that idle (a reducer waiting on
        its queue) leave the cores to those that compute."""
        competing: dict[str, float] = {}
        for host in dict.fromkeys(self.host.values()):
            ws = [work.get(d, 0.0) for d in self.devices if self.host[d] == host and "GPU" not in d]
            top = max(ws, default=0.0)
            competing[host] = round(sum(w / top for w in ws), 3) if top > 0 else float(len(ws) or 1)
        key = tuple(sorted(competing.items()))
        model = self._shared.get(key)
        if model is None:
            model = self._shared[key] = CostModel(self.profile, self.devices)
            model.share = {d: 1.0 / competing[self.host[d]] if "GPU" not in d else 1.0 for d in self.devices}
        return model

    def rate(self, device: str, dtype: str) -> float:
        table = self.profile.gpu_flops if "GPU" in device else self.profile.cpu_flops
        return table.get(dtype or "float64", table["float64"]) * self.share[device]

    def bandwidth(self, device: str) -> float:
        bw = self.profile.gpu_mem_bandwidth if "GPU" in device else self.profile.cpu_mem_bandwidth
        return bw * self.share[device]

    def compute(self, node: Node, device: str) -> float:
        if node.kind == "allreduce":
            return self.all_reduce(node.out_bytes, node.data.members)
        # keyed by what the cost depends on, not the node: the tile tasks of one class share
        # an entry, so a graph of a million nodes costs a few hundred entries
        key = (node.kind, node.op, node.flops, node.mem_bytes, node.out_bytes, node.dtype, device)
        cost = self._compute.get(key)
        if cost is None:
            cost = self._compute[key] = self._cost(node, device)
        return cost

    def costs(self, node: Node) -> dict[str, float]:
        """Its cost on each device (one lookup where a placement tries every device)."""
        key = (node.kind, node.op, node.flops, node.mem_bytes, node.out_bytes, node.dtype)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = {d: self.compute(node, d) for d in self.devices}
        return row

    def _cost(self, node: Node, device: str) -> float:
        if node.kind in FREE_KINDS:
            return 0.0
        return self._op(node, device)

    def init(self, node: Node, device: str) -> float:
        """Seconds to initialise a variable on ``device`` (the init phase)."""
        return self._op(node, device) if node.kind == "variable" else 0.0

    def _op(self, node: Node, device: str) -> float:
        moved = node.mem_bytes or node.out_bytes * (2 if node.kind in ("assign", "variable") else 1)
        roof = self.roofline(node.flops, moved, node.dtype, device)
        overhead = self.profile.op_overhead
        measured = self.kernels.nearest(node) if node.kind in ("compute", "reduce") and "GPU" not in device else None
        if measured is None:
            return roof + overhead
        # the measured time at this device's share of its host: between the measurement
        # alone (the whole host) and with kernel_tasks tasks, interpolated in the number
        # of tasks competing; below, scaled by the share (all above the per-op overhead,
        # which neither changes); then to this node's size by the roofline
        k, tasks = 1.0 / self.share[device], self.profile.kernel_tasks
        above = max(measured.seconds - overhead, 0.0)
        if measured.alone and k < tasks:
            alone = max(measured.alone - overhead, 0.0)
            above = alone + (above - alone) * (k - 1) / (tasks - 1)
        else:
            above *= k / tasks
        if (measured.bytes, measured.flops) != (node.mem_bytes, node.flops):
            above *= roof / max(self.roofline(measured.flops, measured.bytes, node.dtype, device), 1e-12)
        return overhead + above

    def roofline(self, flops: int, nbytes: int, dtype: str, device: str) -> float:
        """Seconds of ``flops`` and ``nbytes`` of memory traffic at the device's peak rates."""
        return max(flops / self.rate(device, dtype), nbytes / self.bandwidth(device))

    def loop_overhead(self, tasks: int) -> float:
        """Seconds each iteration of a loop whose body spans ``tasks`` tasks costs besides its
        ops: TensorFlow's partitioned while loop passes control between them."""
        if tasks < 2:
            return 0.0
        return self.profile.loop_overhead + (tasks - 2) * self.profile.loop_overhead_task

    def calls(self, prologue: bool, iterations: int, per_iteration: float) -> int:
        """The ``session.run`` calls of a run: the first pass, and the loop in chunks as the
        TF engine runs it (dfc/runtime/tf_engine.Chunks: one iteration, then as many as
        take about half a second)."""
        from ..runtime.tf_engine import Chunks

        chunks, done, runs = Chunks(0), 0, 0
        while done < iterations:
            k = chunks.next(done, iterations)
            chunks.took(k, k * per_iteration)
            done, runs = done + k, runs + 1
        return int(prologue) + runs

    def all_reduce(self, nbytes: int, members: tuple[str, ...]) -> float:
        """A ring all-reduce among ``members`` (TensorFlow's CPU collective): 2(k-1) steps,
        each one message of a k-th of the data over the ring's slowest link."""
        k = len(members)
        if k < 2:
            return self.profile.op_overhead
        ring = [self.link(a, b) for a, b in zip(members, members[1:] + members[:1])]
        slowest = max(ring, key=lambda link: link.latency + nbytes / k / link.bandwidth)
        return 2 * (k - 1) * (slowest.latency + nbytes / k / slowest.bandwidth) + self.profile.op_overhead

    def link(self, src: str, dst: str) -> Link:
        if src == dst or task_of(src) == task_of(dst):  # one process (its CPU and its GPUs)
            return self.profile.same_task
        if self.host[src] == self.host[dst]:
            return self.profile.same_host
        return self.profile.network

    def transfer(self, nbytes: int, src: str, dst: str) -> float:
        """Seconds from a tensor's leaving ``src`` to its arrival at ``dst`` on a free link."""
        if src == dst or nbytes == 0:
            return 0.0
        link = self.link(src, dst)
        return link.latency + link.wire(nbytes)

    def wire(self, nbytes: int, src: str, dst: str) -> tuple[float, float]:
        """(seconds the transfer occupies its link, seconds it then takes to arrive)."""
        if src == dst or nbytes == 0:
            return 0.0, 0.0
        link = self.link(src, dst)
        return link.wire(nbytes), link.latency

    def transfer_cpu(self, nbytes: int, src: str, dst: str) -> float:
        """Seconds of CPU a transfer takes at each of its two ends."""
        if src == dst or nbytes == 0:
            return 0.0
        return self.link(src, dst).ends(nbytes)

    def mean_transfer(self, nbytes: int) -> float:
        """The expected transfer cost, its CPU at both ends included, when the two ends are
        placed independently."""
        n = len(self.devices)
        if n < 2 or nbytes == 0:
            return 0.0
        cached = self._mean_transfer.get(nbytes)
        if cached is None:
            pairs = [(a, b) for a in self.devices for b in self.devices if a != b][:64]
            mean = sum(self.transfer(nbytes, a, b) + 2 * self.transfer_cpu(nbytes, a, b) for a, b in pairs) / len(pairs)
            cached = self._mean_transfer[nbytes] = (1 - 1 / n) * mean
        return cached

    def mean_compute(self, node: Node, allowed: tuple[str, ...]) -> float:
        key = (node.kind, node.op, node.flops, node.mem_bytes, node.out_bytes, node.dtype, "mean", allowed)
        mean = self._compute.get(key)
        if mean is None:
            devs = allowed or self.devices
            mean = self._compute[key] = sum(self.compute(node, d) for d in devs) / len(devs)
        return mean

    def cheapest(self, node: Node, allowed: tuple[str, ...]) -> float:
        """The cost on the cheapest device it may run on (for lower bounds)."""
        key = (node.kind, node.op, node.flops, node.mem_bytes, node.out_bytes, node.dtype, "min", allowed)
        best = self._compute.get(key)
        if best is None:
            best = self._compute[key] = min(self.compute(node, d) for d in allowed or self.devices)
        return best


def device_label(device: str) -> str:
    job, task = task_of(device)
    return f"{job}:{task}"
