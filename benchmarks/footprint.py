"""The memory a run really takes: the client and each TensorFlow server, sampled.

    python benchmarks/footprint.py dfc run specs/stream.yaml --set MB=2 --quiet
    python benchmarks/footprint.py dfc run specs/cg.yaml --set P=8 --quiet

Runs the command and reads, every 50 ms, ``/proc/PID/smaps_rollup`` and ``VmHWM`` of it
and of every process under it. Per process it prints the peaks of: RSS (``hwm``), the
proportional share (``pss``: pages shared with other processes, TensorFlow's libraries
above all, divided among them) and the process's own memory (``anon``); then the peak of
their sums. The sum of RSS counts the shared libraries once per process, so it overstates
what a cluster takes; PSS does not. These figures back the constants of the memory check
(``dfc/lang/checks.py``, docs/running.md "Memory"): re-measure them after a TensorFlow upgrade.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

FIELDS = ("Rss", "Pss", "Anonymous")


def descendants(pid: int) -> list[int]:
    out = [pid]
    try:
        for thread in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{thread}/children") as f:
                for child in f.read().split():
                    out += descendants(int(child))
    except OSError:  # it exited meanwhile
        pass
    return out


def sample(pid: int) -> dict | None:
    d = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[0].rstrip(":") in FIELDS:
                    d[parts[0].rstrip(":")] = int(parts[1]) * 1024
        with open(f"/proc/{pid}/status") as f:
            d["Hwm"] = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))
        with open(f"/proc/{pid}/cmdline") as f:
            d["cmd"] = " ".join(a for a in f.read().split("\0") if a and not a.startswith("{"))[:100]
    except (OSError, StopIteration):
        return None
    return d


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "dfc", *argv[1:]] if argv[0] == "dfc" else argv
    proc = subprocess.Popen(command)
    peaks: dict[int, dict] = {}
    total = dict.fromkeys(FIELDS, 0)
    while proc.poll() is None:
        now = dict.fromkeys(FIELDS, 0)
        for pid in descendants(proc.pid):
            d = sample(pid)
            if d is None:
                continue
            peak = peaks.setdefault(pid, {"Hwm": 0, **dict.fromkeys(FIELDS, 0)})
            peak["cmd"] = d["cmd"]  # the latest: a server starts as a fork of the client
            for k in ("Hwm", *FIELDS):
                peak[k] = max(peak[k], d.get(k, 0))
            for k in FIELDS:
                now[k] += d.get(k, 0)
        total = {k: max(total[k], now[k]) for k in FIELDS}
        time.sleep(0.05)
    mib = 2**20
    for pid, p in sorted(peaks.items()):
        print(
            f"{pid:8d}  hwm {p['Hwm'] / mib:6.0f}  pss {p['Pss'] / mib:6.0f}  anon {p['Anonymous'] / mib:6.0f} MiB"
            f"  {p['cmd']}"
        )
    print(
        f"peak of the sums: rss {total['Rss'] / mib:.0f}, pss {total['Pss'] / mib:.0f}, "
        f"anon {total['Anonymous'] / mib:.0f} MiB; exit {proc.returncode}"
    )
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
