"""Where a cluster's tasks run: one module per source, behind one description.

A source (the local machine, a cluster file, ``TF_CONFIG``, a Slurm allocation) turns what
it knows into a :class:`Layout`: for every task of the spec's jobs, its host and port and,
where the source knows them, its GPUs. The client connects to the layout's addresses;
``dfc serve`` finds its own task in it. A new resource manager is one new module here
that returns a Layout.

Sources: ``file.py`` (a cluster file), ``tfconfig.py`` (``TF_CONFIG``), ``slurm.py`` (an
allocation); the local cluster (``runtime/cluster.py``) makes its own addresses. The client
that runs on a Layout and ``dfc serve`` are in ``runtime/remote.py`` and ``runtime/serve.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class ClusterSourceError(Exception):
    """A cluster source is malformed or cannot hold the spec's tasks; the message says why."""


def split_address(text: str) -> tuple[str, int] | None:
    """``host:port`` (``[v6]:port``) -> (host, port), or None if it is not one."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    return host.strip("[]"), int(port)


def machine_of(host: str) -> str:
    """Which machine ``host`` names, as far as a name tells: every loopback address
    (``localhost``, 127.0.0.0/8, ``::1``, and their IPv4-mapped forms) is this one. A TensorFlow server listens on its
    port of every address of its machine, so two tasks of one machine need two ports."""
    import ipaddress

    name = host.strip("[]").lower()
    if name == "localhost":
        return "this machine"
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return name
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.2 (loopback only from Python 3.13)
    return "this machine" if ip.is_loopback or (mapped is not None and mapped.is_loopback) else str(mapped or ip)


def clash(host: str, label: str, other_host: str, other: str, port: int) -> str:
    """Why ``label`` at ``host:port`` cannot have its port: ``other`` at ``other_host`` has it
    on the same machine (see machine_of)."""
    if host.lower() == other_host.lower():
        return f"{host}:{port} is given to {label} and to {other}"
    return (
        f"{host}:{port} ({label}) and {other_host}:{port} ({other}) are one machine, where a TensorFlow "
        f"server listens on port {port} of every address"
    )


@dataclass(frozen=True)
class TaskSlot:
    """One task of a job, where it runs."""

    job: str
    index: int
    host: str
    port: int
    rank: int | None = None  # the resource manager's number for the process, if any

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal
        return f"{host}:{self.port}"

    @property
    def label(self) -> str:
        return f"{self.job}:{self.index}"


@dataclass(frozen=True)
class Layout:
    """Every task of a cluster, where it runs. ``idle``: processes the source started that
    no task needs (the allocation is larger than the spec's cluster). ``links``: what the
    source says of its links (``same_host``/``network`` -> {latency, bandwidth}), for the
    cost model."""

    source: str
    tasks: tuple[TaskSlot, ...]
    idle: tuple[str, ...] = field(default=())
    links: dict = field(default_factory=dict, hash=False, compare=False)

    def cluster_dict(self) -> dict[str, list[str]]:
        """job -> addresses in task order: TensorFlow's ``ClusterSpec``."""
        out: dict[str, list[str]] = {}
        for t in sorted(self.tasks, key=lambda t: t.index):
            out.setdefault(t.job, []).append(t.address)
        return {job: out[job] for job in dict.fromkeys(t.job for t in self.tasks)}

    def tasks_per_host(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tasks:
            out[t.host] = out.get(t.host, 0) + 1
        return out

    def task_of_rank(self, rank: int) -> TaskSlot | None:
        return next((t for t in self.tasks if t.rank == rank), None)


def cost_profile(profile, layout: Layout):
    """``profile`` (cost.profile.Profile) for the cluster of ``layout``: each task's machine
    (loopback "hosts" are this one), and the links the source gives (a cluster file's
    ``links:``)."""
    from dataclasses import replace

    links = {
        # the file's figures, not the profile's measured sizes of another link
        name: replace(getattr(profile, name), sizes=(), **{k: float(v[k]) for k in ("latency", "bandwidth") if k in v})
        for name, v in layout.links.items()
    }
    return replace(profile, hosts=tuple((t.label, machine_of(t.host)) for t in layout.tasks), **links)


#: the names --cluster takes besides a file
SOURCES = ("local", "tf_config", "slurm")


def resolve(source: str, jobs: dict[str, int], env=None) -> Layout:
    """The layout of ``source`` (a cluster file, ``tf_config`` or ``slurm``) for ``jobs``
    (name -> tasks). A file's mistakes raise SpecError (with positions), the others
    ClusterSourceError."""
    import os

    env = os.environ if env is None else env
    if source == "tf_config":
        from . import tfconfig

        return tfconfig.layout(env, jobs)
    if source == "slurm":
        from . import slurm

        return slurm.layout(env, jobs)
    from .file import load_cluster_file

    return load_cluster_file(source, jobs)
