"""What a test can see of the processes and ports dfc leaves behind."""

from __future__ import annotations

from pathlib import Path


def server_processes() -> set[int]:
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if b"dfc.runtime.server" in cmd:
                out.add(int(d.name))
    return out


def parent_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def servers_of(pid: int) -> dict[str, int]:
    """'worker:0' -> pid of the servers that ``pid`` started (through the local cluster's
    zygote, or as its children): named 'dfc-JOB:TASK' in /proc/PID/comm."""
    out = {}
    for s in server_processes():
        try:
            name = Path(f"/proc/{s}/comm").read_text().strip()
        except OSError:
            continue
        if name.startswith("dfc-") and pid in (parent_of(s), parent_of(parent_of(s))):
            out[name.removeprefix("dfc-")] = s
    return out


def listening_ports() -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 3 and parts[3] == "0A":  # LISTEN
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


#: CG that runs 268 iterations (tol=0 stops at the exact solution), about 2 s of compute:
#: checkpoints at 50, 100, ... 250
CG_SETS = ["N=512", "iterations=2000", "tol=0", "shift=20"]
