"""Outputs never destroy anything (dfc/outputs.py): written beside, renamed over, all or
none; a full disk leaves the previous report and arrays whole."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dfc.cli import main
from dfc.outputs import OutputError, clashes, unwritable, write_file, write_files


def test_a_failed_write_leaves_the_previous_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "report.json"
    path.write_text("previous")
    os.chmod(path, 0o640)

    def fail(f):
        f.write(b"half a rep")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match="No space left on device"):
        write_files({str(path): fail})
    assert path.read_text() == "previous" and os.listdir(tmp_path) == ["report.json"]
    write_file(str(path), "new")
    assert path.read_text() == "new" and (os.stat(path).st_mode & 0o777) == 0o640  # keeps its mode


def test_a_group_is_renamed_only_when_every_file_is_written(tmp_path):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    a.write_text("old a")

    def fail(f):
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError):
        write_files({str(a): lambda f: f.write(b"new a"), str(b): fail})
    assert a.read_text() == "old a" and sorted(os.listdir(tmp_path)) == ["a.npy"]


def test_destinations_that_are_inputs_or_each_other_are_refused(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("x")
    (tmp_path / "link.yaml").symlink_to(spec)
    assert "is an input" in clashes({"--json": str(tmp_path / "link.yaml")}, [str(spec)])
    assert "is an input" in clashes({"--json": str(tmp_path / "." / "spec.yaml")}, [str(spec)])
    assert "the same file" in clashes({"--json": str(tmp_path / "r.json"), "--trace": str(tmp_path / "r.json")}, [])
    assert clashes({"--json": str(tmp_path / "r.json")}, [str(spec), None]) is None


def test_unwritable_destinations(tmp_path):
    (tmp_path / "file").write_text("")
    assert "is a folder" in unwritable(str(tmp_path))
    assert "no folder" in unwritable(str(tmp_path / "missing" / "r.json"))
    assert "is a file, not a folder" in unwritable(str(tmp_path / "file"), folder=True)
    assert unwritable(str(tmp_path / "new" / "deeper"), folder=True) is None  # made by the run
    assert unwritable(str(tmp_path / "r.json")) is None


SPEC = """\
dfc: 1
name: big
cluster: {worker: {tasks: 1}}
arrays:
  y: {shape: [262144], dtype: float64, init: ones, output: true}
"""

FULL_DISK = """\
set -u
mount -t tmpfs -o size=1m tmpfs "$D"
mkdir "$D/out" && cp "$PREV/report.json" "$D/" && cp "$PREV/y.npy" "$D/out/"
dd if=/dev/zero of="$D/filler" bs=4k 2>/dev/null   # until the disk is full
"$PY" -m dfc run "$SPEC" --engine numpy --json "$D/report.json" --out "$D/out" --quiet 2>"$RESULT/stderr"
echo $? > "$RESULT/rc"
cp "$D/report.json" "$RESULT/report.json"; cp "$D/out/y.npy" "$RESULT/y.npy"
ls -A "$D" "$D/out" > "$RESULT/listing"
umount "$D"
"""


def test_a_full_disk_leaves_the_previous_report_and_arrays_intact(tmp_path):
    if not shutil.which("unshare"):
        pytest.fail("the full-disk test needs util-linux's unshare")
    for d in ("prev", "disk", "result"):
        (tmp_path / d).mkdir()
    (tmp_path / "spec.yaml").write_text(SPEC)
    (tmp_path / "prev" / "report.json").write_text('{"previous": true}\n')
    previous = np.arange(5.0)
    np.save(tmp_path / "prev" / "y.npy", previous)
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    env = {
        **os.environ,
        "D": str(tmp_path / "disk"),
        "PREV": str(tmp_path / "prev"),
        "PY": sys.executable,
        "SPEC": str(tmp_path / "spec.yaml"),
        "RESULT": str(tmp_path / "result"),
    }
    got = subprocess.run(
        ["unshare", *user, "--mount", "sh", "-c", FULL_DISK], env=env, capture_output=True, text=True, timeout=120
    )
    if got.returncode != 0 and "unshare failed" in got.stderr and user:
        pytest.skip(f"this kernel gives no user namespace: {got.stderr.strip()}")  # CI runs as root
    result = tmp_path / "result"
    assert got.returncode == 0, got.stderr
    err = (result / "stderr").read_text()
    assert (result / "rc").read_text().strip() == "1", err
    assert "No space left on device" in err and "Traceback" not in err
    assert json.loads((result / "report.json").read_text()) == {"previous": True}
    np.testing.assert_array_equal(np.load(result / "y.npy"), previous)
    assert ".part" not in (result / "listing").read_text()  # no temporary file left


def test_a_sweep_keeps_every_points_arrays(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        textwrap.dedent("""\
        dfc: 1
        name: scaled
        params: {k: 1}
        sweep: {k: [2, 3]}
        cluster: {worker: {tasks: 1}}
        arrays:
          x: {shape: [4], dtype: float64, init: ones}
          y: {shape: [4], dtype: float64, output: true}
        tasks:
          t: {compute: "k * x", out: y}
        """)
    )
    assert main(["run", str(spec), "--engine", "numpy", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    for k in (2, 3):
        np.testing.assert_array_equal(np.load(tmp_path / "out" / f"k={k}" / "y.npy"), np.full(4, float(k)))


def test_json_onto_the_spec_is_refused_before_the_run(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    before = spec.read_text()
    assert main(["run", str(spec), "--engine", "numpy", "--json", str(spec)]) == 2
    assert "is an input of this run" in capsys.readouterr().err and spec.read_text() == before


def test_devices_fifos_and_links_are_written_through_never_replaced(tmp_path):
    write_file("/dev/null", "report")  # as root, a rename would have replaced the device
    assert not os.path.isfile("/dev/null")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="cannot write"):  # nobody reads it: an error, not a hang
        write_file(str(fifo), "report")
    assert unwritable(str(fifo)) is None and not fifo.is_file()
    target = tmp_path / "real.json"
    target.write_text("old")
    (tmp_path / "link.json").symlink_to(target)
    write_file(str(tmp_path / "link.json"), "new")
    assert (tmp_path / "link.json").is_symlink() and target.read_text() == "new"


def test_what_out_would_write_into_is_checked_before_the_run(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    (tmp_path / "out" / "y.npy").mkdir(parents=True)  # an output's file is a folder
    assert main(["run", str(spec), "--engine", "numpy", "--out", str(tmp_path / "out")]) == 2
    assert "y.npy' is a folder" in capsys.readouterr().err
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "k=2").write_text("")  # a sweep point's folder is a file
    sweep = tmp_path / "sw.yaml"
    sweep.write_text(SPEC.replace("name: big", "name: big\nparams: {k: 1}\nsweep: {k: [1, 2]}"))
    assert main(["run", str(sweep), "--engine", "numpy", "--out", str(tmp_path / "sweep")]) == 2
    assert "k=2' is a file, not a folder" in capsys.readouterr().err
    assert not (tmp_path / "sweep" / "k=1").exists()  # nothing ran


def test_plot_needs_a_sweep(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    assert main(["run", str(spec), "--engine", "numpy", "--plot", str(tmp_path / "p.png")]) == 2
    assert "--plot draws a sweep" in capsys.readouterr().err
