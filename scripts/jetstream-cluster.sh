#!/usr/bin/env bash
# Runs a command against a throwaway cluster of three nats-servers on loopback (R3-capable,
# JetStream file storage in a temp dir, `sync_interval: always`, as the cluster tests start
# them), then stops the servers and removes their files. The command gets the client URLs in
# $NATS_URLS (space-separated). Example:
#   scripts/jetstream-cluster.sh sh -c 'cargo run -p vaka-cluster --example append_rate -- 5 $NATS_URLS'
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
bin="${NATS_SERVER:-$(command -v nats-server || echo "$HOME/.local/bin/nats-server")}"
[ -x "$bin" ] || { echo "nats-server not found: run scripts/install-deps.sh" >&2; exit 1; }
base="${NATS_BASE_PORT:-14222}"
dir="$(mktemp -d /tmp/vaka-js-cluster.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
routes="nats-route://127.0.0.1:$((base + 200)), nats-route://127.0.0.1:$((base + 201)), nats-route://127.0.0.1:$((base + 202))"
urls=()
for i in 0 1 2; do
  mkdir -p "$dir/s$i"
  cat > "$dir/s$i/server.conf" <<CONF
server_name: s$i
listen: 127.0.0.1:$((base + i))
http: 127.0.0.1:$((base + 100 + i))
jetstream { store_dir: "$dir/s$i/js", sync_interval: always }
cluster { name: vaka-bench, listen: 127.0.0.1:$((base + 200 + i)), routes: [$routes] }
CONF
  "$bin" -c "$dir/s$i/server.conf" > "$dir/s$i/server.log" 2>&1 &
  pids+=($!)
  urls+=("nats://127.0.0.1:$((base + i))")
done
# Ready when every server knows a JetStream meta leader.
for _ in $(seq 1 300); do
  ready=0
  for i in 0 1 2; do
    curl -fs "http://127.0.0.1:$((base + 100 + i))/jsz" | grep -q '"leader": *"s' && ready=$((ready + 1))
  done
  [ "$ready" -eq 3 ] && break
  sleep 0.1
done
[ "$ready" -eq 3 ] || { echo "no JetStream meta leader within 30 s; logs in $dir" >&2; trap - EXIT; exit 1; }
NATS_URLS="${urls[*]}" "$@"
