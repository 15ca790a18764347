"""`dfc calibrate` on this machine's local cluster: it finishes within two minutes, its
profile round-trips through the file, and `dfc plan` uses this machine's profile when no
other is given, and says which it used."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from dfc.cli import main
from dfc.cost.profile import Profile, load_profile

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_calibrate_writes_a_profile_that_plan_uses(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DFC_PROFILES", str(tmp_path))
    t = time.perf_counter()
    assert main(["calibrate", "--repeats", "3"]) == 0
    took = time.perf_counter() - t
    assert took < 120, took
    path = tmp_path / f"{socket.gethostname()}.yaml"
    assert path.is_file() and str(path) in capsys.readouterr().out
    p = load_profile(str(path))
    default = Profile()
    assert p.source == str(path) and p.taken["host"] == socket.gethostname()
    assert {"date", "dfc", "tensorflow", "numpy", "cpu", "cores"} <= set(p.taken)
    assert any("median of" in n for n in p.notes)
    # measured figures, in sane ranges for any CPU host; the rest are the defaults
    assert 1e8 < p.cpu_flops["float64"] < 1e14 and 1e8 < p.cpu_flops["float32"] < 1e14
    assert 1e8 < p.cpu_mem_bandwidth < 1e13
    assert 0 <= p.op_overhead < 1e-2
    assert 0 <= p.same_host.latency < 0.1 and 1e7 < p.same_host.bandwidth < 1e12 and 0 <= p.same_host.cpu < 1e-6
    assert p.cpu_flops["int64"] == default.cpu_flops["int64"] and p.network == default.network
    # the round trip: written again from what was read, it reads the same
    again = tmp_path / "again.yaml"
    import yaml

    fields = {k: v for k, v in p.to_json().items() if k not in ("hosts", "source", "tasks_per_host")}
    again.write_text(yaml.safe_dump(fields))
    assert load_profile(str(again)).to_json() == {**p.to_json(), "source": str(again)}
    # dfc plan takes this machine's profile unasked, and says so
    monkeypatch.chdir(ROOT)
    assert main(["plan", "specs/cg.yaml", "--set", "N=256"]) == 0
    out = capsys.readouterr().out
    assert f"profile            {path} (calibrated on {socket.gethostname()}" in out.replace("\n", "")
    assert main(["calibrate", "--cluster", "slurm"]) == 2
