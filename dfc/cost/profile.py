"""Device profiles: flop rates per device kind and dtype, memory bandwidth, per-op
overhead, and the latency and bandwidth of a transfer within a task, between tasks of one
host, and across hosts. Defaults describe a small CPU host (2 cores, AVX-512) and an H100;
a YAML file (``placement.profile`` or ``dfc plan --profile``) overrides any of them.
``dfc calibrate`` measures this machine's (dfc/cost/calibrate.py), and ``dfc plan``/``run``
use it when no other is given."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

import yaml

from ..inputs import InputError, read_bounded

#: a profile is a few dozen numbers; anything much larger is not one
MAX_PROFILE_BYTES = 2**20


@dataclass(frozen=True)
class Link:
    """A kind of link, in LogGP's terms (Alexandrov et al., 1995): a message waits for the
    link, occupies it ``gap + bytes / bandwidth`` (g and G), then arrives ``latency`` (L)
    later, while other messages may already use the link; each end spends ``bytes * cpu``
    of its device's time (o, per byte: gRPC's copies and (de)serialisation)."""

    latency: float  # seconds from leaving the link to arriving (not the link's time)
    bandwidth: float  # bytes per second of the wire itself (the ends' CPU apart)
    cpu: float = 0.0  # seconds of CPU per byte at each end: the sending and receiving device are busy that long
    gap: float = 0.0  # seconds a message occupies the link whatever its size
    # measured messages, ((bytes, seconds end to end), ...) by size: where given, a
    # message's whole time is read off them (linearly between two sizes, past the last
    # along its last segment), and its parts fitted into it
    sizes: tuple = ()

    @functools.lru_cache(maxsize=4096)  # (a few links, each immutable: the cost model asks per message)
    def whole(self, nbytes: int) -> float:
        """Seconds from the sender's first CPU to the receiver's last, the link free."""
        if not self.sizes:
            return self.latency + self.gap + nbytes / self.bandwidth + 2 * nbytes * self.cpu
        points = ((0, self.latency + self.gap), *self.sizes)
        for (b0, t0), (b1, t1) in zip(points, points[1:]):
            if nbytes <= b1:
                break
        return t0 + (t1 - t0) * (nbytes - b0) / (b1 - b0)

    @functools.lru_cache(maxsize=4096)  # (a few links, each immutable: the cost model asks per message)
    def ends(self, nbytes: int) -> float:
        """Seconds of CPU the message costs at each end."""
        cpu = nbytes * self.cpu
        if self.sizes:  # the ends overlap the message's flight: neither takes half of it
            cpu = min(cpu, 0.45 * max(self.whole(nbytes) - self.latency, 0.0))
        return cpu

    @functools.lru_cache(maxsize=4096)  # (a few links, each immutable: the cost model asks per message)
    def wire(self, nbytes: int) -> float:
        """Seconds a message of ``nbytes`` occupies the link."""
        if not self.sizes:
            return self.gap + nbytes / self.bandwidth
        return max(self.whole(nbytes) - self.latency - 2 * self.ends(nbytes), self.gap)


@dataclass(frozen=True)
class Profile:
    # a whole host's floating-point rate (flop/s) per dtype; tasks on one host share it
    cpu_flops: dict = field(
        default_factory=lambda: {
            "float32": 2.0e11,
            "float64": 1.0e11,
            "complex64": 2.0e11,
            "complex128": 1.0e11,
            "int32": 5.0e10,
            "int64": 5.0e10,
            "bool": 5.0e10,
        }
    )
    cpu_mem_bandwidth: float = 3.5e10  # bytes/s per host
    gpu_flops: dict = field(
        default_factory=lambda: {
            "float32": 5.0e13,
            "float64": 2.5e13,
            "complex64": 5.0e13,
            "complex128": 2.5e13,
            "int32": 1.0e13,
            "int64": 5.0e12,
            "bool": 1.0e13,
        }
    )
    gpu_mem_bandwidth: float = 2.0e12  # bytes/s per GPU
    op_overhead: float = 2.0e-5  # seconds per op dispatch
    run_overhead: float = 5.0e-4  # seconds per session.run (the client's round trip)
    # seconds per iteration of a loop whose body spans two tasks (TF's partitioned while
    # loop passes control between them every iteration), and for each task more
    loop_overhead: float = 4.0e-4
    loop_overhead_task: float = 2.5e-4
    # seconds a graph's first session.run takes more than its later ones (TF partitions and
    # registers it), fixed and per IR node of it, in the first pass and in the loop (whose
    # control flow every partition builds)
    first_run: float = 4.0e-3
    first_run_node: float = 2.5e-4
    first_run_loop: float = 1.8e-2
    first_run_loop_node: float = 2.7e-4
    same_task: Link = Link(0.0, 1.0e12)
    same_host: Link = Link(1.0e-4, 1.8e9, 2.5e-10, 2.5e-5)  # gRPC between processes on one host
    network: Link = Link(5.0e-5, 1.0e10, 2.5e-10, 2.5e-5)
    # measured kernels (dfc/cost/kernels.py): op -> its measured sizes, timed with
    # ``kernel_tasks`` tasks sharing the host
    kernels: dict = field(default_factory=dict)
    kernel_tasks: int = 2
    tasks_per_host: int = 0  # 0: every task on one host (the local cluster)
    # each task's host, (("worker:0", "node1"), ...): from the cluster (--cluster), not a file
    hosts: tuple = ()
    # where the figures were taken (`dfc calibrate`: host, cpu, cores, date, versions) and
    # how each was measured: shown by `dfc plan`, read by people
    taken: dict = field(default_factory=dict)
    notes: tuple = ()
    source: str = ""  # the file it was read from ("": the built-in defaults); not a key

    def describe(self) -> str:
        """Which profile this is, for `dfc plan` and `dfc run`."""
        if not self.source:
            return "built-in defaults (`dfc calibrate` measures this machine)"
        t = self.taken
        when = f" (calibrated on {t.get('host', '?')}, {t.get('date', '?')})" if t else ""
        return f"{self.source}{when}"

    def to_json(self) -> dict:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "kernels":
                v = {op: [k.to_yaml() for k in ks] for op, ks in v.items()}
            if isinstance(v, Link):
                v = {**v.__dict__, "sizes": [list(p) for p in v.sizes]}
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


LINK_KEYS = tuple(f.name for f in fields(Link))


class ProfileError(Exception):
    pass


def load_profile(path: str | None) -> Profile:
    """The default profile, updated from a YAML file when ``path`` is given."""
    base = Profile()
    if not path:
        return base
    try:
        data = yaml.safe_load(read_bounded(path, MAX_PROFILE_BYTES, "a profile").decode("utf-8")) or {}
    except InputError as e:
        raise ProfileError(f"profile: {e}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ProfileError(f"cannot read profile '{path}': {e}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"profile '{path}' must be a mapping")
    known = {f.name: f for f in fields(Profile) if f.name not in ("hosts", "source")}
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ProfileError(f"profile '{path}': unknown key '{key}' (known: {', '.join(sorted(known))})")
        current = getattr(base, key)
        if key == "taken":
            if not isinstance(value, dict):
                raise ProfileError(f"profile '{path}': 'taken' must be a mapping (host, date, versions)")
            changes[key] = {str(k): str(v) for k, v in value.items()}
            continue
        if key == "kernels":
            changes[key] = _kernels(path, value)
            continue
        if key == "notes":
            if not isinstance(value, list):
                raise ProfileError(f"profile '{path}': 'notes' must be a list of lines")
            changes[key] = tuple(str(v) for v in value)
            continue
        try:
            if isinstance(current, Link) and not isinstance(value, dict):
                raise TypeError
            if isinstance(current, Link):
                extra = sorted(set(value) - set(LINK_KEYS))
                if extra:
                    raise ProfileError(
                        f"profile '{path}': unknown key '{key}.{extra[0]}' (known: {', '.join(LINK_KEYS)})"
                    )
                if any(isinstance(v, bool) for v in value.values()):  # (YAML reads 1e-4 as a string: taken)
                    raise TypeError
                sizes = _sizes(path, key, value.pop("sizes")) if "sizes" in value else current.sizes
                changes[key] = link = replace(current, sizes=sizes, **{k: float(v) for k, v in value.items()})
                if not all(math.isfinite(getattr(link, k)) for k in LINK_KEYS if k != "sizes"):
                    raise ValueError
                if min(link.latency, link.cpu, link.gap) < 0 or link.bandwidth <= 0:
                    raise ValueError
            elif isinstance(current, dict):
                changes[key] = {**current, **{k: float(v) for k, v in value.items()}}
            else:
                changes[key] = type(current)(value)
        except (TypeError, ValueError, AttributeError):
            raise ProfileError(f"profile '{path}': bad value for '{key}': {value!r}") from None
    if changes.get("kernel_tasks", 1) < 1:
        raise ProfileError(
            f"profile '{path}': 'kernel_tasks' is the number of tasks the kernels were timed with: 1 or more"
        )
    return replace(base, **changes, source=str(path))


def _sizes(path, key: str, value) -> tuple:
    """A link's ``sizes``: [[bytes, seconds], ...], sizes growing, times positive."""
    try:
        pairs = tuple((int(b), float(t)) for b, t in value)
    except (TypeError, ValueError):
        raise ProfileError(f"profile '{path}': '{key}.sizes' must be a list of [bytes, seconds]") from None
    if any(b <= 0 or not (math.isfinite(t) and t > 0) for b, t in pairs) or any(
        b1 <= b0 for (b0, _), (b1, _) in zip(pairs, pairs[1:])
    ):
        raise ProfileError(
            f"profile '{path}': '{key}.sizes' must be [bytes, seconds] pairs, bytes growing, seconds > 0"
        )
    return pairs


def _kernels(path, value) -> dict:
    """A profile's ``kernels``: op -> a list of {dtype, bytes, flops, seconds}."""
    from ..ops import REGISTRY
    from .kernels import KERNEL_KEYS, KERNEL_OPTIONAL, Kernel

    if not isinstance(value, dict):
        raise ProfileError(f"profile '{path}': 'kernels' must map an op to its measured sizes")
    out = {}
    for op, entries in value.items():
        if op not in REGISTRY:
            raise ProfileError(
                f"profile '{path}': 'kernels' names no op '{op}' (dfc has: {', '.join(sorted(REGISTRY))})"
            )
        if not isinstance(entries, list):
            raise ProfileError(f"profile '{path}': 'kernels.{op}' must be a list of {{{', '.join(KERNEL_KEYS)}}}")
        ks = []
        for e in entries:
            if not isinstance(e, dict) or not set(KERNEL_KEYS) <= set(e) <= {*KERNEL_KEYS, *KERNEL_OPTIONAL}:
                raise ProfileError(
                    f"profile '{path}': each entry of 'kernels.{op}' has exactly {', '.join(KERNEL_KEYS)} "
                    f"(and may have {', '.join(KERNEL_OPTIONAL)})"
                )
            try:
                k = Kernel(
                    op, str(e["dtype"]), int(e["bytes"]), int(e["flops"]), float(e["seconds"]), float(e.get("alone", 0))
                )
            except (TypeError, ValueError):
                raise ProfileError(f"profile '{path}': bad entry in 'kernels.{op}': {e!r}") from None
            if not (math.isfinite(k.alone) and k.alone >= 0):
                raise ProfileError(f"profile '{path}': bad entry in 'kernels.{op}': {e!r}")
            if min(k.bytes, k.flops) < 0 or not (math.isfinite(k.seconds) and k.seconds > 0):
                raise ProfileError(f"profile '{path}': bad entry in 'kernels.{op}': {e!r}")
            ks.append(k)
        out[op] = tuple(ks)
    return out
