"""Device profiles: flop rates per device kind and dtype, memory bandwidth, per-op
overhead, and the latency and bandwidth of a transfer within a task, between tasks of one
host, and across hosts. Defaults describe a small CPU host (2 cores, AVX-512) and an H100;
a YAML file (``placement.profile`` or ``dfc plan --profile``) overrides any of them.
``dfc calibrate`` measures this machine's (dfc/cost/calibrate.py), and ``dfc plan``/``run``
use it when no other is given."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

import yaml

from ..inputs import InputError, read_bounded

#: a profile is a few dozen numbers; anything much larger is not one
MAX_PROFILE_BYTES = 2**20


@dataclass(frozen=True)
class Link:
    latency: float  # seconds
    bandwidth: float  # bytes per second
    # seconds of CPU per byte at each end (gRPC's copies and (de)serialisation): the sending
    # and the receiving device are busy that long, besides the wire's time
    cpu: float = 0.0


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
    same_task: Link = Link(0.0, 1.0e12)
    same_host: Link = Link(1.0e-4, 1.8e9, 2.5e-10)  # gRPC between processes on one host
    network: Link = Link(5.0e-5, 1.0e10, 2.5e-10)
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
            out[f.name] = v.__dict__ if isinstance(v, Link) else list(v) if isinstance(v, tuple) else v
        return out


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
        if key == "notes":
            if not isinstance(value, list):
                raise ProfileError(f"profile '{path}': 'notes' must be a list of lines")
            changes[key] = tuple(str(v) for v in value)
            continue
        try:
            if isinstance(current, Link) and not isinstance(value, dict):
                raise TypeError
            if isinstance(current, Link):
                extra = sorted(set(value) - {"latency", "bandwidth", "cpu"})
                if extra:
                    raise ProfileError(
                        f"profile '{path}': unknown key '{key}.{extra[0]}' (known: latency, bandwidth, cpu)"
                    )
                if any(isinstance(v, bool) for v in value.values()):  # (YAML reads 1e-4 as a string: taken)
                    raise TypeError
                changes[key] = link = Link(
                    float(value.get("latency", current.latency)),
                    float(value.get("bandwidth", current.bandwidth)),
                    float(value.get("cpu", current.cpu)),
                )
                if not all(map(math.isfinite, (link.latency, link.bandwidth, link.cpu))):
                    raise ValueError
                if min(link.latency, link.cpu) < 0 or link.bandwidth <= 0:
                    raise ValueError
            elif isinstance(current, dict):
                changes[key] = {**current, **{k: float(v) for k, v in value.items()}}
            else:
                changes[key] = type(current)(value)
        except (TypeError, ValueError, AttributeError):
            raise ProfileError(f"profile '{path}': bad value for '{key}': {value!r}") from None
    return replace(base, **changes, source=str(path))
