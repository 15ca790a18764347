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
    assert 0 <= p.same_host.latency < 0.1 and 1e7 < p.same_host.bandwidth < 1e14 and 0 <= p.same_host.cpu < 1e-6
    assert 0 <= p.same_host.gap < 0.01 and len(p.same_host.sizes) == 5
    assert all(t1 >= t0 for (_, t0), (_, t1) in zip(p.same_host.sizes, p.same_host.sizes[1:]))
    assert 0 < p.run_overhead < 0.1 and 0 <= p.loop_overhead < 0.1 and 0 <= p.first_run_node < 0.01
    assert p.cpu_flops["int64"] == default.cpu_flops["int64"] and p.network == default.network
    # every op of the shipped specs has its kernels measured, each in a sane range
    from dfc import api
    from dfc.cost.calibrate import _signatures

    shipped = [api.load(f).compile(profile=default) for f in sorted((ROOT / "specs").glob("*.yaml"))]
    ops = {sig[0] for sig in _signatures(shipped)}
    assert ops and ops == set(p.kernels), ops ^ set(p.kernels)
    assert all(0 < k.seconds < 10 for ks in p.kernels.values() for k in ks)
    # --add: one program's kernels at another size join the profile; the rest stays
    before = load_profile(str(path))
    assert main(["calibrate", "--add", str(ROOT / "specs" / "stream.yaml"), "--set", "MB=2", "--repeats", "3"]) == 0
    after = load_profile(str(path))
    added = {(k.dtype, k.bytes) for k in after.kernels["add"]} - {(k.dtype, k.bytes) for k in before.kernels["add"]}
    assert added == {("float32", 3 * 2**21)}  # acc + v of 2 MB: two read, one written
    assert after.cpu_flops == before.cpu_flops and after.same_host == before.same_host
    assert main(["calibrate", "--add"]) == 2  # names no spec
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
