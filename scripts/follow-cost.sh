#!/usr/bin/env bash
# What following costs (issue 23; BENCHMARKS.md, "Owners supervise"): two cluster nodes over
# three nats-servers, A takes a GPS fleet of 1,000 QUIC devices for 10 s, B only follows.
# Prints the fleet's figures, how soon after it B has read every input, and each node's CPU
# seconds over the run. Run inside scripts/jetstream-cluster.sh:
#
#   scripts/jetstream-cluster.sh scripts/follow-cost.sh BIN LABEL [RATE]
#
# BIN holds vaka and vaka-load (release builds); RATE is fixes/s offered (default 5,000).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$1 label=$2 rate=${3:-5000}
work=${WORK:-/tmp/vaka-follow-cost}
cd "$root"
. "$root/scripts/fleet-work.sh"
rm -rf da db && mkdir -p da db
mk() { # node, data dir, port offset
  sed -e "s#^data_dir = .*#data_dir = \"./$2\"#" \
      -e "s#^sip_udp = .*#sip_udp = \"127.0.0.1:$((5060+$3))\"#" \
      -e "s#^sip_tcp = .*#sip_tcp = \"127.0.0.1:$((5060+$3))\"#" \
      -e "s#^sip_tls = .*#sip_tls = \"127.0.0.1:$((5061+$3))\"#" \
      -e "s#^quic = .*#quic = \"127.0.0.1:$((4433+$3))\"#" \
      -e "s#^grpc = .*#grpc = \"127.0.0.1:$((50051+$3))\"#" \
      -e "s#^http = .*#http = \"127.0.0.1:$((9100+$3))\"#" fleet.toml > node-$1.toml
  servers=$(printf '"%s", ' $NATS_URLS)
  mon='"http://127.0.0.1:14322", "http://127.0.0.1:14323", "http://127.0.0.1:14324"'
  printf '\n[cluster]\nnode_id = "%s"\nservers = [%s]\nmonitoring = [%s]\n' "$1" "${servers%, }" "$mon" >> node-$1.toml
}
mk a da 0; mk b db 10
$bin/vaka serve --config node-a.toml > a.log 2>&1 & A=$!
for _ in $(seq 1 600); do grep -q "vaka ready" a.log && break; sleep 0.1; done
$bin/vaka serve --config node-b.toml > b.log 2>&1 & B=$!
for _ in $(seq 1 600); do grep -q "vaka ready" b.log && break; sleep 0.1; done
cpu() { awk '{print ($14+$15)/100}' /proc/$1/stat; }
b0=$(cpu $B); a0=$(cpu $A)
$bin/vaka-load gps-fleet --config node-a.toml --certs certs --rate $rate --devices 1000 --duration 10 --json gps-$label.json >/dev/null 2>&1
end=$(date +%s.%N)
last=$(curl -s http://127.0.0.1:9100/metrics | awk '/^vaka_cluster_inputs_appended_total/ {s+=$2} END {print s}')
# B caught up: its read mark reaches the stream's end (A's appends are all the inputs).
for i in $(seq 1 600); do
  rs=$(curl -s http://127.0.0.1:9110/metrics | awk '/^vaka_cluster_input_read_sequence/ {print $2}')
  [ "${rs%.*}" -ge "${last%.*}" ] 2>/dev/null && break
  sleep 0.1
done
caught=$(echo "$(date +%s.%N) - $end" | bc)
b1=$(cpu $B); a1=$(cpu $A)
python3 -c "import json;r=json.load(open('gps-$label.json'));a=r['latency_ms']['ack'];print('$label: acked',r['acked'],'of',r['sent'],'%.0f/s'%r['throughput_per_s'],'ack p50/p99',a['p50'],a['p99'])"
echo "$label: inputs $last, B caught up ${caught}s after the fleet ended; CPU s during the run: A $(echo "$a1-$a0"|bc) B $(echo "$b1-$b0"|bc)"
kill -TERM $A $B; wait $A $B 2>/dev/null
