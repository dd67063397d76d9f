#!/usr/bin/env bash
# The overload runs of BENCHMARKS.md ("Overload from the socket on"): an alarm storm alone,
# then the same storm under a GPS flood, on a fresh data dir, PAIRS times.
#
#   scripts/overload.sh [PAIRS]          release binaries from $CARGO_TARGET_DIR/release
#   BIN=/some/dir scripts/overload.sh 3  other binaries (vaka, vaka-load), e.g. an older build
#   TRANSPORT=quic scripts/overload.sh   both over QUIC instead of SIP/UDP
#   TRANSPORT=quic QUIC_TELEMETRY=127.0.0.1:4434 scripts/overload.sh
#                                        the flood on the engine's QUIC telemetry port
#                                        (listen.quic_telemetry) instead of the alarm port
#
# Each storm also leaves a per-second plot of its latency (alone$p.svg, loaded$p.svg in WORK),
# and its line says how long the hypervisor stopped this VM's vCPUs meanwhile ("host stalls":
# /proc/stat steal, sampled every 20 ms; a stall of 50 ms or more is counted). On the 2-vCPU
# VMs these figures come from, a vCPU stopped ~100 ms under full load is what makes the
# occasional tail (BENCHMARKS.md, "The tail under a flood is the host's"); and how many of the
# store's synced writes took over 25 and 100 ms (a slow disk, the host's I/O, shows there).
#
# Builds nothing: run `cargo build --release --workspace --bins` first. The fleet (10,000 load
# devices on config/vaka.toml, every source allowed 100,000 unauthenticated answers a second
# because all simulated devices share 127.0.0.1) and its certificates are made once in WORK.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-3}
bin=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/vaka/target}/release}
work=${WORK:-/tmp/vaka-overload}
transport=${TRANSPORT:-sip-udp}
mkdir -p "$work"
if [ ! -f "$work/fleet.toml" ]; then
    "$bin/vaka-load" fleet-config --devices 10000 >"$work/fleet.toml"
    sed -i 's/^unauthenticated_rate = [0-9]*/unauthenticated_rate = 100000/;
            s/^unauthenticated_burst = [0-9]*/unauthenticated_burst = 100000/' "$work/fleet.toml"
    "$bin/vaka" certs --config "$work/fleet.toml" --dir "$work/certs" >/dev/null
fi
cd "$work"
rm -rf data
cp fleet.toml run.toml
flood_at=()
if [ -n "${QUIC_TELEMETRY:-}" ]; then
    sed -i "/^\[listen\]/a quic_telemetry = \"$QUIC_TELEMETRY\"" run.toml
    flood_at=(--server "$QUIC_TELEMETRY")
fi
"$bin/vaka" serve --config run.toml >serve.log 2>&1 &
engine=$!
trap 'kill -TERM $engine 2>/dev/null; wait $engine 2>/dev/null' EXIT
for _ in $(seq 1 300); do grep -q "vaka ready" serve.log && break; sleep 0.1; done
common=(--config fleet.toml --certs certs --transport "$transport")
show() {
    python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
lat = r["latency_ms"]
o, a = lat.get("offer", {}), lat["ack"]
print(f'{sys.argv[1]}: sent {r["sent"]} acked {r["acked"]} delivered {r.get("delivered")} '
      f'lost {r["lost"]} ack p50/p99 {a["p50"]}/{a["p99"]} offer p50/p99/max '
      f'{o.get("p50")}/{o.get("p99")}/{o.get("max")} errors {r["errors"]}')
PY
}
# Samples every vCPU's steal time every 20 ms until killed; at exit (SIGTERM) prints the total
# and the stalls of 50 ms or more, with their times since start.
steal_watch() {
    exec python3 -u - "$1" <<'PY'
import signal, sys, time
def read():
    return {f[0]: int(f[8]) for f in (l.split() for l in open("/proc/stat"))
            if f[0].startswith("cpu") and f[0] != "cpu"}
tick_ms = 10  # USER_HZ is 100 on Linux
start, prev, total, stalls = time.time(), read(), 0, []
def done(*_):
    at = ", ".join(f"{t:.1f}s {ms} ms" for t, ms in stalls[:8])
    print(f"{sys.argv[1]}: host stalls: steal {total} ms, {len(stalls)} of >= 50 ms on a vCPU"
          + (f" ({at})" if at else ""))
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    time.sleep(0.02)
    cur = read()
    for cpu, ticks in cur.items():
        ms = (ticks - prev[cpu]) * tick_ms
        total += ms
        if ms >= 50:
            stalls.append((time.time() - start, ms))
    prev = cur
PY
}
# The store's synced writes so far: "count over_25ms over_100ms" (vaka_store_commit_seconds).
commits() {
    curl -s http://127.0.0.1:9100/metrics | awk '
        /^vaka_store_commit_seconds_count/ { n = $NF }
        /^vaka_store_commit_seconds_bucket\{le="0.025"\}/ { a = $NF }
        /^vaka_store_commit_seconds_bucket\{le="0.1"\}/ { b = $NF }
        END { printf "%d %d %d\n", n, n - a, n - b }'
}
# One storm, named $1 (its .json, .svg, .txt, .steal in WORK): its latency line, how long the
# host stopped the vCPUs meanwhile, and what the store's synced writes took (a slow disk, the
# host's I/O, shows as writes over 100 ms).
storm() {
    steal_watch "$1" >"$1.steal" &
    local watch=$!
    local n0 a0 b0 n1 a1 b1
    read -r n0 a0 b0 <<<"$(commits)"
    "$bin/vaka-load" alarm-storm "${common[@]}" --rate 1000 --duration 10 --centre \
        --json "$1.json" --plot "$1.svg" >"$1.txt" 2>&1
    kill -TERM $watch && wait $watch
    read -r n1 a1 b1 <<<"$(commits)"
    show "$1.json"
    cat "$1.steal"
    echo "$1: store commits $((n1 - n0)), over 25 ms $((a1 - a0)), over 100 ms $((b1 - b0))"
}
# Events the engine has received so far, all fronts (its metrics on listen.http).
received() {
    curl -s http://127.0.0.1:9100/metrics |
        awk '/^vaka_events_received_total/ { n += $NF } END { printf "%d\n", n }'
}
# QUIC devices connect first (10,000 take about 12 s here), so over QUIC the flood lasts long
# enough to cover the storm's own connecting and its 10 s.
flood_secs=14
[ "$transport" = quic ] && flood_secs=40
for p in $(seq 1 "$pairs"); do
    storm "alone$p"
    # The flood's generator yields to the storm's, which measures.
    nice -n 10 "$bin/vaka-load" gps-fleet "${common[@]}" "${flood_at[@]}" --rate 20000 \
        --duration "$flood_secs" --sip-timeout-ms 5000 --json "flood$p.json" >"flood$p.txt" 2>&1 &
    flood=$!
    # The storm starts once the flood flows (5,000 events in), not while it connects.
    before=$(received)
    for _ in $(seq 1 120); do
        [ $(($(received) - before)) -gt 5000 ] && break
        sleep 0.5
    done
    sleep 1
    storm "loaded$p"
    wait $flood
    python3 -c "import json; r = json.load(open('flood$p.json')); print('flood$p: sent', r['sent'], 'acked', r['acked'], 'errors', r['errors'])"
done
echo "engine RSS: $(($(ps -o rss= -p $engine) / 1024)) MiB"
