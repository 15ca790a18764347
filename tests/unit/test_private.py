"""The private network (dfc/runtime/private.py), without TensorFlow: what a command run in
it sees. The intruder test with real servers is tests/run/test_private_network.py."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from dfc.runtime import private

SHOW = (
    "import os, socket, sys; from dfc.runtime import private, trust; "
    "print(os.readlink('/proc/self/ns/net')); print(sorted(trust.interface_addresses())); "
    "print(private.state()[0]); print(os.getuid())"
)


def run_in_private(env_switch: str):
    env = {**os.environ, private.SWITCH: env_switch}
    env.pop(private.ENV, None)
    return subprocess.run(
        [sys.executable, "-m", "dfc.runtime.private", sys.executable, "-c", SHOW],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize("switch", ["", "user"], ids=["default", "user-namespace"])
def test_a_command_runs_in_a_network_holding_only_loopback(switch):
    got = run_in_private(switch)
    assert got.returncode == 0, got.stderr
    ns, interfaces, is_private, uid = got.stdout.split("\n")[:4]
    assert ns != os.readlink("/proc/self/ns/net")
    assert interfaces == "['lo']" and is_private == "True"
    assert int(uid) == os.getuid()  # the same user, mapped to themself
    assert "warning" not in got.stderr


def test_turned_off_it_says_so_and_runs_in_the_shared_network():
    got = run_in_private("off")
    assert got.returncode == 0
    ns, _, is_private, _ = got.stdout.split("\n")[:4]
    assert ns == os.readlink("/proc/self/ns/net") and is_private == "False"
    assert "warning: the network is not private: DFC_PRIVATE_NETWORK=off" in got.stderr


def test_a_copied_environment_does_not_make_a_process_private(monkeypatch):
    monkeypatch.setenv(private.ENV, "private:net:[1]")  # another namespace's
    assert private.state()[0] is False
    monkeypatch.setenv(private.ENV, f"private:{private.namespace()}")
    assert private.state() == (True, private.namespace())


def test_a_process_with_threads_is_not_moved(monkeypatch):
    monkeypatch.delenv(private.SWITCH, raising=False)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, args=(30,))
    thread.start()
    try:
        assert private._refused() == "this process already runs threads"
    finally:
        stop.set()
        thread.join()


def test_a_missing_command_is_a_clear_error():
    got = subprocess.run(
        [sys.executable, "-m", "dfc.runtime.private", "no-such-command-dfc"], capture_output=True, text=True, timeout=60
    )
    assert got.returncode == 127 and "cannot run no-such-command-dfc" in got.stderr
    assert "Traceback" not in got.stderr


def test_the_entry_point_reports_a_usage_error_once():
    got = subprocess.run(
        [sys.executable, "-m", "dfc", "run", "--timeout", "0", "x.yaml"], capture_output=True, text=True, timeout=60
    )
    assert got.returncode == 2 and got.stderr.count("usage:") == 1 and got.stderr.count("error:") == 1


def test_the_exec_into_the_namespace_runs_the_same_dfc(tmp_path):
    """Through a user namespace dfc executes itself again: as it was started (the console
    script), never ``python -m dfc``, which would import a ``dfc`` from the current folder."""
    import shutil

    (tmp_path / "dfc").mkdir()
    (tmp_path / "dfc" / "__init__.py").write_text("")
    (tmp_path / "dfc" / "__main__.py").write_text("print('HIJACKED')\n")
    script = shutil.which("dfc") or pytest.fail("the dfc console script is not installed")
    env = {**os.environ, private.SWITCH: "user"}
    env.pop(private.ENV, None)
    got = subprocess.run(
        [script, "run", "missing.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env
    )
    assert "HIJACKED" not in got.stdout and got.returncode == 2 and "missing.yaml" in got.stderr
