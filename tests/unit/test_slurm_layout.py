"""The Slurm source (dfc/runtime/clusters/slurm.py): node lists expanded as
`scontrol show hostnames` does, and the rank -> (job, task) layout. Expected lists are
written out by hand; where Slurm is installed they are also checked against scontrol."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from dfc.runtime.clusters import ClusterSourceError
from dfc.runtime.clusters.slurm import (
    PORT_FLOOR,
    expand_nodelist,
    expand_tasks_per_node,
    gpus_of_this_task,
    job_port_base,
    layout,
    this_rank,
)

CASES = {
    "node01": ["node01"],
    "node[01-04,07]": ["node01", "node02", "node03", "node04", "node07"],
    "n[8-10]": ["n8", "n9", "n10"],
    "n[08-10]": ["n08", "n09", "n10"],
    "a[1-2],b,c[3]": ["a1", "a2", "b", "c3"],
    "rack[1-2]n[1-3]": ["rack1n1", "rack1n2", "rack1n3", "rack2n1", "rack2n2", "rack2n3"],
    "gpu[1-2]-ib[1]": ["gpu1-ib1", "gpu2-ib1"],
    "n[01-3]": ["n01", "n02", "n03"],
    "n[1-03]": ["n1", "n2", "n3"],
    "x[001-002],y[9-11]": ["x001", "x002", "y9", "y10", "y11"],
}


@pytest.mark.parametrize("text", list(CASES))
def test_node_lists_expand_as_slurm_does(text):
    assert expand_nodelist(text) == CASES[text]


SLURM_CONF = """ClusterName=dfc
SlurmctldHost=localhost
NodeName=localhost CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES
"""


@pytest.mark.skipif(shutil.which("scontrol") is None, reason="Slurm's client is not installed (.ci/run installs it)")
@pytest.mark.parametrize("text", [*CASES, "gpu[1-2]-ib"])
def test_the_expansion_matches_scontrol(text, tmp_path):
    """scontrol expands a node list with any slurm.conf, no controller needed."""
    (tmp_path / "slurm.conf").write_text(SLURM_CONF)
    got = subprocess.run(
        ["scontrol", "show", "hostnames", text],
        capture_output=True,
        text=True,
        timeout=30,
        env={"SLURM_CONF": str(tmp_path / "slurm.conf"), "PATH": os.environ["PATH"]},
    )
    if text in CASES:
        assert got.returncode == 0 and got.stdout.split() == expand_nodelist(text), got.stderr
    else:  # what scontrol refuses, dfc refuses
        assert "Invalid hostlist" in got.stdout + got.stderr
        with pytest.raises(ClusterSourceError):
            expand_nodelist(text)


@pytest.mark.parametrize(
    "text, why",
    [
        ("node[01-04", "is not closed"),
        ("node]1", "without its '['"),
        ("n[1-[2]]", "inside brackets"),
        ("n[4-2]", "runs backwards"),
        ("n[a-b]", "not a number"),
        ("n[]", "not a number"),
        ("a,,b", "an empty name"),
        ("n[0-99999999]", "over a million"),
        ("gpu[1-2]-ib", "text after its last"),
    ],
)
def test_malformed_node_lists_are_errors_that_say_why(text, why):
    with pytest.raises(ClusterSourceError, match=why.replace("[", r"\[")):
        expand_nodelist(text)


def test_tasks_per_node():
    assert expand_tasks_per_node("2(x3),1") == [2, 2, 2, 1]
    assert expand_tasks_per_node("4") == [4]
    with pytest.raises(ClusterSourceError, match="not a count"):
        expand_tasks_per_node("2(3)")


def env(nodes: str, per_node: str, **more) -> dict:
    return {"SLURM_JOB_NODELIST": nodes, "SLURM_TASKS_PER_NODE": per_node, **more}


def test_a_jobs_tasks_are_spread_over_the_nodes():
    lay = layout(env("n[1-2]", "3(x2)"), {"ps": 1, "worker": 4, "reducer": 1})
    where = {t.label: (t.host, t.port, t.rank) for t in lay.tasks}
    base = PORT_FLOOR
    assert where == {  # ranks 0-2 on n1, 3-5 on n2; local rank 0 on each node first
        "ps:0": ("n1", base, 0),
        "worker:0": ("n2", base, 3),
        "worker:1": ("n1", base + 1, 1),
        "worker:2": ("n2", base + 1, 4),
        "worker:3": ("n1", base + 2, 2),
        "reducer:0": ("n2", base + 2, 5),
    }
    assert lay.cluster_dict() == {
        "ps": [f"n1:{base}"],
        "worker": [f"n2:{base}", f"n1:{base + 1}", f"n2:{base + 1}", f"n1:{base + 2}"],
        "reducer": [f"n2:{base + 2}"],
    }
    assert lay.tasks_per_host() == {"n1": 3, "n2": 3} and lay.idle == ()
    assert len({t.address for t in lay.tasks}) == 6  # tasks sharing a node never collide


def test_the_step_variables_win_and_extra_ranks_idle():
    lay = layout(
        env("n[1-4]", "2(x4)", SLURM_STEP_NODELIST="n[1-2]", SLURM_STEP_TASKS_PER_NODE="2,1"),
        {"worker": 2},
        port_base=3000,
    )
    assert [(t.host, t.port) for t in lay.tasks] == [("n1", 3000), ("n2", 3000)]
    assert lay.idle == ("rank 1 on n1",) and lay.task_of_rank(2).label == "worker:1"
    assert lay.task_of_rank(1) is None


def test_jobs_sharing_a_node_take_different_ports_below_the_ephemeral_range():
    bases = {job_port_base({"SLURM_JOB_ID": str(j)}) for j in range(1000, 1192)}
    assert len(bases) == 192 and max(bases) + 63 < 32768 and min(bases) >= 20000
    assert job_port_base({"SLURM_JOB_ID": "7", "DFC_PORT_BASE": "4000"}) == 4000
    lay = layout(env("n1", "2", SLURM_JOB_ID="3"), {"worker": 2})
    assert [t.port for t in lay.tasks] == [20000 + 3 * 64, 20000 + 3 * 64 + 1]
    with pytest.raises(ClusterSourceError, match="DFC_PORT_BASE='x' is not a number"):
        job_port_base({"DFC_PORT_BASE": "x"})
    with pytest.raises(ClusterSourceError, match="65 tasks on one node, more than the 64 ports .* set DFC_PORT_BASE"):
        layout(env("n1", "65", SLURM_JOB_ID="3"), {"worker": 65})  # they would take the next job's ports
    assert len(layout(env("n1", "65", DFC_PORT_BASE="5000"), {"worker": 65}).tasks) == 65


def test_too_small_an_allocation_or_no_allocation_is_an_error():
    with pytest.raises(ClusterSourceError, match="has 5 tasks .* but the allocation runs 4: ask for at least 5"):
        layout(env("n[1-2]", "2(x2)"), {"ps": 1, "worker": 4})
    with pytest.raises(ClusterSourceError, match="SLURM_STEP_NODELIST or SLURM_JOB_NODELIST .* is not set"):
        layout({}, {"worker": 1})
    with pytest.raises(ClusterSourceError, match="2 node.* but tasks per node for 1"):
        layout(env("n[1-2]", "2"), {"worker": 1})
    with pytest.raises(ClusterSourceError, match="ports must stay within"):
        layout(env("n1", "4"), {"worker": 1}, port_base=65534)


def test_this_task_and_its_gpus():
    assert this_rank({"SLURM_PROCID": "3"}) == 3
    with pytest.raises(ClusterSourceError):
        this_rank({"SLURM_PROCID": "x"})
    assert gpus_of_this_task({"CUDA_VISIBLE_DEVICES": "2,3", "SLURM_STEP_GPUS": "0,1,2,3"}) == ("2", "3")
    assert gpus_of_this_task({"SLURM_STEP_GPUS": "1"}) == ("1",)
    assert gpus_of_this_task({"CUDA_VISIBLE_DEVICES": "NoDevFiles"}) == ()
