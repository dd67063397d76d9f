//! End-to-end vaka/1 throughput and memory: QUIC server (router, RocksDB with synced group commit)
//! in a child process, device clients in this one, both on 127.0.0.1. Every counted event was
//! acknowledged durable.
//!
//! `cargo bench -p vaka-benches --bench quic_e2e [-- gateways|devices|idle] [SECONDS]`
//! (under `cargo test` it only prints how to run it).
//!
//! - gateways: 100 gateway connections, each sending frames of 100 telemetry events for its
//!   10 devices, 4 frames in flight per connection.
//! - devices: 1,000 device connections, one event per frame, one in flight per connection.
//! - idle: server RSS before and after 10,000 connections that then stay idle; per connection.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vaka_core::directory::{Device, Directory, Tenant};
use vaka_core::{DeviceId, DeviceKey};
use vaka_device::{events, pb, Client, DeviceConfig};
use vaka_ingest::quic::{QuicConfig, QuicServer};
use vaka_router::{Clock, Presence, Router, RouterConfig};
use vaka_store::{GroupConfig, RecoverOptions, RocksBackend, RocksConfig, Store};

const GATEWAYS: usize = 100;
const PER_GATEWAY: usize = 10;
const DEVICES: usize = 1_000;
const IDLE: usize = 10_000;

fn names() -> (Vec<String>, Vec<String>) {
    let gws = (0..GATEWAYS).map(|g| format!("g{g}")).collect();
    let n = DEVICES.max(GATEWAYS * PER_GATEWAY).max(IDLE);
    let devs = (0..n).map(|d| format!("d{d}")).collect();
    (gws, devs)
}

fn directory() -> Directory {
    let (gws, devs) = names();
    let mut d = Directory::default();
    // One tenant carries the whole benchmark: its admission limits must not be what is measured.
    let unlimited = vaka_core::admission::Limit {
        per_sec: vaka_core::admission::MAX_LIMIT,
        burst: vaka_core::admission::MAX_LIMIT,
    };
    d.insert_tenant(Tenant {
        admission: vaka_core::admission::Limits {
            alarms: unlimited,
            telemetry: unlimited,
        },
        ..Tenant::new("t", &[])
    });
    let mut add = |id: &str, gateway_for: Vec<DeviceId>| {
        d.insert_device(Device {
            gateway_for,
            ..Device::new(DeviceKey::new("t", id), "0051")
        });
    };
    for id in &devs {
        add(id, vec![]);
    }
    for (g, id) in gws.iter().enumerate() {
        let mine = (0..PER_GATEWAY)
            .map(|i| DeviceId::new(format!("d{}", g * PER_GATEWAY + i)))
            .collect();
        add(id, mine);
    }
    d
}

/// The child: serves until its stdin closes.
fn server(dir: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let certs = dir.join("certs");
        let rc = RouterConfig::default();
        let backend = RocksBackend::open(&RocksConfig::new(dir.join("db"))).unwrap();
        let (store, rec) = Store::open(
            Arc::new(backend),
            GroupConfig::default(),
            RecoverOptions {
                now_ms: Clock::new().now_ms(),
                idem_window_ms: rc.idempotency_window_ms,
            },
        )
        .unwrap();
        let directory = Arc::new(directory());
        let router = Router::start(
            rc,
            store.clone(),
            rec,
            directory.clone(),
            Presence::new(),
            Clock::new(),
        );
        let cfg = QuicConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            server_cert: certs.join("server.pem"),
            server_key: certs.join("server-key.pem"),
            tenant_cas: BTreeMap::from([("t".to_string(), certs.join("t/ca.pem"))]),
            max_connections: IDLE + 1000,
            idle_timeout_secs: 600,
            ..QuicConfig::default()
        };
        let quic = QuicServer::start(&cfg, router.clone(), directory).unwrap();
        println!("addr {}", quic.local_addr());
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin()
                .read_line(&mut line)
                .map(|n| n > 0)
                .unwrap_or(false)
            {
                line.clear();
            }
        })
        .await
        .unwrap();
        quic.shutdown().await;
        router.shutdown().await;
        store.close().unwrap();
    });
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0 // utime + stime, in clock ticks (100 Hz on Linux)
}

fn config(certs: &Path, addr: SocketAddr, who: &str) -> DeviceConfig {
    let mut c = DeviceConfig::from_pem_files(
        addr,
        certs.join("server-ca.pem"),
        certs.join(format!("t/{who}.pem")),
        certs.join(format!("t/{who}-key.pem")),
    )
    .unwrap();
    c.keep_alive = None;
    c.idle_timeout = Duration::from_secs(600);
    c.connect_timeout = Duration::from_secs(60);
    c
}

/// Connects `who` over a few shared client endpoints (one UDP socket per connection would also
/// work; sharing keeps the client side cheap so the server is what is measured).
async fn connect_all(certs: &Path, addr: SocketAddr, who: &[String], gateway: bool) -> Vec<Client> {
    let eps: Vec<quinn::Endpoint> = (0..4)
        .map(|_| vaka_device::client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap())
        .collect();
    let mut out = Vec::with_capacity(who.len());
    for chunk in who.chunks(200) {
        let conns = chunk.iter().enumerate().map(|(i, w)| {
            let mut c = config(certs, addr, w);
            c.gateway = gateway;
            Client::connect_with(eps[i % eps.len()].clone(), c)
        });
        for c in futures::future::join_all(conns).await {
            out.push(c.expect("connect"));
        }
    }
    out
}

fn report(name: &str, acked: u64, secs: f64, server_cpu: f64) {
    println!(
        "{name}: {acked} events acknowledged durable in {secs:.1} s = {:.0} events/s \
         (server CPU {:.0}% of one core)",
        acked as f64 / secs,
        server_cpu / secs * 100.0
    );
}

async fn gateways(certs: &Path, addr: SocketAddr, pid: u32, secs: u64) {
    let (gws, _) = names();
    let clients = connect_all(certs, addr, &gws, true).await;
    let acked = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(secs);
    let cpu0 = cpu_secs(pid);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (g, client) in clients.into_iter().enumerate() {
        let client = Arc::new(client);
        for lane in 0..4 {
            let (client, acked) = (client.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < until {
                    let batch: Vec<pb::Event> = (0..100)
                        .map(|i| {
                            let d = g * PER_GATEWAY + i % PER_GATEWAY;
                            let mut e = events::telemetry(format!("{lane}-{n}-{i}"), "temp", 21.5);
                            e.device = format!("d{d}");
                            e
                        })
                        .collect();
                    n += 1;
                    let replies = client.send_batch(batch).await.expect("batch");
                    let ok = replies
                        .iter()
                        .filter(|r| r.status() == pb::Status::Ok)
                        .count();
                    acked.fetch_add(ok as u64, Ordering::Relaxed);
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    report(
        &format!("gateways ({GATEWAYS} connections, 100 events/frame)"),
        acked.load(Ordering::Relaxed),
        secs,
        cpu_secs(pid) - cpu0,
    );
}

async fn devices(certs: &Path, addr: SocketAddr, pid: u32, secs: u64) {
    let (_, devs) = names();
    let clients = connect_all(certs, addr, &devs[..DEVICES], false).await;
    let acked = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(secs);
    let cpu0 = cpu_secs(pid);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for client in clients {
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let r = client
                    .send(events::telemetry(format!("{n}"), "temp", 21.5))
                    .await
                    .expect("send");
                n += 1;
                if r.status() == pb::Status::Ok {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    report(
        &format!("devices ({DEVICES} connections, 1 event/frame)"),
        acked.load(Ordering::Relaxed),
        secs,
        cpu_secs(pid) - cpu0,
    );
}

async fn idle(certs: &Path, addr: SocketAddr, pid: u32) {
    let (_, devs) = names();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);
    let t0 = Instant::now();
    let clients = connect_all(certs, addr, &devs[..IDLE], false).await;
    let took = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    println!(
        "idle: {IDLE} connections in {:.1} s; server RSS {before} KiB -> {after} KiB = {:.1} KiB \
         per idle connection",
        took.as_secs_f64(),
        after.saturating_sub(before) as f64 / IDLE as f64
    );
    drop(clients);
}

fn main() {
    if let Ok(dir) = std::env::var("VAKA_BENCH_SERVER_DIR") {
        server(Path::new(&dir));
        return;
    }
    // `cargo test --all-targets` runs bench targets too (without `--bench`): this one loads the
    // machine for half a minute with 10,000 connections, so it only runs under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "quic_e2e: a benchmark; run it with `cargo bench -p vaka-benches --bench quic_e2e`"
        );
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let which: Vec<&str> = match args.first().map(String::as_str) {
        Some(w @ ("gateways" | "devices" | "idle")) => vec![w],
        _ => vec!["gateways", "devices", "idle"],
    };
    let secs: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(10);

    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let (gws, devs) = names();
    let all: Vec<&str> = gws.iter().chain(devs.iter()).map(String::as_str).collect();
    let t0 = Instant::now();
    vaka_ingest::certs::generate_demo(&certs, "t", &all).unwrap();
    eprintln!(
        "{} certificates in {:.1} s",
        all.len(),
        t0.elapsed().as_secs_f64()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for w in which {
        let data = dir.path().join(w);
        std::fs::create_dir_all(&data).unwrap();
        std::os::unix::fs::symlink(&certs, data.join("certs")).unwrap();
        // VAKA_BENCH_SERVER_WRAP runs the server under a profiler, e.g. "heaptrack" (the RSS
        // figures then include the profiler's own memory).
        let exe = std::env::current_exe().unwrap();
        let wrap = std::env::var("VAKA_BENCH_SERVER_WRAP").unwrap_or_default();
        let mut argv: Vec<std::ffi::OsString> = wrap.split_whitespace().map(Into::into).collect();
        argv.push(exe.into());
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .env("VAKA_BENCH_SERVER_DIR", &data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // The server's first line starting "addr " (a wrapper may print before it).
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let addr: SocketAddr = loop {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "the server exited");
            if let Some(a) = line.trim().strip_prefix("addr ") {
                break a.parse().unwrap();
            }
        };
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let pid = child.id();
        rt.block_on(async {
            match w {
                "gateways" => gateways(&certs, addr, pid, secs).await,
                "devices" => devices(&certs, addr, pid, secs).await,
                _ => idle(&certs, addr, pid).await,
            }
        });
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.flush();
        drop(stdin);
        child.wait().unwrap();
    }
}
