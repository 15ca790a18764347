"""Fixtures for tests that start TensorFlow servers: each such test fails if it leaves a
dfc server process or a listening port behind."""

from __future__ import annotations

import os
import time
import pytest

from procs import listening_ports, server_processes


@pytest.fixture(autouse=True)
def no_leftovers():
    procs, ports = server_processes(), listening_ports()
    yield
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left_procs = server_processes() - procs
        left_ports = listening_ports() - ports
        if not left_procs and not left_ports:
            return
        time.sleep(0.2)
    for pid in left_procs:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    pytest.fail(f"the test left dfc servers {sorted(left_procs)} or listening ports {sorted(left_ports)} behind")
