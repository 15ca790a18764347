"""TF_CONFIG as a cluster source (dfc/runtime/clusters/tfconfig.py)."""

from __future__ import annotations

import json
import re

import pytest

from dfc.runtime.clusters import ClusterSourceError
from dfc.runtime.clusters.tfconfig import layout, this_task

JOBS = {"ps": 1, "worker": 2}


def env(cluster: dict, task: dict | None = None) -> dict:
    return {"TF_CONFIG": json.dumps({"cluster": cluster, **({"task": task} if task else {})})}


def test_the_cluster_and_this_task():
    e = env({"ps": ["127.0.0.2:2222"], "worker": ["127.0.0.3:2224", "[::1]:2223"]}, {"type": "worker", "index": 1})
    lay = layout(e, JOBS)
    assert lay.cluster_dict() == {"ps": ["127.0.0.2:2222"], "worker": ["127.0.0.3:2224", "[::1]:2223"]}
    assert this_task(e, lay).address == "[::1]:2223"


@pytest.mark.parametrize(
    "cluster, why",
    [
        ({"ps": ["a:1"]}, "the spec's job 'worker' (2 tasks) is missing"),
        ({"ps": ["a:1"], "worker": ["b:1"]}, "cluster.worker: 1 task(s), but the spec's cluster gives 'worker' 2"),
        ({"ps": ["a:1"], "worker": ["b:1", "A:1"]}, r"cluster.worker\[1\]: A:1 is given to worker:1 and to ps:0"),
        (
            {"ps": ["127.0.0.2:7"], "worker": ["localhost:7"]},
            r"localhost:7 \(worker:0\) and 127.0.0.2:7 \(ps:0\) are one machine",
        ),
        ({"ps": ["a:1"], "worker": ["b:1", "c"], "chief": ["d:1"]}, "the spec has no job 'chief'"),
        ({"ps": ["a:1"], "worker": ["b:1", "c:70000"]}, r"cluster.worker\[1\]: 'c:70000' is not host:port"),
    ],
)
def test_mistakes_name_their_place(cluster, why):
    with pytest.raises(ClusterSourceError) as info:
        layout(env(cluster), JOBS)
    assert re.search(why, str(info.value)) or why in str(info.value), str(info.value)


def test_not_set_not_json_or_no_task():
    with pytest.raises(ClusterSourceError, match="TF_CONFIG is not set"):
        layout({}, JOBS)
    with pytest.raises(ClusterSourceError, match="is not JSON: Expecting"):
        layout({"TF_CONFIG": "{cluster:"}, JOBS)
    with pytest.raises(ClusterSourceError, match="at most 65536"):
        layout({"TF_CONFIG": "x" * 70000}, JOBS)
    e = env({"ps": ["a:1"], "worker": ["b:1", "c:1"]})
    with pytest.raises(ClusterSourceError, match='no "task"'):
        this_task(e, layout(e, JOBS))
    e = env({"ps": ["a:1"], "worker": ["b:1", "c:1"]}, {"type": "worker", "index": 2})
    with pytest.raises(ClusterSourceError, match="worker:2 is not in its cluster"):
        this_task(e, layout(e, JOBS))
