"""The batch scripts of examples/slurm/ on a real Slurm controller (the project's one-node
cluster, tools/local-slurm): `sbatch --wait` runs each program with its servers started by
`srun dfc serve`, verifies, and leaves no process behind; an allocation too small for the
spec's cluster is an error that says how many tasks to ask for."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

#: small sizes of the four programs, and the tasks each batch script asks for
PROGRAMS = {
    "stream": (["MB=2", "reps=5"], 2),
    "cg": (["N=256", "shift=20", "tol=0", "iterations=120"], 3),
    "matmul": (["N=256", "T=128"], 4),
    "fft": (["N=2**12"], 2),
}


def _answers(env: dict) -> bool:
    try:
        got = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return got.returncode == 0 and got.stdout.strip().startswith(("idle", "mix", "alloc"))


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """The environment of a Slurm that answers: the one SLURM_CONF names (.ci/run starts
    it), else one started here (as root; tools/local-slurm installs it when missing)."""
    env = {**os.environ, "SBATCH_OVERCOMMIT": "1"}
    if env.get("SLURM_CONF") and _answers(env):
        yield env
        return
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("CI needs Slurm: run the tests as root, or start tools/local-slurm first")
        pytest.skip("starting Slurm needs root (or export SLURM_CONF of a running tools/local-slurm)")
    folder = tmp_path_factory.mktemp("slurm")
    tool = str(ROOT / "tools" / "local-slurm")
    env["SLURM_CONF"] = str(folder / "slurm.conf")
    try:
        got = subprocess.run([tool, "start", str(folder)], capture_output=True, text=True, timeout=900)
        assert got.returncode == 0, got.stderr
        yield env
    finally:
        subprocess.run([tool, "stop", str(folder)], capture_output=True, timeout=120)
        munge_pid = f"/run/munge/dfc-{hashlib.md5(str(folder).encode()).hexdigest()[:12]}.pid"  # as the tool names it
        left = [p for p in daemons() if str(folder) in p or munge_pid in p]
        assert not left, f"tools/local-slurm stop left {left}"


def sbatch(env: dict, script: str, out: Path, *args: str, opts: tuple = (), wait: bool = True) -> subprocess.Popen:
    """`sbatch [--wait]` of examples/slurm/SCRIPT.sbatch with sbatch's ``opts`` and dfc's ``args``."""
    return subprocess.Popen(
        [
            "sbatch",
            *(["--wait"] if wait else []),
            "--parsable",
            "-o",
            str(out),
            *opts,
            str(ROOT / "examples" / "slurm" / f"{script}.sbatch"),
            *args,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(env: dict, proc: subprocess.Popen, timeout: float = 420) -> tuple[int, str]:
    """The job's exit code and its id: from `sbatch --wait`, or for a job submitted without
    it, from scontrol (polled twice a second: sbatch --wait polls at up to 10 s, which the
    tests would wait out). A job past ``timeout`` is cancelled."""
    deadline = time.monotonic() + timeout
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    job = out.strip().split(";")[0]
    if "--wait" in proc.args and proc.returncode is not None and proc.returncode >= 0:
        return proc.returncode, job + err
    while time.monotonic() < deadline:
        got = subprocess.run(
            ["scontrol", "-o", "show", "job", job], capture_output=True, text=True, env=env, timeout=30
        ).stdout
        fields = dict(f.split("=", 1) for f in got.split() if "=" in f)
        if fields.get("JobState") not in (None, "PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
            return int(fields["ExitCode"].split(":")[0]), job
        time.sleep(0.5)
    subprocess.run(["scancel", job], env=env, timeout=30)
    pytest.fail(f"job {job} ran past {timeout} s")


def daemons() -> list[str]:
    """The command lines of every Slurm and munge daemon."""
    out = []
    for d in Path("/proc").iterdir():
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace") if d.name.isdigit() else ""
        except OSError:
            continue
        if cmd.split(" ")[0].rsplit("/", 1)[-1] in ("slurmctld", "slurmd", "munged"):
            out.append(cmd)
    return out


def dfc_processes() -> list[str]:
    """Every process left of a dfc server (`dfc serve`, srun, slurmstepd of a step)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if " serve " in cmd and ("dfc" in cmd or "srun" in cmd) or cmd.startswith("slurmstepd"):
            out.append(f"{d.name}: {cmd}")
    return out


def no_process_left(within: float = 20) -> list[str]:
    deadline = time.monotonic() + within
    while dfc_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    return dfc_processes()


@pytest.mark.skipif(shutil.which("dfc") is None, reason="the batch scripts call the dfc command")
def test_the_four_batch_scripts_verify_on_slurm_and_leave_no_process(slurm, tmp_path):
    """All at once (the partition oversubscribes); STREAM on one rank more than it needs,
    which is named and idles."""
    mine = f"dfc-test-{os.getpid()}"  # every job of this test, cancelled if the test fails
    try:
        # STREAM waited for by `sbatch --wait`, the others polled (faster)
        # CG checkpoints where the test says (the job's folder is the repository's), each
        # `dfc serve` fsyncing its own files
        extra = {"cg": ("--checkpoint-dir", str(tmp_path / "ck"))}
        jobs = {
            name: sbatch(
                slurm,
                name,
                tmp_path / f"{name}.out",
                *[a for s in sets for a in ("--set", s)],
                *extra.get(name, ()),
                wait=name == "stream",
                opts=(f"--job-name={mine}",) + (("--ntasks=3",) if name == "stream" else ()),
            )
            for name, (sets, _) in PROGRAMS.items()
        }
        codes = {name: finish(slurm, p) for name, p in jobs.items()}
    finally:
        subprocess.run(["scancel", f"--name={mine}"], env=slurm, timeout=30)
    for name, (code, job) in codes.items():
        log = (tmp_path / f"{name}.out").read_text()
        assert code == 0, f"{name} (job {job}) exited {code}:\n{log}"
        assert f"{name} (tf engine): verified" in log, log
        assert "'slurm' cluster" in log and log.count("released by the client") == PROGRAMS[name][1], log
    assert "rank 2 on localhost has no task of the spec and stays idle" in (tmp_path / "stream.out").read_text()
    assert re.search(r"checkpoints: [1-9]\d* written every 50 iterations", (tmp_path / "cg.out").read_text())
    assert len(list((tmp_path / "ck").glob("slot-*/manifest.json"))) >= 1
    assert not no_process_left(), "left behind"


@pytest.mark.skipif(shutil.which("dfc") is None, reason="the batch scripts call the dfc command")
def test_calibrate_sbatch_measures_the_allocation_and_releases_its_servers(slurm, tmp_path):
    """examples/slurm/calibrate.sbatch: `dfc calibrate SPEC --cluster slurm` on the servers
    srun started (one node here: its tasks share it, so the link between two of them is
    measured, the network is not), which it releases."""
    import socket

    from dfc.cost.profile import Profile, load_profile

    mine = f"dfc-test-{os.getpid()}"
    out, log = tmp_path / "nodes.yaml", tmp_path / "calibrate.out"
    try:
        job = sbatch(
            slurm,
            "calibrate",
            log,
            "specs/stream.yaml",
            *("--set", "MB=2", "--set", "reps=3", "--repeats", "3", "-o", str(out)),
            opts=(f"--job-name={mine}", "--ntasks=2"),
        )
        code, job_id = finish(slurm, job)
    finally:
        subprocess.run(["scancel", f"--name={mine}"], env=slurm, timeout=30)
    text = log.read_text()
    assert code == 0, f"job {job_id} exited {code}:\n{text}"
    assert f"wrote {out}" in text and text.count("released by the client") == 2, text
    p = load_profile(str(out))
    assert p.taken["host"] == socket.gethostname() and len(p.same_host.sizes) == 5 and p.kernels
    assert p.network == Profile().network
    assert not no_process_left(), "left behind"


def test_a_job_cancelled_while_it_runs_leaves_no_process(slurm, tmp_path):
    """`scancel`, what Ctrl-C is to a batch job: the script's trap and Slurm stop the
    client and every server."""
    mine, out = f"dfc-cancel-{os.getpid()}", tmp_path / "cancelled.out"
    job = sbatch(
        slurm, "stream", out, "--set", "MB=2", "--set", "reps=10000000", opts=(f"--job-name={mine}",), wait=False
    )
    try:
        deadline = time.monotonic() + 120
        while "iteration" not in _text(out) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert "iteration" in _text(out), _text(out)
    finally:
        subprocess.run(["scancel", f"--name={mine}"], env=slurm, timeout=30, check=True)
    finish(slurm, job)
    assert not no_process_left(), "left behind"
    assert "Traceback" not in _text(out), _text(out)


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_too_small_an_allocation_says_how_many_tasks_to_ask_for(slurm, tmp_path):
    code, job = finish(slurm, sbatch(slurm, "cg", tmp_path / "cg.out", "--set", "N=256", opts=("--ntasks=2",)))
    log = (tmp_path / "cg.out").read_text()
    assert code == 2 and "ask for at least 3 tasks (sbatch --ntasks=3)" in log and "Traceback" not in log, log
    assert not no_process_left(), "left behind"
