"""Files a user names are bounded before they are read (issue 10, item 3): a device, a FIFO
or a huge file is refused at once with a message and exit 2, never read into memory or
waited on; a .npy input must hold exactly the data its header says."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from dfc.cost.profile import ProfileError, load_profile
from dfc.inputs import InputError, read_bounded
from dfc.lang import SpecError, load_spec


def dfc(*args, timeout=30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dfc", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("what", ["device", "fifo", "big", "directory"])
def test_validate_refuses_what_is_not_a_small_regular_file(tmp_path, what):
    path = {
        "device": "/dev/zero",
        "fifo": str(tmp_path / "fifo"),
        "big": str(tmp_path / "big.yaml"),
        "directory": str(tmp_path),
    }[what]
    if what == "fifo":
        os.mkfifo(path)
    if what == "big":
        with open(path, "wb") as f:
            f.truncate(64 * 2**30)  # sparse: 64 GiB that would fill memory if read
    t = time.monotonic()
    r = dfc("validate", path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert time.monotonic() - t < 5  # 0.3 s here: nothing is read, nothing waited on
    assert {"device": "is a device", "fifo": "is a FIFO", "big": "may be at most 4 MiB", "directory": "is a directory"}[
        what
    ] in r.stderr


def test_run_refuses_a_fifo_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "spec.yaml")
    r = dfc("run", str(tmp_path / "spec.yaml"), "--engine", "numpy")
    assert r.returncode == 2 and "is a FIFO" in r.stderr


def test_read_bounded_reads_at_most_one_byte_past_the_limit(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x" * 10)
    assert read_bounded(str(p), 10) == b"x" * 10
    with pytest.raises(InputError, match="at most"):
        read_bounded(str(p), 9)


def test_a_profile_that_is_a_fifo_or_too_large_is_refused(tmp_path):
    os.mkfifo(tmp_path / "p.yaml")
    with pytest.raises(ProfileError, match="FIFO"):
        load_profile(str(tmp_path / "p.yaml"))
    with open(tmp_path / "big.yaml", "wb") as f:
        f.truncate(2**30)
    with pytest.raises(ProfileError, match="at most"):
        load_profile(str(tmp_path / "big.yaml"))


SPEC = """dfc: 1
name: npy
arrays:
  a: {shape: [8], dtype: float64, init: {file: a.npy}, output: true}
"""


@pytest.mark.parametrize(
    "change, message",
    [(b"extra", "bytes of data but its header says"), (None, "bytes of data but its header says"), (b"", "")],
)
def test_a_npy_must_hold_what_its_header_says(tmp_path, change, message):
    np.save(tmp_path / "a.npy", np.arange(8.0))
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "a.npy").write_bytes(data[:-8] if change is None else data + change)
    (tmp_path / "s.yaml").write_text(SPEC)
    if not message:
        assert load_spec(tmp_path / "s.yaml").arrays["a"].shape == (8,)
        return
    with pytest.raises(SpecError, match=message):
        load_spec(tmp_path / "s.yaml")


def test_a_npy_that_is_a_fifo_is_refused(tmp_path):
    os.mkfifo(tmp_path / "a.npy")
    (tmp_path / "s.yaml").write_text(SPEC)
    with pytest.raises(SpecError, match="is a FIFO"):
        load_spec(tmp_path / "s.yaml")


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1", "soon"])
def test_run_refuses_a_timeout_that_is_no_limit(value, capsys):
    from pathlib import Path

    from dfc.cli import main

    spec = Path(__file__).resolve().parents[2] / "specs" / "stream.yaml"
    assert main(["run", str(spec), "--timeout", value]) == 2  # before any server starts
    assert "--timeout" in capsys.readouterr().err


def test_run_refuses_a_plot_it_cannot_write_before_running(tmp_path, capsys):
    from pathlib import Path

    from dfc.cli import main

    spec = Path(__file__).resolve().parents[2] / "specs" / "stream.yaml"
    assert main(["run", str(spec), "--plot", str(tmp_path / "p.jpeg")]) == 2
    assert "a plot is .png, .svg, .pdf" in capsys.readouterr().err


def test_json_report_has_no_bare_nan(tmp_path):
    import json

    from dfc.cli import main

    text = """dfc: 1
name: nan
arrays:
  x: {shape: [4], dtype: float64, init: zeros, output: true}
  y: {shape: [4], dtype: float64, output: true}
tasks:
  div: {compute: "x / x", out: y}
verify: {residual: "norm(y)", below: 1}
"""
    (tmp_path / "s.yaml").write_text(text)
    out = tmp_path / "r.json"
    assert main(["run", str(tmp_path / "s.yaml"), "--engine", "numpy", "--quiet", "--json", str(out)]) == 1
    raw = out.read_text()
    assert "NaN" not in raw
    report = json.loads(raw)
    assert report["verified"] is False and report["verification"]["value"] is None


@pytest.mark.parametrize("what", ["device", "fifo"])
def test_validate_of_a_device_or_fifo_prints_exactly_this_within_a_second(tmp_path, what, capsys, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    path = "/dev/zero" if what == "device" else str(tmp_path / "spec.yaml")
    if what == "fifo":
        os.mkfifo(path)
    from dfc.cli import main

    t = time.monotonic()
    assert main(["validate", path]) == 2
    assert time.monotonic() - t < 1.0  # in this process: no interpreter start counted
    kind = "a device" if what == "device" else "a FIFO"
    assert capsys.readouterr().err == (
        f"{path}: error: '{path}' is {kind}, not a spec: dfc reads only regular files\n1 error found\n"
    )
