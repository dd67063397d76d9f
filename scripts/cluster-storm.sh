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
    "$bin/vaka-load" alarm-storm --config fleet.toml --certs certs --rate 1000 --duration 10 \
        --centre --json "storm-$label.json" >/dev/null
    show "$label storm" "storm-$label.json"
    "$bin/vaka-load" gps-fleet --config fleet.toml --certs certs --rate "$gps_rate" --devices "$gps_devices" --duration 10 \
        --json "gps-$label.json" >/dev/null
    show "$label gps" "gps-$label.json"
    # A cluster node: the inputs it appended, per lane (GPS fixes per telemetry input).
    curl -s http://127.0.0.1:9100/metrics | grep '^vaka_cluster_inputs_appended_total' || true
    kill -TERM $engine
    wait $engine || true
}

for r in $(seq 1 "$runs"); do
    echo "--- pair $r"
    run single fleet.toml
    # The cluster: the same engine joined to three nats-servers (a fresh stream each time).
    "$root/scripts/jetstream-cluster.sh" bash -c '
        set -euo pipefail
        . "'"$root"'/scripts/cluster-config.sh" "'"${CLUSTER_EXTRA:-}"'"
        '"$(declare -f run show); bin='$bin' gps_rate='$gps_rate' gps_devices='$gps_devices'"'
        run cluster cluster.toml
    '
done
