"""The intruder: a gRPC client that dfc did not start tries to reach every server of a
running local cluster, opens a TensorFlow session on it and reads a file only the user
can read. In the private network it reaches none of them; with the isolation turned off
(the control) the same client reads the file, so this test can fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_failures import start, wait_for_iterations

from procs import servers_of

pytestmark = pytest.mark.slow

INTRUDER = r"""
import json, os, socket, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
addresses, secret, session = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3] == "session"
out = {"tcp": {}, "tf": {}}
for job, task, address in addresses:
    port = int(address.rsplit(":", 1)[1])
    for host in ("127.0.0.1", "127.0.0.2"):
        try:
            socket.create_connection((host, port), timeout=3).close()
            out["tcp"][f"{host}:{port}"] = "connected"
        except OSError as e:
            out["tcp"][f"{host}:{port}"] = type(e).__name__
if not session:
    print(json.dumps(out))
    sys.exit(0)
import tensorflow as tf
tf.compat.v1.disable_eager_execution()
for job, task, address in addresses:
    g = tf.Graph()
    with g.as_default(), tf.device(f"/job:{job}/task:{task}"):
        data = tf.io.read_file(secret)
    config = tf.compat.v1.ConfigProto(operation_timeout_in_ms=5000)
    try:
        with tf.compat.v1.Session(f"grpc://{address}", graph=g, config=config) as s:
            out["tf"][f"{job}:{task}"] = s.run(data, options=tf.compat.v1.RunOptions(timeout_in_ms=5000)).decode()
    except Exception as e:
        out["tf"][f"{job}:{task}"] = type(e).__name__
print(json.dumps(out))
"""


def clusters_of(pid: int) -> dict[int, dict]:
    """The dfc servers that ``pid`` started: pid -> their cluster (from the environment)."""
    out = {}
    for s in servers_of(pid).values():
        try:
            env = dict(kv.split("=", 1) for kv in Path(f"/proc/{s}/environ").read_text().split("\0") if "=" in kv)
        except (OSError, ValueError):
            continue
        out[s] = json.loads(env["DFC_CLUSTER"])
    return out


def intrude(tmp_path, network: str, session: bool = True) -> tuple[dict, dict]:
    """Start a long run with DFC_PRIVATE_NETWORK=``network``, play the intruder on every
    server (by TCP, and with ``session`` by a TensorFlow session too); returns what the
    intruder got and the namespaces seen."""
    secret = tmp_path / "secret.txt"
    secret.write_text("the user's secret")
    secret.chmod(0o600)
    env = {**os.environ, "DFC_PRIVATE_NETWORK": network}
    env.pop("DFC_NETWORK", None)
    proc = start("--timeout", "120", env=env)
    try:
        wait_for_iterations(proc)
        servers = clusters_of(proc.pid)
        assert len(servers) == 2, servers
        cluster = next(iter(servers.values()))
        addresses = [(job, i, a) for job, tasks in sorted(cluster.items()) for i, a in enumerate(tasks)]
        ns = {
            "test": os.readlink("/proc/self/ns/net"),
            "client": os.readlink(f"/proc/{proc.pid}/ns/net"),
            "servers": {os.readlink(f"/proc/{s}/ns/net") for s in servers},
            "cmdlines": [Path(f"/proc/{s}/cmdline").read_bytes() for s in servers],
        }
        got = subprocess.run(
            [sys.executable, "-c", INTRUDER, json.dumps(addresses), str(secret), "session" if session else "tcp"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert got.returncode == 0, got.stderr
        return json.loads(got.stdout.splitlines()[-1]), ns
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("network", ["", "user"], ids=["default", "user-namespace"])
def test_no_foreign_client_reaches_a_server(tmp_path, network):
    # the session attempts (5 s each, refused like TCP) run in one variant: they prove the
    # same refusal a second way, and the other variant's namespace is the one that differs
    got, ns = intrude(tmp_path, network, session=network == "")
    assert ns["servers"] == {ns["client"]} and ns["client"] != ns["test"]  # the whole run, client too
    assert set(got["tcp"].values()) == {"ConnectionRefusedError"}, got["tcp"]
    assert network or (got["tf"] and "the user's secret" not in got["tf"].values()), got["tf"]
    assert all(b"127.0.0.1:" not in c for c in ns["cmdlines"])  # ps shows no address


def test_the_intruder_gets_in_when_the_isolation_is_off(tmp_path):
    got, ns = intrude(tmp_path, "off")
    assert ns["servers"] == {ns["test"]}
    assert "connected" in got["tcp"].values()
    assert "the user's secret" in got["tf"].values(), got["tf"]
