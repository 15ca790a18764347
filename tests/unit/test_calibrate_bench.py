"""Which servers `dfc calibrate` takes each figure on, for the clusters it may be given:
the host's figures on two tasks of one machine where there are two (else two machines,
one task each), a link of each kind the cluster has, a third task for the loops; and
the calls it refuses before connecting to any server."""

from __future__ import annotations

import pytest

from dfc.cli import main
from dfc.cost.calibrate import Bench, CalibrateError, Server, bench_of

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def servers(*machines: str) -> list[Server]:
    return [Server(f"/job:worker/task:{i}/device:CPU:0", m, 100 + i) for i, m in enumerate(machines)]


def test_one_machine_measures_the_host_shared_and_its_link_but_no_network():
    a, b, c = servers("vm", "vm", "vm")
    assert bench_of([a, b, c]) == Bench(host=(a, b), share=2, links={"same_host": (a, b)}, third=c)


def test_two_machines_measure_both_links_and_the_host_where_two_tasks_share_it():
    a, b, c = servers("n1", "n2", "n2")
    bench = bench_of([a, b, c])
    assert bench.links == {"same_host": (b, c), "network": (a, b)}
    assert (bench.host, bench.share, bench.third) == ((b, c), 2, a)


def test_one_task_a_machine_measures_each_host_alone_over_the_network():
    a, b = servers("n1", "n2")
    assert bench_of([a, b]) == Bench(host=(a, b), share=1, links={"network": (a, b)}, third=None)


def test_one_task_is_nothing_to_measure_between():
    with pytest.raises(CalibrateError, match="one task"):
        bench_of(servers("vm"))


def test_cluster_calls_it_refuses_before_connecting(tmp_path, capsys):
    cluster = str(ROOT / "examples" / "cluster.yaml")
    assert main(["calibrate", "--cluster", cluster]) == 2
    assert "name the spec whose `dfc serve` servers" in capsys.readouterr().err
    spec = str(ROOT / "specs" / "cg.yaml")
    assert main(["calibrate", spec, "--add", "--cluster", cluster]) == 2
    assert "-o PROFILE" in capsys.readouterr().err
    one = tmp_path / "one.yaml"
    one.write_text("dfc: 1\njobs:\n  worker: [127.0.0.2:23470]\n")
    stream = tmp_path / "one-task.yaml"
    stream.write_text(
        "dfc: 1\nname: one\ncluster: {worker: {tasks: 1}}\narrays:\n  x: {shape: [4], init: ones, output: true}\n"
    )
    assert main(["calibrate", str(stream), "--cluster", str(one)]) == 2
    assert "has one task" in capsys.readouterr().err


def test_a_reported_host_name_is_a_file_name_in_the_profiles_folder(tmp_path, monkeypatch):
    from dfc.cost.calibrate import machine_profile

    monkeypatch.setenv("DFC_PROFILES", str(tmp_path))
    assert machine_profile("node7.cluster") == tmp_path / "node7.cluster.yaml"
    assert machine_profile("../../etc/x").parent == tmp_path
