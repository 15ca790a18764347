#!/usr/bin/env bash
# TF_CONFIG, TensorFlow's own cluster convention, on three loopback "hosts" of this machine:
# one `dfc serve` per task of the spec's cluster, each told its task by TF_CONFIG, then the
# client, which reads the same variable (and ignores its task). On a real cluster each
# host sets TF_CONFIG with its own task and runs `dfc serve SPEC --cluster tf_config`.
#
#   examples/tf_config.sh [--set K=V ...] [-- dfc run options ...]
#   examples/tf_config.sh --set N=4096 -- --json matmul.json
#
# SPEC (default specs/matmul.yaml: 2 workers, 2 reducers) picks the program, and
# SERVE_OPTIONS adds options to every `dfc serve` (--trust-network, --idle-timeout S).
set -euo pipefail
spec=${SPEC:-specs/matmul.yaml}
sets=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do sets+=("$1"); shift; done
[ $# -gt 0 ] && shift  # the --
# one machine: one port per task (a TensorFlow server listens on its port of every address)
cluster='{"worker": ["127.0.0.2:23480", "127.0.0.3:23481"], "reducer": ["127.0.0.4:23482", "127.0.0.2:23483"]}'

servers=()
stop_servers() {
    for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_servers EXIT
trap 'exit 130' INT TERM
# (${a[@]+"${a[@]}"}: an empty array under set -u, on bash before 4.4 too)
for task in worker:0 worker:1 reducer:0 reducer:1; do
    TF_CONFIG="{\"cluster\": $cluster, \"task\": {\"type\": \"${task%:*}\", \"index\": ${task#*:}}}" \
        dfc serve "$spec" --cluster tf_config ${sets[@]+"${sets[@]}"} ${SERVE_OPTIONS:-} >/dev/null </dev/null &
    servers+=($!)
done
# the client's preflight waits for the servers (at most 60 s), then runs and releases them
rc=0
TF_CONFIG="{\"cluster\": $cluster}" dfc run "$spec" --cluster tf_config ${sets[@]+"${sets[@]}"} "$@" || rc=$?
exit "$rc"
