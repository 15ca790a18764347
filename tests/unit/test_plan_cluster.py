"""`dfc plan --cluster FILE`: the plan a cluster across hosts will run. The cost model takes
each task's host from the cluster (its cores shared only with the tasks of that host) and
the links from the cluster file, so the placement and the prediction change with them."""

from __future__ import annotations

import json
from pathlib import Path

from dfc.cli import main
from dfc.cost.model import CostModel
from dfc.cost.profile import Link, Profile

ROOT = Path(__file__).resolve().parents[2]
CG = str(ROOT / "specs" / "cg.yaml")


def plan(tmp_path, *args) -> dict:
    out = tmp_path / "plan.json"
    assert main(["plan", CG, "--set", "N=2048", "--format", "json", "-o", str(out), *args]) == 0
    return json.loads(out.read_text())


def cluster(tmp_path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text("dfc: 1\njobs:\n" + text)
    return str(path)


def test_each_device_is_on_its_host_and_hosts_share_no_cores(tmp_path):
    one = plan(tmp_path)
    three = plan(tmp_path, "--cluster", cluster(tmp_path, "  worker: [n1:1, n2:1]\n  reducer: [n3:1]\n"))
    assert {d["short"]: d["host"] for d in three["devices"]} == {"worker:0": "n1", "worker:1": "n2", "reducer:0": "n3"}
    assert len({d["host"] for d in one["devices"]}) == 1
    # the same work, each task with a whole host's cores: less busy time than three tasks sharing one
    busy = {d["short"]: d["busy_s"] for d in one["devices"]}
    assert all(d["busy_s"] < busy[d["short"]] for d in three["devices"] if d["busy_s"] > 0)


def test_the_cluster_files_links_price_the_transfers(tmp_path):
    fast = plan(tmp_path, "--cluster", cluster(tmp_path, "  worker: [n1:1, n2:1]\n  reducer: [n3:1]\n"))
    slow = plan(
        tmp_path,
        "--cluster",
        cluster(
            tmp_path,
            "  worker: [n1:1, n2:1]\n  reducer: [n3:1]\nlinks:\n  network: {latency: 1.0e-2, bandwidth: 1.0e7}\n",
        ),
    )
    assert slow["predicted_makespan_s"] > 10 * fast["predicted_makespan_s"]


def test_a_cluster_file_for_plan_is_checked_like_one_for_run(tmp_path, capsys):
    bad = cluster(tmp_path, "  worker: [n1:1]\n  reducer: [n3:1]\nlinks: {network: {speed: 3}}\n")
    assert main(["plan", CG, "--cluster", bad]) == 2
    err = capsys.readouterr().err
    assert "c.yaml:5:19: error: unknown key 'speed' in links.network" in err
    assert main(["plan", CG, "--cluster", cluster(tmp_path, "  worker: [n1:1]\n  reducer: [n3:1]\n")]) == 2
    assert "job 'worker' has 1 task here but the spec's cluster gives it 2" in capsys.readouterr().err


def test_links_between_tasks_follow_the_hosts():
    devs = (
        "/job:w/task:0/device:CPU:0",
        "/job:w/task:1/device:CPU:0",
        "/job:g/task:0/device:GPU:0",
        "/job:g/task:0/device:GPU:1",
    )
    p = Profile(hosts=(("w:0", "a"), ("w:1", "b"), ("g:0", "a")), network=Link(1e-3, 1e8))
    cm = CostModel(p, devs)
    assert cm.link(devs[0], devs[2]) == p.same_host and cm.link(devs[0], devs[1]) == p.network
    assert cm.link(devs[2], devs[3]) == p.same_task  # two GPUs of one process
    assert cm.share[devs[0]] == cm.share[devs[1]] == 1.0  # one CPU task per host


def test_loopback_hosts_are_one_machine_and_names_are_compared_without_case(tmp_path):
    from dfc.runtime.clusters import machine_of

    assert {machine_of(h) for h in ("127.0.0.2", "localhost", "::1", "::ffff:127.0.0.3", "[::1]")} == {"this machine"}
    assert machine_of("Node1") == "node1" and machine_of("::ffff:10.0.0.1") == "10.0.0.1"
    looped = plan(tmp_path, "--cluster", str(ROOT / "examples" / "cluster.yaml"))
    assert {d["host"] for d in looped["devices"]} == {"this machine"}


def test_the_calibrated_profile_of_the_clusters_hosts_is_the_default(tmp_path, monkeypatch):
    """`dfc calibrate SPEC --cluster ...` writes the profile of the host its servers report
    (`hostname`: the name up to the first dot here); `dfc plan --cluster` finds it by a
    host of the cluster, and says it used it. Loopback hosts are this machine (its
    profile; none here: the built-in one); --profile wins over both."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    monkeypatch.setenv("DFC_PROFILES", str(profiles))
    (profiles / "n2.yaml").write_text("cpu_mem_bandwidth: 1.0e9\n")
    hosts = cluster(tmp_path, "  worker: [n1.site:1, n2.site:1]\n  reducer: [n3:1]\n")
    assert plan(tmp_path, "--cluster", hosts)["profile"] == str(profiles / "n2.yaml")
    here = cluster(tmp_path, "  worker: [127.0.0.2:1, 127.0.0.3:2]\n  reducer: [127.0.0.4:3]\n")
    assert plan(tmp_path, "--cluster", here)["profile"].startswith("built-in defaults")
    given = tmp_path / "given.yaml"
    given.write_text("cpu_mem_bandwidth: 2.0e9\n")
    hosts = cluster(tmp_path, "  worker: [n1.site:1, n2.site:1]\n  reducer: [n3:1]\n")
    assert plan(tmp_path, "--cluster", hosts, "--profile", str(given))["profile"] == str(given)
