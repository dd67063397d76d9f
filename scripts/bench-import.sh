#!/usr/bin/env bash
# Times a bulk import of N devices (CSV, default 10,000) through the admin API of a fresh
# `vaka serve` on a temporary data directory, and reads the server's RSS (VmRSS) before and
# after. Prints the figures for BENCHMARKS.md ("Admin API: bulk import").
#
#   scripts/bench-import.sh [N]
#
# The binary: $VAKA_BIN, else ${CARGO_TARGET_DIR:-target}/release/vaka if built, else .../debug/vaka
# (build one with `cargo build --workspace --bins [--release]`). Needs curl and python3 (free ports).
set -euo pipefail

N=${1:-10000}
TARGET=${CARGO_TARGET_DIR:-target}
if [[ -n "${VAKA_BIN:-}" ]]; then
    BIN=$VAKA_BIN
elif [[ -x "$TARGET/release/vaka" ]]; then
    BIN=$TARGET/release/vaka
else
    BIN=$TARGET/debug/vaka
fi
[[ -x "$BIN" ]] || { echo "no vaka binary at $BIN: cargo build --workspace --bins" >&2; exit 1; }
case "$BIN" in
    */release/*) PROFILE=release ;;
    */debug/*) PROFILE=debug ;;
    *) PROFILE="unknown ($BIN)" ;;
esac

free_port() {
    python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1]=="udp" else socket.SOCK_STREAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1"
}

WORK=$(mktemp -d)
PID=
cleanup() {
    if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
        kill "$PID"
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

HTTP=$(free_port tcp)
GRPC=$(free_port tcp)
SIP=$(free_port udp)
TOKEN=bench-import-operator-token
cat >"$WORK/vaka.toml" <<EOF
[server]
data_dir = "$WORK/data"
log_level = "warn"
[listen]
sip_udp = "127.0.0.1:$SIP"
grpc = "127.0.0.1:$GRPC"
http = "127.0.0.1:$HTTP"
[sip]
udp = true
tcp = false
tls = false
[admin]
bootstrap_token = "$TOKEN"
[[tenants]]
id = "bench"
centres = ["c1"]
[[centres]]
id = "c1"
tenants = ["bench"]
token = "bench-import-centre-token"
EOF

# The file: N devices with a password (stored as HA1), heartbeat and chain.
{
    echo "id,type,password,heartbeat_secs,centres"
    seq -f "%06g" 1 "$N" | awk '{ printf "9%s,0003,pw-%s,600,c1\n", $1, $1 }'
} >"$WORK/devices.csv"

"$BIN" serve --config "$WORK/vaka.toml" &
PID=$!
URL=http://127.0.0.1:$HTTP/api/v1
for _ in $(seq 1 300); do
    curl -fs -o /dev/null "$URL/openapi.json" && break
    kill -0 "$PID" 2>/dev/null || { echo "vaka serve exited" >&2; exit 1; }
    sleep 0.1
done
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status"; }

RSS_BEFORE=$(rss)
START=$(date +%s.%N)
curl -fsS -X POST -H "Authorization: Bearer $TOKEN" -H "Content-Type: text/csv" \
    --data-binary @"$WORK/devices.csv" "$URL/tenants/bench/device-imports" >"$WORK/answer.ndjson"
END=$(date +%s.%N)
RSS_AFTER=$(rss)
SUMMARY=$(tail -n 1 "$WORK/answer.ndjson")
grep -q "\"created\":$N" <<<"$SUMMARY" || { echo "not every row created: $SUMMARY" >&2; exit 1; }

# The same file again: every row unchanged.
START2=$(date +%s.%N)
curl -fsS -X POST -H "Authorization: Bearer $TOKEN" -H "Content-Type: text/csv" \
    --data-binary @"$WORK/devices.csv" "$URL/tenants/bench/device-imports" >"$WORK/again.ndjson"
END2=$(date +%s.%N)
RSS_AGAIN=$(rss)

# The same directory after a restart: what the 10,000 devices cost when loaded from the store,
# without what the import itself left in the allocator.
kill "$PID"
wait "$PID" 2>/dev/null || true
"$BIN" serve --config "$WORK/vaka.toml" &
PID=$!
for _ in $(seq 1 300); do
    curl -fs -o /dev/null "$URL/openapi.json" && break
    kill -0 "$PID" 2>/dev/null || { echo "vaka serve exited on restart" >&2; exit 1; }
    sleep 0.1
done
RSS_RESTART=$(rss)

echo "binary:        $BIN ($PROFILE)"
echo "devices:       $N ($(wc -c <"$WORK/devices.csv") bytes of CSV)"
echo "import:        $(secs "$START" "$END") s   $SUMMARY"
echo "second run:    $(secs "$START2" "$END2") s   $(tail -n 1 "$WORK/again.ndjson")"
echo "server VmRSS:  before $((RSS_BEFORE / 1024)) MiB, after the import $((RSS_AFTER / 1024)) MiB, after the second run $((RSS_AGAIN / 1024)) MiB, after a restart with the $N devices $((RSS_RESTART / 1024)) MiB"
