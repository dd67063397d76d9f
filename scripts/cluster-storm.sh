#!/usr/bin/env bash
# Single node against a cluster node, side by side in one run (issue 23; BENCHMARKS.md,
# "Device events through the input log"): the alarm storm (1,000 alarms/s for 10 s over QUIC,
# a centre receipting) and the GPS fleet (QUIC, 10 s), each on a fresh data dir, first on the
# engine alone, then on the same engine with a [cluster] section over three local nats-servers
# (scripts/jetstream-cluster.sh: R3, `sync_interval: always`), where every device event is
# appended to VAKA_IN before it is answered. RUNS pairs, alternating.
#
#   scripts/cluster-storm.sh [RUNS]      release binaries from $CARGO_TARGET_DIR/release
#   BIN=/some/dir scripts/cluster-storm.sh   other binaries (vaka, vaka-load)
#   GPS_RATE=10000 GPS_DEVICES=1000 scripts/cluster-storm.sh
#                                        the GPS fleet's offered rate and devices (default
#                                        20,000/s from all 10,000: past this VM's capacity)
#   CLUSTER_EXTRA='telemetry_linger_ms = 100' scripts/cluster-storm.sh
#                                        one more line in the cluster node's [cluster] section
#   NODES=3 scripts/cluster-storm.sh     a cluster of three: two more nodes (n2, n3, ports +10
#                                        and +20) join once n1 is ready, follow the stream and
#                                        take their share of the partitions; the load goes to n1
#
# Builds nothing: run `cargo build --release --workspace --bins` first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runs=${1:-1}
bin=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/vaka/target}/release}
work=${WORK:-/tmp/vaka-cluster-storm}
gps_rate=${GPS_RATE:-20000}
gps_devices=${GPS_DEVICES:-10000}
nodes=${NODES:-1}
. "$root/scripts/fleet-work.sh"

show() {
    python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
lat = r.get("latency_ms", {})
a, o = lat.get("ack", {}), lat.get("offer", {})
print(f'{sys.argv[1]}: sent {r["sent"]} acked {r["acked"]} lost {r["lost"]} '
      f'{r["throughput_per_s"]:.0f}/s ack p50/p99 {a.get("p50")}/{a.get("p99")} '
      f'offer p50/p99 {o.get("p50")}/{o.get("p99")} errors {r["errors"]}')
PY
}

# One engine on a fresh data dir with config $1, the storm and the GPS fleet, then stopped.
run() {
    local label=$1 config=$2
    rm -rf data
    "$bin/vaka" serve --config "$config" >"serve-$label.log" 2>&1 &
    local engine=$!
    for _ in $(seq 1 600); do grep -q "vaka ready" "serve-$label.log" && break; sleep 0.1; done
    grep -q "vaka ready" "serve-$label.log" || { echo "$label: engine not ready" >&2; tail "serve-$label.log" >&2; kill $engine; return 1; }
    local others=()
    if [ "$label" = cluster ] && [ "$nodes" = 3 ]; then
        for n in 2 3; do
            local off=$(( (n - 1) * 10 ))
            sed -e "s/node_id = \"n1\"/node_id = \"n$n\"/" \
                -e "s|^data_dir = \"./data\"|data_dir = \"./data-n$n\"|" \
                -e "s/:5060\"/:$((5060 + off))\"/g" -e "s/:5061\"/:$((5061 + off))\"/" \
                -e "s/:4433\"/:$((4433 + off))\"/" -e "s/:50051\"/:$((50051 + off))\"/" \
                -e "s/:9100\"/:$((9100 + off))\"/" "$config" >"n$n.toml"
            rm -rf "data-n$n"
            "$bin/vaka" serve --config "n$n.toml" >"serve-n$n.log" 2>&1 &
            others+=($!)
            for _ in $(seq 1 600); do grep -q "vaka ready" "serve-n$n.log" && break; sleep 0.1; done
            grep -q "vaka ready" "serve-n$n.log" || { echo "n$n: engine not ready" >&2; tail "serve-n$n.log" >&2; kill $engine "${others[@]}"; return 1; }
        done
        # The partitions spread over the three before the load starts.
        sleep 5
    fi
    "$bin/vaka-load" alarm-storm --config fleet.toml --certs certs --rate 1000 --duration 10 \
        --centre --json "storm-$label.json" >/dev/null
    show "$label storm" "storm-$label.json"
    "$bin/vaka-load" gps-fleet --config fleet.toml --certs certs --rate "$gps_rate" --devices "$gps_devices" --duration 10 \
        --json "gps-$label.json" >/dev/null
    show "$label gps" "gps-$label.json"
    # A cluster node: the inputs it appended, per lane (GPS fixes per telemetry input).
    curl -s http://127.0.0.1:9100/metrics | grep '^vaka_cluster_inputs_appended_total' || true
    if [ ${#others[@]} -gt 0 ]; then
        # What following n1 cost the others: the inputs they stored from the stream.
        for n in 2 3; do
            curl -s "http://127.0.0.1:$((9100 + (n - 1) * 10))/metrics" |
                grep -E '^vaka_cluster_(inputs_followed_total|answers_followed_total|replicas_kept_total)' |
                sed "s/^/n$n: /" || true
        done
    fi
    kill -TERM $engine "${others[@]}"
    wait $engine "${others[@]}" || true
}

for r in $(seq 1 "$runs"); do
    echo "--- pair $r"
    run single fleet.toml
    # The cluster: the same engine joined to three nats-servers (a fresh stream each time).
    "$root/scripts/jetstream-cluster.sh" bash -c '
        set -euo pipefail
        . "'"$root"'/scripts/cluster-config.sh" "'"${CLUSTER_EXTRA:-}"'"
        '"$(declare -f run show); bin='$bin' gps_rate='$gps_rate' gps_devices='$gps_devices' nodes='$nodes'"'
        run cluster cluster.toml
    '
done
