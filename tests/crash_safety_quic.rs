//! Invariant 1 (acked means durable) and 2 (one message, one alarm) through the whole QUIC path:
//! `vaka serve` runs as a child process; device clients (vaka-device, reconnecting) keep sending
//! alarm-lane events; the server is SIGKILLed under load and restarted several times. At the end
//! every event a client saw acknowledged is in the store, and every key is stored exactly once,
//! although the clients resent everything that was unanswered when the server died.
#[path = "support/binary.rs"]
mod binary;

use binary::{free_tcp_port, free_udp_port, vaka_bin};
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vaka_device::{events, pb, Client, DeviceConfig};
use vaka_store::{
    Backend, Cf, GroupConfig, RecoverOptions, RocksBackend, RocksConfig, Store, StoredEvent,
};

const DEVICES: usize = 8;
const KILLS: usize = 5;

fn write_config(dir: &Path, quic: u16) -> PathBuf {
    let certs = dir.join("certs");
    let mut text = format!(
        "[server]\ndata_dir = \"{data}\"\nlog_level = \"warn\"\nshutdown_timeout_secs = 5\n\
         [listen]\nquic = \"127.0.0.1:{quic}\"\nhttp = \"127.0.0.1:{http}\"\n\
         grpc = \"127.0.0.1:{grpc}\"\n\
         [router]\nshards = 2\n\
         [quic]\nserver_cert = \"{c}/server.pem\"\nserver_key = \"{c}/server-key.pem\"\n\
         tenant_cas = {{ t = \"{c}/t/ca.pem\" }}\n\
         [[tenants]]\nid = \"t\"\n",
        data = dir.join("data").display(),
        http = free_tcp_port(),
        grpc = free_tcp_port(),
        c = certs.display(),
    );
    for i in 0..DEVICES {
        text.push_str(&format!(
            "[[devices]]\ntenant = \"t\"\nid = \"d{i}\"\ntype = \"0003\"\n"
        ));
    }
    let path = dir.join("vaka.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start_server(config: &Path) -> Child {
    Command::new(vaka_bin())
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start vaka serve")
}

fn device_config(dir: &Path, addr: SocketAddr, device: &str) -> DeviceConfig {
    let c = dir.join("certs");
    let mut cfg = DeviceConfig::from_pem_files(
        addr,
        c.join("server-ca.pem"),
        c.join(format!("t/{device}.pem")),
        c.join(format!("t/{device}-key.pem")),
    )
    .unwrap();
    cfg.reconnect_min = Duration::from_millis(50);
    cfg.reconnect_max = Duration::from_millis(300);
    cfg.connect_timeout = Duration::from_secs(2);
    // A SIGKILLed server sends no close and its successor cannot reset connections it never knew
    // (stateless-reset keys differ): the client notices a dead server by idle timeout only.
    cfg.idle_timeout = Duration::from_secs(2);
    cfg.keep_alive = Some(Duration::from_millis(500));
    cfg
}

/// The first connection needs a running server; the server may still be opening its store.
async fn connect(cfg: DeviceConfig) -> Client {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        match Client::connect(cfg.clone()).await {
            Ok(c) => return c,
            Err(e) if Instant::now() < until && !e.is_fatal() => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("device cannot connect: {e}"),
        }
    }
}

/// Acknowledged (device, key) pairs, with whether the server called them a duplicate.
type Acks = Arc<Mutex<Vec<(String, String, bool)>>>;

/// Sends alarm-lane events until `stop`, several in flight at a time; every reply must be OK or
/// NOT_TREATED (no centre in this config) eventually, because the client resends across crashes.
async fn device_loop(client: Client, device: String, acks: Acks, stop: Arc<tokio::sync::Notify>) {
    let mut n = 0u64;
    let mut inflight = futures::stream::FuturesUnordered::new();
    let stopped = stop.notified();
    tokio::pin!(stopped);
    let mut stopping = false;
    loop {
        while !stopping && inflight.len() < 16 {
            let key = format!("{device}-{n}");
            let ev = if n.is_multiple_of(5) {
                events::technical(key.clone(), "0301", n.is_multiple_of(10))
            } else {
                events::alarm(key.clone(), "0010", 5)
            };
            n += 1;
            let mut futs = client.submit(vec![ev]).await.expect("submit");
            let fut = futs.pop().unwrap();
            inflight.push(async move { (key, fut.await) });
        }
        use futures::StreamExt;
        tokio::select! {
            _ = &mut stopped, if !stopping => stopping = true,
            done = inflight.next() => match done {
                Some((key, Ok(reply))) => {
                    let st = reply.status();
                    assert!(
                        matches!(st, pb::Status::Ok | pb::Status::NotTreated),
                        "{device} {key}: {st:?} {}", reply.reason
                    );
                    acks.lock().unwrap().push((device.clone(), key, reply.duplicate));
                }
                Some((key, Err(e))) => panic!("{device} {key}: {e}"),
                None if stopping => break,
                None => {}
            }
        }
    }
    client.close().await;
}

fn stored_keys(data: &Path) -> HashMap<(String, String), usize> {
    let backend = Arc::new(RocksBackend::open(&RocksConfig::new(data.join("db"))).unwrap());
    let (store, _rec) = Store::open(
        backend.clone(),
        GroupConfig::default(),
        RecoverOptions {
            now_ms: i64::MAX / 2,
            idem_window_ms: i64::MAX,
        },
    )
    .expect("store recovers");
    let mut keys = HashMap::new();
    backend
        .scan(Cf::Events, &[], &mut |_, v| {
            let s: StoredEvent = postcard::from_bytes(v).unwrap();
            *keys
                .entry((s.event.device.device.to_string(), s.event.key.clone()))
                .or_insert(0) += 1;
            true
        })
        .unwrap();
    store.close().unwrap();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_quic_load_loses_no_acked_event_and_resends_make_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..DEVICES).map(|i| format!("d{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    vaka_ingest::certs::generate_demo(&dir.path().join("certs"), "t", &refs).unwrap();
    let port = free_udp_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let config = write_config(dir.path(), port);

    let mut server = start_server(&config);
    let acks: Acks = Arc::default();
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for name in &names {
        let client = connect(device_config(dir.path(), addr, name)).await;
        tasks.push(tokio::spawn(device_loop(
            client,
            name.clone(),
            acks.clone(),
            stop.clone(),
        )));
    }

    let mut acked_at_kill = Vec::new();
    for round in 0..KILLS {
        // Kill only under load: wait until the clients are acknowledged by this server.
        let before = acked_at_kill.last().copied().unwrap_or(0);
        let until = Instant::now() + Duration::from_secs(30);
        while acks.lock().unwrap().len() <= before {
            assert!(
                Instant::now() < until,
                "round {round}: no acks after restart"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let wait = rand::rng().random_range(300..900);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        server.kill().expect("SIGKILL");
        server.wait().unwrap();
        acked_at_kill.push(acks.lock().unwrap().len());
        // Let the clients notice and start reconnecting against nothing.
        tokio::time::sleep(Duration::from_millis(200)).await;
        server = start_server(&config);
        eprintln!(
            "round {round}: killed after {wait} ms, {} acked so far",
            acked_at_kill[round]
        );
    }
    // Load on the last server for a while, then stop sending; every event gets its answer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.notify_waiters();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("every event answered after the last restart")
            .expect("device task");
    }
    server.kill().unwrap();
    server.wait().unwrap();

    let acks = acks.lock().unwrap().clone();
    let stored = stored_keys(&dir.path().join("data"));
    let mut seen = HashSet::new();
    for (device, key, _) in &acks {
        assert!(
            seen.insert((device, key)),
            "{device} {key} acknowledged twice"
        );
        let n = stored.get(&(device.clone(), key.clone())).copied();
        assert_eq!(n, Some(1), "{device} {key}: acked, stored {n:?} times");
    }
    let duplicates = acks.iter().filter(|a| a.2).count();
    let dup_keys = stored.values().filter(|&&n| n > 1).count();
    assert_eq!(dup_keys, 0, "keys stored more than once");
    // Resends happened (some events were in flight at each kill) and every kill found acks to check.
    assert!(
        acked_at_kill.windows(2).all(|w| w[1] > w[0]),
        "load went on between kills: {acked_at_kill:?}"
    );
    eprintln!(
        "{} events acknowledged across {KILLS} SIGKILLs, {duplicates} answered as duplicates of a \
         stored original, all stored exactly once",
        acks.len()
    );
}
