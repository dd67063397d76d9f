#!/usr/bin/env bash
# What a reconciliation pass costs as VAKA_IN grows (issue 23; BENCHMARKS.md, "Retention and
# reconciliation a pass at a time"): one cluster node (reconcile_every_ms = 5000) over three
# local nats-servers, ROUNDS rounds of the GPS fleet (10 s each, GPS_RATE/s from GPS_DEVICES
# devices); after each round, the stream's size, the node's passes meanwhile (mean time,
# inputs checked per pass) and the time to read the whole stream once (what every pass cost
# before: `examples/read_cost.rs`).
#
#   scripts/reconcile-cost.sh [ROUNDS]      release binaries from $CARGO_TARGET_DIR/release
#
# Builds nothing: run `cargo build --release --workspace --bins --examples` first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rounds=${1:-4}
bin=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/vaka/target}/release}
work=${WORK:-/tmp/vaka-reconcile-cost}
gps_rate=${GPS_RATE:-5000}
gps_devices=${GPS_DEVICES:-1000}
. "$root/scripts/fleet-work.sh"
rm -rf data
"$root/scripts/jetstream-cluster.sh" bash -c '
    set -euo pipefail
    . "'"$root"'/scripts/cluster-config.sh" "reconcile_every_ms = 5000"
    http=$(python3 -c "import tomllib; print(tomllib.load(open(\"cluster.toml\",\"rb\"))[\"listen\"][\"http\"])")
    '"$bin"'/vaka serve --config cluster.toml >serve.log 2>&1 &
    engine=$!
    for _ in $(seq 1 600); do grep -q "vaka ready" serve.log && break; sleep 0.1; done
    metric() { curl -s "http://$http/metrics" | awk -v n="$1" "\$1 == n {print \$2}"; }
    prev_sum=0; prev_count=0; prev_inputs=0
    for r in $(seq 1 '"$rounds"'); do
        '"$bin"'/vaka-load gps-fleet --config fleet.toml --certs certs --rate '"$gps_rate"' \
            --devices '"$gps_devices"' --duration 10 --json gps.json >/dev/null
        sleep 11   # two passes after the load
        sum=$(metric vaka_cluster_reconciliation_seconds_sum); count=$(metric vaka_cluster_reconciliation_seconds_count)
        inputs=$(metric vaka_cluster_reconciled_inputs_total)
        read=$('"$bin"'/examples/read_cost "${NATS_URLS%% *}")
        python3 -c "
s, c, i = $sum - $prev_sum, $count - $prev_count, $inputs - $prev_inputs
print(f\"round $r: passes {c:.0f}, mean {1000*s/max(c,1):.1f} ms, {i/max(c,1):.0f} inputs checked per pass; whole-stream read: $read\")"
        prev_sum=$sum; prev_count=$count; prev_inputs=$inputs
    done
    kill -TERM $engine; wait $engine || true
'
