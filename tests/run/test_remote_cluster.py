"""`dfc serve` on three loopback "hosts" and `dfc run --cluster FILE` against them: the
answers equal the local cluster's bit for bit; a killed server is named; a host that never
comes up is named within the deadline; every server exits when released or left idle."""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from procs import CG_SETS

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


def free_port(host: str) -> int:
    """A free port below the ephemeral range (32768 and up on Linux), as a cluster file's
    ports are: a server's port in that range can be given to an outgoing connection of
    any process while its server restarts."""
    for port in random.Random().sample(range(20000, 32000), 200):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port on {host}")


def dfc(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dfc", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


class Servers:
    """A cluster file for ``jobs`` over HOSTS (or the given ``file``, whose tasks are
    ``jobs``) and one `dfc serve` per task."""

    def __init__(
        self, tmp: Path, spec: str, jobs: dict[str, int], sets=(), idle: float = 120, file: Path | None = None
    ):
        slots = [(job, i) for job, n in jobs.items() for i in range(n)]
        self.address = {slot: (HOSTS[k % len(HOSTS)], free_port(HOSTS[k % len(HOSTS)])) for k, slot in enumerate(slots)}
        lines = ["dfc: 1", "jobs:"] + [
            f"  {job}: [{', '.join(f'{h}:{p}' for (j, _), (h, p) in self.address.items() if j == job)}]" for job in jobs
        ]
        self.file = file or tmp / "cluster.yaml"
        if file is None:
            self.file.write_text("\n".join(lines) + "\n")
        sets = [a for s in sets for a in ("--set", s)]
        self.procs = {
            slot: dfc(
                "serve",
                spec,
                *sets,
                "--cluster",
                str(self.file),
                "--job",
                slot[0],
                "--task",
                str(slot[1]),
                "--idle-timeout",
                str(idle),
                "--trust-network",
            )
            for slot in slots
        }
        for slot, p in self.procs.items():  # each prints one ready line
            assert p.stdout.readline().strip() == "ready", p.stderr.read()

    def exited(self, within: float = 15) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and any(p.poll() is None for p in self.procs.values()):
            time.sleep(0.2)
        return all(p.poll() is not None for p in self.procs.values())

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
            p.communicate()

    def logs(self) -> str:
        """Every server's stderr (for a failure's message): the servers are stopped first."""
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
        return "\n".join(f"--- {job}:{i}\n{p.communicate()[1]}" for (job, i), p in self.procs.items())


@pytest.fixture
def servers(tmp_path):
    made = []

    def make(*args, **kw):
        made.append(Servers(tmp_path, *args, **kw))
        return made[-1]

    yield make
    for s in made:
        s.stop()


def run(*args: str, timeout: float = 180, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dfc", "run", *args, "--quiet"], capture_output=True, text=True, timeout=timeout, **kw
    )


_LOCAL: dict[tuple, Path] = {}


def local_answers(tmp_path_factory, name: str, sets: list[str]) -> Path:
    """The folder of the local cluster's outputs of specs/NAME.yaml with ``sets`` (run once)."""
    key = (name, tuple(sets))
    if key not in _LOCAL:  # in this process: the reference needs no client of its own to start
        from dfc.cli import main

        out = tmp_path_factory.mktemp(f"local-{name}")
        assert (
            main(
                [
                    "run",
                    str(ROOT / "specs" / f"{name}.yaml"),
                    *[a for v in sets for a in ("--set", v)],
                    "--out",
                    str(out),
                    "--quiet",
                ]
            )
            == 0
        )
        _LOCAL[key] = out
    return _LOCAL[key]


def assert_same_answers(got: Path, expected: Path) -> None:
    names = sorted(p.name for p in expected.glob("*.npy"))
    assert names and names == sorted(p.name for p in got.glob("*.npy"))
    for n in names:
        np.testing.assert_array_equal(np.load(got / n), np.load(expected / n))


@pytest.mark.parametrize(
    "name, jobs, sets, file",
    [
        ("stream", {"ps": 1, "worker": 1}, ["MB=2", "reps=3"], None),
        ("cg", {"worker": 2, "reducer": 1}, ["N=256"], ROOT / "examples" / "cluster.yaml"),
        ("matmul", {"worker": 2, "reducer": 2}, ["N=256", "T=128"], None),
        ("fft", {"worker": 2}, ["N=2**12"], None),
    ],
    ids=["stream", "cg-examples-cluster.yaml", "matmul", "fft"],
)
def test_a_cluster_file_gives_the_local_clusters_answers_bit_for_bit(
    tmp_path, tmp_path_factory, servers, name, jobs, sets, file
):
    spec = str(ROOT / "specs" / f"{name}.yaml")
    s = servers(spec, jobs, sets, file=file)
    remote = run(spec, *[a for v in sets for a in ("--set", v)], "--cluster", str(s.file), "--out", str(tmp_path))
    assert remote.returncode == 0, remote.stderr
    assert s.exited(), "a server did not exit when released"
    assert_same_answers(tmp_path, local_answers(tmp_path_factory, name, sets))


def test_an_all_reduce_runs_on_a_cluster_of_dfc_serve_servers(tmp_path, servers):
    """CG with its dot products all-reduced among the workers (`via: collective`) on the
    servers of examples/cluster.yaml: `dfc serve` names the collective group leader as the
    client does (without it the all-reduce waited for its group until the timeout), and
    the answers are the local cluster's, bit for bit."""
    text = (ROOT / "specs" / "cg.yaml").read_text()
    spec = tmp_path / "cg-collective.yaml"
    spec.write_text(
        text.replace("reduce: {op: sum, broadcast: worker}", "reduce: {op: sum, broadcast: worker, via: collective}")
    )
    assert "via: collective" in spec.read_text()
    sets = ["N=256"]
    flags = [a for v in sets for a in ("--set", v)]
    plan = subprocess.run(
        [sys.executable, "-m", "dfc", "plan", str(spec), *flags, "--format", "json"], capture_output=True, text=True
    )
    assert plan.returncode == 0 and {r["form"] for r in json.loads(plan.stdout)["reductions"]} == {"collective"}
    s = servers(str(spec), {"worker": 2, "reducer": 1}, sets, file=ROOT / "examples" / "cluster.yaml")
    remote, local = tmp_path / "remote", tmp_path / "local"
    got = run(str(spec), *flags, "--cluster", str(s.file), "--out", str(remote), "--timeout", "60")
    assert got.returncode == 0, got.stderr
    assert s.exited(), "a server did not exit when released"
    assert run(str(spec), *flags, "--out", str(local)).returncode == 0
    assert_same_answers(remote, local)


def test_calibrate_measures_the_servers_of_a_cluster_file(tmp_path, servers):
    """`dfc calibrate SPEC --cluster FILE` measures on the `dfc serve` servers of FILE (two
    tasks of one machine: the host shared, the link between them; no third task for the
    loops, no second machine for the network, each said) and releases them. A client's
    reset of a container on a server first closes the server's own session: `dfc serve`
    waits for words again instead of failing."""
    import tensorflow as tf

    from dfc.cost.profile import Profile, load_profile

    spec = str(ROOT / "specs" / "stream.yaml")
    sets = ["MB=2", "reps=3"]
    s = servers(spec, {"ps": 1, "worker": 1}, sets)
    ps = next(f"grpc://{h}:{p}" for (job, _), (h, p) in s.address.items() if job == "ps")
    tf.compat.v1.Session.reset(ps, ["somebody-elses"])
    out = tmp_path / "cluster-profile.yaml"
    got = subprocess.run(
        [sys.executable, "-m", "dfc", "calibrate", spec, *[a for v in sets for a in ("--set", v)]]
        + ["--cluster", str(s.file), "--repeats", "3", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "DFC_PROFILES": str(tmp_path / "profiles")},
    )
    assert got.returncode == 0, got.stderr + s.logs()
    assert f"wrote {out}" in got.stdout and "same host" in got.stdout and "network" not in got.stdout
    assert s.exited(), "a server did not exit when released"
    p, default = load_profile(str(out)), Profile()
    assert p.taken["host"] == socket.gethostname() and p.kernel_tasks == 2
    assert len(p.same_host.sizes) == 5 and 1e7 < p.same_host.bandwidth < 1e14 and 0 < p.same_host.cpu < 1e-6
    assert 1e8 < p.cpu_flops["float64"] < 1e14 and set(p.kernels) >= {"add"}
    assert p.network == default.network and p.loop_overhead_task == default.loop_overhead_task
    assert any("not measured here" in n and "network" in n and "loop_overhead_task" in n for n in p.notes)


def test_the_tf_config_example_gives_the_same_answers(tmp_path, tmp_path_factory):
    sets = ["N=256", "T=128"]  # examples/tf_config.sh runs specs/matmul.yaml
    env = {**os.environ, "SERVE_OPTIONS": "--trust-network"}
    got = subprocess.run(
        [
            str(ROOT / "examples" / "tf_config.sh"),
            *[a for v in sets for a in ("--set", v)],
            "--",
            "--out",
            str(tmp_path),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=ROOT,
    )
    assert got.returncode == 0, got.stderr
    assert got.stderr.count("released by the client") == 4, got.stderr
    assert_same_answers(tmp_path, local_answers(tmp_path_factory, "matmul", sets))


def test_a_killed_server_is_named_by_host_job_and_task(servers):
    spec = str(ROOT / "specs" / "stream.yaml")
    s = servers(spec, {"ps": 1, "worker": 1}, ["MB=8"])
    client = dfc("run", spec, "--set", "MB=8", "--set", "reps=100000", "--cluster", str(s.file), "--timeout", "8")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "iteration" not in client.stderr.readline():
            pass
        s.procs[("ps", 0)].send_signal(signal.SIGKILL)
        _, err = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
    host, port = s.address[("ps", 0)]
    assert client.returncode == 1 and f"ps:0 at {host}:{port}" in err and "Traceback" not in err, err
    assert s.exited(), "the other server was not released"


def test_a_host_that_never_comes_up_is_named_within_the_deadline(tmp_path):
    port = free_port("127.0.0.5")
    (tmp_path / "c.yaml").write_text(f"dfc: 1\njobs:\n  ps: [127.0.0.5:{port}]\n  worker: [127.0.0.6:{port + 1}]\n")
    t0 = time.monotonic()
    got = run(
        str(ROOT / "specs" / "stream.yaml"), "--set", "MB=2", "--cluster", str(tmp_path / "c.yaml"), "--timeout", "5"
    )
    assert got.returncode == 1 and f"ps:0 at 127.0.0.5:{port}, worker:0 at 127.0.0.6:{port + 1}" in got.stderr, (
        got.stderr
    )
    assert "no answer within 5 s" in got.stderr and time.monotonic() - t0 < 30


def test_a_server_left_alone_exits_after_its_idle_deadline(servers):
    s = servers(str(ROOT / "specs" / "stream.yaml"), {"ps": 1, "worker": 1}, idle=2)
    assert s.exited(within=20)
    err = s.procs[("ps", 0)].stderr.read()
    assert s.procs[("ps", 0)].returncode == 3 and "no word from a client in 2 s" in err


def test_serve_refuses_a_task_outside_the_cluster(tmp_path):
    (tmp_path / "c.yaml").write_text("dfc: 1\njobs:\n  ps: [127.0.0.2:2222]\n  worker: [127.0.0.3:2224]\n")
    got = subprocess.run(
        [
            sys.executable,
            "-m",
            "dfc",
            "serve",
            str(ROOT / "specs" / "stream.yaml"),
            "--cluster",
            str(tmp_path / "c.yaml"),
            "--job",
            "worker",
            "--task",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert got.returncode == 2 and "--job worker --task 3 is not a task of the cluster (ps:0, worker:0)" in got.stderr


def test_servers_started_for_another_cluster_are_refused_by_the_preflight(tmp_path, servers):
    spec = str(ROOT / "specs" / "stream.yaml")
    s = servers(spec, {"ps": 1, "worker": 1})
    (ps_host, ps_port), (w_host, w_port) = s.address[("ps", 0)], s.address[("worker", 0)]
    swapped = tmp_path / "swapped.yaml"  # the client thinks each server is the other task
    swapped.write_text(f"dfc: 1\njobs:\n  ps: [{w_host}:{w_port}]\n  worker: [{ps_host}:{ps_port}]\n")
    got = run(spec, "--set", "MB=2", "--cluster", str(swapped), "--timeout", "20")
    assert got.returncode == 2 and "the servers were started for another cluster" in got.stderr, got.stderr
    assert "Traceback" not in got.stderr


def test_a_server_of_another_dfc_version_is_refused(tmp_path):
    spec = str(ROOT / "specs" / "stream.yaml")
    (h1, p1), (h2, p2) = (HOSTS[0], free_port(HOSTS[0])), (HOSTS[1], free_port(HOSTS[1]))
    file = tmp_path / "c.yaml"
    file.write_text(f"dfc: 1\njobs:\n  ps: [{h1}:{p1}]\n  worker: [{h2}:{p2}]\n")
    other = (
        "import sys, dfc; dfc.__version__ = '0.0.1-other'; from dfc.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )  # a real dfc serve that says it is another version
    # (--child: the server itself, without the supervisor, which would start a real dfc)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                *(["-c", other] if job == "worker" else ["-m", "dfc"]),
                "serve",
                spec,
                "--cluster",
                str(file),
                "--job",
                job,
                "--task",
                "0",
                "--idle-timeout",
                "30",
                "--trust-network",
                *(["--child"] if job == "worker" else []),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for job in ("ps", "worker")
    ]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        got = run(spec, "--set", "MB=2", "--cluster", str(file), "--timeout", "20")
        assert got.returncode == 2 and f"worker:0 at {h2}:{p2} runs dfc 0.0.1-other" in got.stderr, got.stderr
    finally:
        for p in procs:
            p.kill()
            p.communicate()


def test_two_names_of_one_server_are_refused_as_one_process(tmp_path):
    """The failure where N copies each ran alone (cupynumeric#933), or two names of one
    host: the preflight asks every task who it is."""
    from dfc.runtime.trust import interface_addresses

    spec = str(ROOT / "specs" / "stream.yaml")
    host, port = HOSTS[0], free_port(HOSTS[0])
    # another name of this machine that no name check sees through: an address of another
    # interface (the server listens on every address), else the host's name
    other = next(
        (ip for ips in interface_addresses().values() for ip in ips if "." in ip and not ip.startswith("127.")),
        socket.gethostname(),
    )
    file = tmp_path / "c.yaml"
    file.write_text(f"dfc: 1\njobs:\n  ps: [{host}:{port}]\n  worker: ['{other}:{port}']\n")
    ps = dfc(
        "serve", spec, "--cluster", str(file), "--job", "ps", "--task", "0", "--idle-timeout", "30", "--trust-network"
    )
    try:
        assert ps.stdout.readline().strip() == "ready", ps.stderr.read()
        got = run(spec, "--set", "MB=2", "--cluster", str(file), "--timeout", "20")
        assert (
            got.returncode == 2
            and f"worker:0 at {other}:{port}" in got.stderr
            and "answers as ps:0" in got.stderr
            and "the same process as ps:0" in got.stderr
        ), got.stderr
    finally:
        ps.kill()
        ps.communicate()


def test_a_port_taken_on_the_machine_is_a_clear_error(tmp_path):
    spec = str(ROOT / "specs" / "stream.yaml")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        file = tmp_path / "c.yaml"
        file.write_text(f"dfc: 1\njobs:\n  ps: [{HOSTS[0]}:{port}]\n  worker: [{HOSTS[1]}:{port + 1}]\n")
        got = subprocess.run(
            [
                sys.executable,
                "-m",
                "dfc",
                "serve",
                spec,
                "--cluster",
                str(file),
                "--job",
                "ps",
                "--task",
                "0",
                "--trust-network",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert got.returncode == 1 and f"it cannot listen on port {port}: another process has it" in got.stderr, got.stderr
    assert "Traceback" not in got.stderr


def test_retries_restart_every_server_and_resume(tmp_path, servers, cg_runs):
    """A server of a cluster file killed mid-run: its `dfc serve` starts it again, the client
    asks the others to start afresh too, and the run resumes from its last checkpoint, with
    the local cluster's answer bit for bit."""
    spec = str(ROOT / "specs" / "cg.yaml")
    sets = CG_SETS
    s = servers(spec, {"worker": 2, "reducer": 1}, sets)
    client = dfc(
        "run",
        spec,
        *[a for v in sets for a in ("--set", v)],
        "--cluster",
        str(s.file),
        "--retries",
        "1",
        "--out",
        str(tmp_path),
        "--quiet",
    )
    manifest = tmp_path / "checkpoints" / "slot-1" / "manifest.json"  # the checkpoint of iteration 100
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not manifest.exists() and client.poll() is None:
        time.sleep(0.02)
    supervisor = s.procs[("worker", 1)].pid
    children = subprocess.run(["pgrep", "-P", str(supervisor)], capture_output=True, text=True).stdout.split()
    assert len(children) == 1, children
    os.kill(int(children[0]), signal.SIGKILL)  # the server; its `dfc serve` stays
    try:
        _, err = client.communicate(timeout=180)
    finally:
        if client.poll() is None:
            client.kill()
    assert client.returncode == 0, err + s.logs()
    assert "retry 1 of 1: task worker:1 at" in err and "resuming from the checkpoint of iteration" in err, err
    assert s.exited(), "a server was not released"
    serve_err = s.procs[("worker", 1)].stderr.read()
    assert "its server died (killed by SIGKILL); starting it again" in serve_err, serve_err
    assert "the client asked for a fresh server" in s.procs[("worker", 0)].stderr.read()
    assert_same_answers(tmp_path, cg_runs[0])  # the local cluster's


def test_a_restarted_server_waits_for_its_port_while_another_process_holds_it(servers):
    """Between a server's death and its successor, any process may be given the port (an
    outgoing connection's local port): the successor tries again until it is free."""
    s = servers(str(ROOT / "specs" / "stream.yaml"), {"ps": 1, "worker": 1})
    supervisor = s.procs[("ps", 0)]
    host, port = s.address[("ps", 0)]
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in supervisor.stderr], daemon=True).start()
    (child,) = subprocess.run(["pgrep", "-P", str(supervisor.pid)], capture_output=True, text=True).stdout.split()
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the dead server's TIME_WAITs
        os.kill(int(child), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while True:  # the port is free once the dead server's socket is gone
            try:
                holder.bind((host, port))
                break
            except OSError:
                assert time.monotonic() < deadline, "the killed server's port stayed taken"
                time.sleep(0.01)
        holder.listen()
        seen = []
        while not any("its port is taken for now" in x for x in seen):
            seen.append(lines.get(timeout=60))  # queue.Empty fails the test
    deadline = time.monotonic() + 60
    while not answers(host, port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert answers(host, port), "".join(seen)
    assert supervisor.poll() is None
    assert not any("giving up" in x for x in seen), "".join(seen)


def answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False
