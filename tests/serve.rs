//! `vaka serve`: starts, serves /metrics, and on SIGTERM or SIGINT drains and exits 0 within its bound.
#[path = "support/binary.rs"]
mod binary;

use binary::{free_tcp_port as free_port, get_metrics};
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn start(dir: &std::path::Path, http: u16) -> Child {
    let cfg = dir.join("vaka.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\ndata_dir = \"{}\"\nshutdown_timeout_secs = 5\n[listen]\nhttp = \"127.0.0.1:{http}\"\ngrpc = \"127.0.0.1:0\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_vaka"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The exporter listens before the store is open: ready is when recovery has been reported.
fn wait_ready(port: u16) -> String {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(b) = get_metrics(port) {
            if b.contains("200 OK") && b.contains("vaka_store_recovery_seconds") {
                return b;
            }
        }
        assert!(Instant::now() < until, "vaka did not serve /metrics");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal_and_wait(child: &mut Child, sig: &str) -> (i32, Duration, String) {
    let t = Instant::now();
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code().unwrap_or(-1), t.elapsed(), err);
        }
        assert!(t.elapsed() < Duration::from_secs(15), "vaka did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serves_metrics_and_stops_cleanly_on_signals() {
    let dir = tempfile::tempdir().unwrap();
    for sig in ["-TERM", "-INT"] {
        let port = free_port();
        let mut child = start(dir.path(), port);
        let body = wait_ready(port);
        assert!(
            body.contains("# TYPE vaka_store_recovery_seconds gauge"),
            "{body}"
        );
        let (code, took, log) = signal_and_wait(&mut child, sig);
        assert_eq!(code, 0, "exit after {sig}: {log}");
        assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
        assert!(log.contains("shutdown complete"), "{log}");
        // The second start recovers the store the first one closed.
        assert!(log.contains("store recovered"), "{log}");
    }
}

/// `vaka certs` writes the demo PKI for every tenant and device of a configuration; the files are
/// what `[quic]` and the device library read.
#[test]
fn certs_writes_a_ca_per_tenant_and_a_certificate_per_device() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let status = Command::new(env!("CARGO_BIN_EXE_vaka"))
        .args(["certs", "--config", "config/vaka.toml", "--dir"])
        .arg(&out)
        .current_dir(
            std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR: run by cargo"),
        )
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    for f in [
        "server-ca.pem",
        "server.pem",
        "server-key.pem",
        "demo/ca.pem",
        "demo/100001.pem",
        "demo/100001-key.pem",
        "demo/100002.pem",
        "demo/100003-key.pem",
    ] {
        let text = std::fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(text.starts_with("-----BEGIN "), "{f} is not PEM");
    }
}
