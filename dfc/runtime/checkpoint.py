"""Checkpoints of a loop's state, and resuming from them (``loop.checkpoint``, ``--resume``).

What is saved: every variable the program writes (in its first pass or its loop), and the
iteration count. Variables it never writes (a resident matrix) are made again by their
initialisation, which is deterministic, so a checkpoint holds only the state that changes.

Where: each task saves its own variables, on the machine where it runs (no shared file
system is assumed), with TensorFlow's ``SaveV2`` into ``DIR/slot-S/JOB-TASK.*``. ``SaveV2``
writes each file under a temporary name and renames it when complete, and stores a CRC32C
of every tensor, which ``RestoreV2`` checks: a truncated or corrupted file is refused, not
loaded. Each bundle also holds a stamp (run id and iteration) so that files of two
checkpoints are never mixed. The client writes the manifest (``DIR/slot-S/manifest.json``:
spec hash, params, cluster shape, placement, versions, iteration, sizes) after every
owner's save has returned: write, fsync, rename, fsync of the folder. A slot without a
manifest is incomplete and never used; the manifest is removed before its slot is written
again. Two slots alternate, so the last two complete checkpoints are kept, and a save that
fails (a full disk) leaves the previous one intact. When the owners share this machine's
file system (the local cluster) the client also fsyncs their files before the manifest;
on other machines ``SaveV2`` does not fsync, and the client asks each ``dfc serve`` to
fsync its files (and folder) before it writes the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from ..ir.node import state_variables

SLOTS = 2
FORMAT = 1
MANIFEST = "manifest.json"


class CheckpointError(Exception):
    """Cannot checkpoint or resume as asked (a bad folder, no usable checkpoint, another
    spec): the user's setup, exit 2."""


def identity(spec, g) -> dict:
    """What a checkpoint must match to be resumed: the spec (without ``loop.checkpoint``,
    which may change), its params, the cluster's shape and where each saved variable lives."""
    import yaml

    try:
        data = yaml.safe_load(spec.source.text)
    except (yaml.YAMLError, AttributeError):
        data = repr(spec)
    if isinstance(data, dict) and isinstance(data.get("loop"), dict):
        data["loop"] = {k: v for k, v in data["loop"].items() if k != "checkpoint"}
    text = json.dumps(_str_keys(data), sort_keys=True, default=str)
    return {
        "spec": spec.name,
        "spec_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "params": {k: spec.params[k] for k in sorted(spec.params)},
        "cluster": {j.name: {"tasks": j.tasks, "device": j.device, "gpus": j.gpus} for j in spec.cluster.values()},
        "placement": {n: g.nodes[n]["node"].device for n in state_variables(g)},
    }


def _str_keys(value):
    """A YAML document with every mapping key a string (YAML 1.1 reads `on:` as True)."""
    if isinstance(value, dict):
        return {str(k): _str_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_str_keys(v) for v in value]
    return value


def mismatch(saved: dict, now: dict) -> list[str]:
    """How the run asked for differs from the checkpoint's (empty: it may resume)."""
    out = []
    if saved.get("format") != FORMAT:
        out.append(f"checkpoint format {saved.get('format')} (this dfc reads {FORMAT})")
    if saved.get("spec_sha256") != now["spec_sha256"]:
        out.append("the spec changed (beyond `loop.checkpoint`)")
    old, new = saved.get("params", {}), now["params"]
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            out.append(f"param {k}: {old.get(k, '(none)')} then, {new.get(k, '(none)')} now")
    if saved.get("cluster") != now["cluster"]:
        shape = lambda c: ", ".join(f"{j}: {v['tasks']}" for j, v in sorted((c or {}).items()))  # noqa: E731
        out.append(f"the cluster: {shape(saved.get('cluster'))} then, {shape(now['cluster'])} now")
    elif saved.get("placement") != now["placement"]:
        moved = [v for v in now["placement"] if saved.get("placement", {}).get(v) != now["placement"][v]]
        out.append(
            f"the placement: {len(moved)} saved variable{'s' * (len(moved) != 1)} now live elsewhere "
            f"(e.g. {moved[0] if moved else '?'}); use the same --strategy and --profile"
        )
    return out


def default_folder(spec, out: str | None, point=None) -> str:
    """``--checkpoint-dir`` unset: the spec's ``loop.checkpoint.path``, else ``OUT/checkpoints``
    with ``--out``, else ``./checkpoints/NAME``; each point of a sweep in a folder of its own."""
    cp = spec.loop.checkpoint if spec.loop else None
    folder = (cp.path if cp and cp.path else None) or (
        os.path.join(out, "checkpoints") if out else os.path.join("checkpoints", spec.name)
    )
    return os.path.join(folder, f"{point[0]}={point[1]}") if point else folder


def _fsync(path: str, folder: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if folder else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: str) -> str:
    """fsync every file of ``folder`` and the folder itself; '' when done, else why not
    (run where the files are: by the client for the local cluster, by ``dfc serve``)."""
    try:
        for name in os.listdir(folder):
            if name != MANIFEST and os.path.isfile(os.path.join(folder, name)):
                _fsync(os.path.join(folder, name))
        _fsync(folder, folder=True)
    except OSError as e:
        return f"{e.filename or folder}: {e.strerror or e}"
    return ""


@dataclass
class Store:
    """The checkpoint folder as the client sees it: the manifests (and, on the local
    cluster, the owners' files too)."""

    folder: str
    local: bool = True  # the owners write on this machine's file system
    sync: Callable[[str, object], None] | None = (
        None  # sync(folder, owners): the servers make their files durable (dfc serve)
    )

    def slot(self, s: int) -> str:
        return os.path.join(self.folder, f"slot-{s}")

    def prepare(self) -> None:
        """Make the folder (and check it is writable) before anything runs."""
        try:
            for s in range(SLOTS):
                os.makedirs(self.slot(s), exist_ok=True)
            probe = os.path.join(self.folder, f".dfc-probe-{os.getpid()}")
            with open(probe, "w"):
                pass
            os.unlink(probe)
        except OSError as e:
            raise CheckpointError(
                f"checkpoint folder {self.folder}: {e.strerror or e}"
                "\n  hint: --checkpoint-dir DIR puts checkpoints in a writable folder"
            ) from None

    def complete(self) -> tuple[list[dict], list[str]]:
        """The complete checkpoints, newest first; and why others were skipped."""
        found, skipped = [], []
        for s in range(SLOTS):
            path = os.path.join(self.slot(s), MANIFEST)
            if not os.path.exists(path):
                continue
            try:
                with open(path) as f:
                    m = json.load(f)
                int(m["iteration"]), m["slot"]
            except (OSError, ValueError, KeyError, TypeError) as e:
                skipped.append(f"{path}: unreadable manifest ({e})")
                continue
            found.append(m)
        return sorted(found, key=lambda m: -int(m["iteration"])), skipped

    def begin(self, s: int) -> str:
        """Slot ``s`` is about to be written: it is no longer a complete checkpoint."""
        folder = self.slot(s)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, MANIFEST)
        if os.path.exists(path):
            os.unlink(path)
            _fsync(folder, folder=True)
        if self.local:  # what a failed save left behind
            for name in os.listdir(folder):
                if ".tempstate" in name:
                    os.unlink(os.path.join(folder, name))
        return folder

    def commit(self, s: int, manifest: dict) -> None:
        """Slot ``s`` holds a complete checkpoint: its files are written; say so durably."""
        folder = self.slot(s)
        if self.sync is not None:  # the servers wrote them, wherever they are
            self.sync(os.path.abspath(folder), manifest.get("owners"))
        elif self.local:
            why = fsync_folder(folder)
            if why:
                raise OSError(why)
        tmp = os.path.join(folder, f".{MANIFEST}.{os.getpid()}")
        try:
            with open(tmp, "w") as f:
                json.dump(manifest, f, indent=1, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, os.path.join(folder, MANIFEST))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        _fsync(folder, folder=True)


@dataclass
class Checkpointer:
    """Saves a run's state every ``every`` iterations into ``store``, and restores it."""

    store: Store
    every: int
    ident: dict
    say: Callable[[str], None] = print
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    written: list[tuple[int, float]] = field(default_factory=list)  # (iteration, seconds)
    failed: list[str] = field(default_factory=list)
    newest: tuple[int, int] | None = None  # (slot, iteration) of the newest complete checkpoint
    bytes: int = 0
    resumed: dict | None = None
    _failing: int = 0  # checkpoints failed since the last one written

    def due(self, iteration: int) -> bool:
        return self.every > 0 and iteration % self.every == 0

    def save(self, call, ck, iteration: int, versions: dict, fatal) -> None:
        """Write the checkpoint of ``iteration`` (after it ran). A failed save is reported
        and the run goes on; the previous checkpoint is kept. ``fatal(error)``: the error
        stops the run (a task died), re-raised."""
        s = 0 if self.newest is None else 1 - self.newest[0]
        t = time.perf_counter()
        stamp = f"{self.run}:{iteration}"
        manifest = {
            "format": FORMAT,
            **self.ident,
            **versions,
            "iteration": iteration,
            "slot": s,
            "run": self.run,
            "stamp": stamp,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "bytes": ck.nbytes,
            "owners": ck.owners,
        }
        try:
            folder = self.store.begin(s)
            call(
                ck.save,
                f"the checkpoint of iteration {iteration}",
                feed={ck.folder: os.path.abspath(folder), ck.stamp: stamp, ck.note: json.dumps(manifest, indent=1)},
            )
            self.store.commit(s, manifest)
        except OSError as e:
            self._failed(iteration, f"{e.filename or self.store.folder}: {e.strerror or e}")
            return
        except Exception as e:
            if fatal(e):
                raise
            self._failed(iteration, str(e))
            return
        if self._failing:
            self.say(f"the checkpoint of iteration {iteration} is written, after {self._failing} that failed")
            self._failing = 0
        self.written.append((iteration, time.perf_counter() - t))
        self.bytes = ck.nbytes
        self.newest = (s, iteration)

    def _failed(self, iteration: int, why: str) -> None:
        """Say the first of a series of failures (a full disk stays full), count the rest."""
        kept = f"the previous one (iteration {self.newest[1]}) is kept" if self.newest else "there is no earlier one"
        if not self._failing:
            self.say(
                f"warning: the checkpoint of iteration {iteration} was not written ({why}); {kept}"
                + (f"; dfc goes on and tries again every {self.every} iterations" if self.every else "")
            )
        self._failing += 1
        self.failed.append(f"iteration {iteration}: {why}")

    def check(self) -> tuple[list[dict], list[str]]:
        """The complete checkpoints to resume from, newest first, and why others were
        skipped; CheckpointError when there is none, or the newest is of another run (before
        any server starts)."""
        found, skipped = self.store.complete()
        if not found:
            why = "; ".join(skipped) or "no slot has a manifest (a run writes one per checkpoint)"
            raise CheckpointError(f"--resume: no complete checkpoint in {self.store.folder}: {why}")
        differs = mismatch(found[0], self.ident)
        if differs:
            raise CheckpointError(
                f"--resume: the checkpoint in {self.store.folder} (iteration "
                f"{found[0]['iteration']}) is of another run: "
                + "; ".join(differs)
                + "\n  hint: resume with the spec, --set params and cluster of the run that "
                "wrote it, or start afresh without --resume"
            )
        return [m for m in found if not mismatch(m, self.ident)], skipped

    def restore(self, call, ck, init, fatal) -> int:
        """Load the newest usable checkpoint into the variables; its iteration."""
        found, skipped = self.check()
        for i, m in enumerate(found):
            folder = os.path.abspath(self.store.slot(int(m["slot"])))
            try:
                if i:  # the failed attempt may have loaded some variables
                    call(init, "initialisation")
                stamps = call(
                    [ck.restore, *ck.stamps],
                    f"loading the checkpoint of iteration {m['iteration']}",
                    feed={ck.folder: folder},
                )[1:]
                stale = [
                    o for o, v in zip(ck.owners, stamps) if (v.decode() if isinstance(v, bytes) else v) != m["stamp"]
                ]
                if stale:
                    raise ValueError(f"the files of {', '.join(stale)} belong to another checkpoint")
            except Exception as e:
                if fatal(e):
                    raise
                skipped.append(f"{folder} (iteration {m['iteration']}): {str(e).splitlines()[0]}")
                self.say(f"warning: the checkpoint in {folder} is unusable: {str(e).splitlines()[0]}")
                continue
            self.newest = (int(m["slot"]), int(m["iteration"]))
            self.resumed = {
                "iteration": int(m["iteration"]),
                "folder": folder,
                "written": m.get("written"),
                "skipped": skipped,
            }
            return int(m["iteration"])
        raise CheckpointError(f"--resume: no usable checkpoint in {self.store.folder}: " + "; ".join(skipped))

    def report(self) -> dict:
        seconds = [s for _, s in self.written]
        return {
            "folder": self.store.folder,
            "every": self.every,
            "written": len(self.written),
            "failed": self.failed,
            "bytes": self.bytes,
            "seconds_each": sum(seconds) / len(seconds) if seconds else None,
            "newest_iteration": self.newest[1] if self.newest else None,
            **({"resumed_from": self.resumed} if self.resumed else {}),
        }
