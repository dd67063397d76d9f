//! Invariant 12, while running: `vaka serve` on a small tmpfs that fills up. Alarms are answered
//! busy, gRPC health says NOT_SERVING and /metrics shows the failure; once space returns alarms
//! are stored again without a restart and health says SERVING; SIGTERM exits 0 also while failed.
//! Needs root (to mount); skipped, saying why, otherwise.
#[path = "support/binary.rs"]
mod binary;

use binary::{free_tcp_port, free_udp_port, get_metrics, vaka_bin};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
use vaka_device::pb::Status;
use vaka_device::{events, Client, DeviceConfig};

const DEVICE: &str = "d0";

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Fills the filesystem until a write fails; the file is the space to give back.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 16 << 10];
    let mut written = 0;
    while f.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    let _ = f.sync_all();
    written
}

struct Engine {
    child: Child,
    quic: SocketAddr,
    grpc: SocketAddr,
    http: u16,
    certs: PathBuf,
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(root: &Path, data: &Path) -> Engine {
    let certs = root.join("certs");
    vaka_ingest::certs::generate_demo(&certs, "t", &[DEVICE]).unwrap();
    let quic: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let grpc: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let http = free_tcp_port();
    let text = format!(
        "[server]\ndata_dir = \"{data}\"\nlog_level = \"warn\"\nshutdown_timeout_secs = 5\n\
         [listen]\nquic = \"{quic}\"\ngrpc = \"{grpc}\"\nhttp = \"127.0.0.1:{http}\"\n\
         [router]\nshards = 1\n\
         [store]\nwrite_buffer_mb = 1\n\
         [quic]\nserver_cert = \"{c}/server.pem\"\nserver_key = \"{c}/server-key.pem\"\n\
         tenant_cas = {{ t = \"{c}/t/ca.pem\" }}\n\
         [[tenants]]\nid = \"t\"\ncentres = [\"c1\"]\n\
         [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"token-of-centre-c1\"\n\
         [[devices]]\ntenant = \"t\"\nid = \"{DEVICE}\"\ntype = \"0003\"\n",
        data = data.display(),
        c = certs.display(),
    );
    let config = root.join("vaka.toml");
    std::fs::write(&config, text).unwrap();
    let child = Command::new(vaka_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start vaka serve");
    Engine {
        child,
        quic,
        grpc,
        http,
        certs,
    }
}

impl Engine {
    async fn device(&self) -> Client {
        let cfg = DeviceConfig::from_pem_files(
            self.quic,
            self.certs.join("server-ca.pem"),
            self.certs.join(format!("t/{DEVICE}.pem")),
            self.certs.join(format!("t/{DEVICE}-key.pem")),
        )
        .unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            match Client::connect(cfg.clone()).await {
                Ok(c) => return c,
                Err(e) if Instant::now() < until && !e.is_fatal() => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("device cannot connect: {e}"),
            }
        }
    }

    async fn health(&self) -> ServingStatus {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.grpc))
            .unwrap()
            .connect()
            .await
            .expect("centre API accepts");
        let r = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        ServingStatus::try_from(r.status).unwrap()
    }

    async fn wait_health(&self, want: ServingStatus, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let now = self.health().await;
            if now == want {
                return start.elapsed();
            }
            assert!(start.elapsed() < within, "health {now:?}, not {want:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn metric(&self, name: &str) -> Option<f64> {
        let text = get_metrics(self.http)?;
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
    }

    /// SIGTERM and the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < until,
                "vaka serve did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

async fn alarm(client: &Client, key: &str) -> Status {
    let reply = client
        .send(events::alarm(key.to_string(), "0010", 5))
        .await
        .expect("a reply");
    reply.status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_store_loudly_and_it_recovers_when_space_returns() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let mnt = root.path().join("small");
    let _fs = match Tmpfs::mount(&mnt, "16m") {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("SKIPPED: cannot mount a tmpfs here: {e}");
            return;
        }
    };
    let mut engine = start(root.path(), &mnt.join("data"));
    let client = engine.device().await;
    assert_eq!(alarm(&client, "before-1").await, Status::NotTreated);
    engine
        .wait_health(ServingStatus::Serving, Duration::from_secs(5))
        .await;

    // Fill the disk: the next alarms cannot be stored and are answered busy.
    let filler = mnt.join("filler");
    let filled = fill(&filler);
    let mut busy = 0;
    for i in 0..200 {
        match alarm(&client, &format!("full-{i}")).await {
            Status::Busy => busy += 1,
            Status::NotTreated => assert_eq!(busy, 0, "stored after a refusal"),
            other => panic!("unexpected {other:?}"),
        }
        if busy >= 5 {
            break;
        }
    }
    assert!(busy >= 5, "the full disk never refused an alarm");
    engine
        .wait_health(ServingStatus::NotServing, Duration::from_secs(2))
        .await;
    assert_eq!(engine.metric("vaka_store_failed"), Some(1.0));
    assert!(engine.metric("vaka_store_failures_total") >= Some(1.0));

    // Space returns: stored again, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let mut stored_after = None;
    for i in 0..200 {
        if alarm(&client, &format!("after-{i}")).await == Status::NotTreated {
            stored_after = Some(freed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored_after = stored_after.expect("alarms never stored again after space returned");
    let healthy_after = engine
        .wait_health(ServingStatus::Serving, Duration::from_secs(5))
        .await
        + stored_after;
    assert_eq!(engine.metric("vaka_store_failed"), Some(0.0));
    eprintln!(
        "filled {filled} bytes; {busy} alarms busy; space freed -> stored again in {stored_after:?}, \
         health SERVING by {healthy_after:?}"
    );

    // Full again, and SIGTERM while failed still exits 0.
    fill(&filler);
    let mut refused = false;
    for i in 0..200 {
        if alarm(&client, &format!("again-{i}")).await == Status::Busy {
            refused = true;
            break;
        }
    }
    assert!(refused, "the second fill never refused an alarm");
    client.close().await;
    let status = engine.terminate();
    assert!(status.success(), "SIGTERM of a failed store: {status}");

    // And the engine starts again on the same store once there is room.
    std::fs::remove_file(&filler).unwrap();
    let mut engine = start(root.path(), &mnt.join("data"));
    let client = engine.device().await;
    assert_eq!(alarm(&client, "restarted").await, Status::NotTreated);
    client.close().await;
    assert!(engine.terminate().success());
}
