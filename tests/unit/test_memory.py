"""The memory check counts what a run on the local cluster takes: a server per task, the
data, `.npy` inputs read whole by their owners, and the client's copies (docs/running.md,
"Memory"). This machine's memory is patched in, so the figures do not depend on the host."""

from pathlib import Path

import numpy as np
import pytest

from dfc.diagnostics import SpecError
from dfc.lang import checks, load_spec, load_spec_text
from dfc.lang.checks import CLIENT_FOOTPRINT, MAX_LOCAL_TASKS, NPY_READ_COPIES, SERVER_FOOTPRINT

ROOT = Path(__file__).resolve().parents[2]
MiB, GiB = 2**20, 2**30


def errors(text: str, host: int, monkeypatch, file: str = "t.yaml") -> list:
    monkeypatch.setattr(checks, "host_memory", lambda: host)
    try:
        load_spec_text(text.encode(), file)
    except SpecError as e:
        return [d for d in e.diagnostics if d.code in ("memory", "too-large")]
    return []


def use_of(text: str, file: str = "t.yaml") -> checks.MemoryUse:
    spec = load_spec_text(text.encode(), file)
    return checks.memory_use(spec, {})


def spec_with(tasks: int, body: str = "") -> str:
    return f"dfc: 1\nname: t\ncluster: {{worker: {{tasks: {tasks}}}}}\n{body}"


def test_a_run_counts_servers_data_and_the_clients_two_copies():
    use = use_of(spec_with(3, "arrays:\n  x: {shape: [1048576], dtype: float64}\n"))
    assert (use.tasks, use.data, use.npy, use.fetched) == (3, 8 * MiB, 0, 16 * MiB)
    assert use.total == 3 * SERVER_FOOTPRINT + 8 * MiB + CLIENT_FOOTPRINT + 16 * MiB
    assert use.figures() == "3 servers x 384.0 MiB + data 8.0 MiB + client 656.0 MiB = 1.8 GiB"


def test_queue_buffers_are_data(monkeypatch):
    [e] = errors((ROOT / "specs" / "matmul.yaml").read_text(), 1 * GiB, monkeypatch)
    # 3 arrays of 16 MiB + 2 shards x capacity 8 x one 1 MiB tile; the client copies the arrays twice
    assert "4 servers x 384.0 MiB + data 64.0 MiB + client 736.0 MiB = 2.3 GiB" in e.message


def test_each_owner_of_a_npy_tile_reads_its_band_or_the_whole_file(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((64, 1024)))
    np.save(tmp_path / "v.npy", np.zeros(64))
    nbytes = 64 * 1024 * 8
    head = "dfc: 1\nname: t\ncluster: {worker: {tasks: 3}, ps: {tasks: 1}}\narrays:\n"
    spread = head + "  A: {shape: [64, 1024], dtype: float64, tile: [16, 1024], init: {file: a.npy}}\n"
    pinned = head + "  A: {shape: [64, 1024], dtype: float64, tile: [16, 1024], init: {file: a.npy}, on: 'worker:0'}\n"
    on_job = head + "  A: {shape: [64, 1024], dtype: float64, tile: [16, 1024], init: {file: a.npy}, on: worker}\n"
    columns = head + "  A: {shape: [64, 1024], dtype: float64, tile: [64, 256], init: {file: a.npy}}\n"
    whole = head + "  A: {shape: [64, 1024], dtype: float64, init: {file: a.npy}}\n"
    cyclic = head + "  v: {shape: [64], dtype: float64, tile: {cyclic: 4}, init: {file: v.npy}}\n"
    file = str(tmp_path / "t.yaml")
    band = nbytes // 4  # a block tile of 16 of the 64 rows reads those rows only
    assert use_of(spread, file).npy == NPY_READ_COPIES * band * 4  # 4 tiles, 4 tasks
    assert use_of(pinned, file).npy == NPY_READ_COPIES * band
    assert use_of(on_job, file).npy == NPY_READ_COPIES * band * 3
    assert use_of(columns, file).npy == NPY_READ_COPIES * nbytes * 4  # every row: the whole file
    assert use_of(whole, file).npy == NPY_READ_COPIES * nbytes
    assert use_of(cyclic, file).npy == NPY_READ_COPIES * 64 * 8 * 4


@pytest.mark.parametrize("name, sets", [("stream", []), ("matmul", []), ("cg", []), ("fft", []), ("cg", ["P=8"])])
def test_the_specs_fit_a_small_machine(name, sets, monkeypatch):
    monkeypatch.setattr(checks, "host_memory", lambda: 6 * GiB)
    load_spec(ROOT / "specs" / f"{name}.yaml", sets)


def test_a_cluster_beyond_this_machine_is_refused_with_the_figures(monkeypatch):
    [e] = errors(spec_with(16), 4 * GiB, monkeypatch)
    assert e.message == (
        "a run on the local cluster needs 16 servers x 384.0 MiB + data 0.0 MiB + client 640.0 MiB"
        " = 6.6 GiB but this machine has 4.0 GiB"
    )
    assert e.hint == "each task is a server of 384.0 MiB: use fewer tasks (9 fit here)"
    assert errors(spec_with(9), 4 * GiB, monkeypatch) == []  # 9 x 384 MiB + 640 MiB = 4 GiB


def test_data_beyond_this_machine_names_the_largest_array(monkeypatch):
    [e] = errors(spec_with(2, "arrays:\n  A: {shape: [32768, 32768], dtype: float32}\n"), 8 * GiB, monkeypatch)
    assert "data 4.0 GiB" in e.message and "client 8.6 GiB" in e.message
    assert e.hint.startswith("largest array: 'A' 4.0 GiB; lower the sizes")


def test_npy_reads_are_in_the_figures_and_the_hint(tmp_path, monkeypatch):
    np.save(tmp_path / "a.npy", np.zeros((1024, 1024)))
    text = spec_with(4, "arrays:\n  A: {shape: [1024, 1024], dtype: float64, tile: [256, 1024], init: {file: a.npy}}\n")
    [e] = errors(text, 2 * GiB, monkeypatch, str(tmp_path / "t.yaml"))
    assert "+ 32.0 MiB reading .npy inputs" in e.message
    assert e.hint.endswith(
        "and fewer owners of each .npy input (a block tile reads its rows, any other tile the whole file)"
    )


def test_task_count_limit_does_not_depend_on_the_machine(monkeypatch):
    assert errors(spec_with(MAX_LOCAL_TASKS), 2**50, monkeypatch) == []
    [e] = errors(spec_with(MAX_LOCAL_TASKS + 1), 2**50, monkeypatch)
    assert e.code == "too-large" and f"at most {MAX_LOCAL_TASKS}" in e.message
    assert "use fewer tasks" in e.hint
    [e] = errors(spec_with(10**12), 2**50, monkeypatch)  # once, not also as memory
    assert e.code == "too-large"


def test_declared_memory_holds_the_server_and_does_not_depend_on_the_machine(monkeypatch):
    text = "dfc: 1\nname: t\ncluster: {w: {tasks: 2, memory: 512MiB}}\narrays:\n  x: {shape: [%d], dtype: float64}\n"
    assert errors(text % (32 * 2**17), 64 * GiB, monkeypatch) == []  # 2 x 384 + 32 MiB in 1 GiB
    [e] = errors(text % (512 * 2**17), 64 * GiB, monkeypatch)  # 2 x 384 + 512 MiB > 1 GiB
    assert e.message == (
        "the tasks need 2 x 384.0 MiB for their servers + data 512.0 MiB = 1.2 GiB "
        "but the cluster has 2 'w' tasks x 512.0 MiB"
    )
    [e] = errors("dfc: 1\nname: t\ncluster: {w: {tasks: 1, memory: '0B'}}\n", 64 * GiB, monkeypatch)
    assert e.message == "each 'w' task has 0.0 MiB but its TensorFlow server alone takes 384.0 MiB"


def test_arrays_pinned_on_a_job_leave_room_for_its_servers(monkeypatch):
    text = (
        "dfc: 1\nname: t\ncluster: {w: {tasks: 2, memory: 1GiB}, ps: {tasks: 1, memory: 4GiB}}\n"
        "arrays:\n  x: {shape: [%d], dtype: float64, on: w}\n"
    )
    assert errors(text % (1024 * 2**17), 64 * GiB, monkeypatch) == []  # 1 GiB on 2 x (1 GiB - 384 MiB)
    [e] = errors(text % (1536 * 2**17), 64 * GiB, monkeypatch)
    assert e.message == "arrays placed on 'w' need 1.5 GiB but it has 1.2 GiB besides its servers"


def test_what_starts_no_server_counts_only_the_data(monkeypatch, capsys):
    """dfc plan and the NumPy engine: a cluster too big for this machine's servers can be
    planned and interpreted; data beyond this machine is still refused."""
    from dfc.cli import main

    monkeypatch.setattr(checks, "host_memory", lambda: 4 * GiB)
    many = spec_with(
        16,
        "arrays:\n  x: {shape: [1048576], dtype: float64, init: ones}\n"
        "  y: {shape: [1048576], dtype: float64, output: true}\n"
        "tasks:\n  t: {compute: 2 * x, out: y}\n",
    )
    assert errors(many, 4 * GiB, monkeypatch)  # validate, and dfc run on the TF engine
    load_spec_text(many.encode(), "t.yaml", local=False)
    huge = spec_with(2, "arrays:\n  x: {shape: [1073741824], dtype: float64}\n")
    with pytest.raises(SpecError, match="the data needs 8.0 GiB but this machine has 4.0 GiB"):
        load_spec_text(huge.encode(), "t.yaml", local=False)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = f"{d}/t.yaml"
        with open(path, "w") as f:
            f.write(many)
        assert main(["validate", path]) == 2
        assert main(["plan", path, "-o", f"{d}/plan.txt"]) == 0
        assert main(["run", path, "--engine", "numpy", "--quiet"]) == 0
