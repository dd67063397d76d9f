//! The shipped configuration (config/vaka.toml) as `make run` starts it, on free ports: its centre
//! API speaks TLS only, so a plaintext centre connection is refused (bearer tokens never cross
//! the network in the clear), and a centre that trusts the demo CA gets in.
#[path = "support/binary.rs"]
mod binary;

use binary::{free_tcp_port, free_udp_port, free_udp_tcp_port, vaka_bin};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vaka_centre::console::{self, ClientTls};
use vaka_centre::pb;

/// config/vaka.toml with its data, certificates and ports moved into `dir`.
fn shipped_config(dir: &std::path::Path) -> (std::path::PathBuf, u16) {
    let text = std::fs::read_to_string(format!(
        "{}/config/vaka.toml",
        std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR: run by cargo")
    ))
    .unwrap();
    let grpc = free_tcp_port();
    // One port for SIP over UDP and TCP, as the shipped file has it.
    let sip = free_udp_tcp_port();
    let moved = text
        .replace("\"./data\"", &format!("\"{}\"", dir.join("data").display()))
        .replace("\"certs/", &format!("\"{}/certs/", dir.display()))
        .replace("0.0.0.0:50051", &format!("0.0.0.0:{grpc}"))
        .replace("0.0.0.0:5060", &format!("127.0.0.1:{sip}"))
        .replace("0.0.0.0:5061", &format!("127.0.0.1:{}", free_tcp_port()))
        .replace("0.0.0.0:4433", &format!("127.0.0.1:{}", free_udp_port()))
        .replace("127.0.0.1:9100", &format!("127.0.0.1:{}", free_tcp_port()));
    assert!(
        moved.contains(&format!("0.0.0.0:{grpc}")),
        "listen.grpc moved"
    );
    let path = dir.join("vaka.toml");
    std::fs::write(&path, moved).unwrap();
    (path, grpc)
}

struct Stop(Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_centre_api_refuses_plaintext_and_serves_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (config, grpc) = shipped_config(dir.path());
    let certs = Command::new(vaka_bin())
        .args(["certs", "--config"])
        .arg(&config)
        .arg("--dir")
        .arg(dir.path().join("certs"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(certs.success());
    let _server = Stop(
        Command::new(vaka_bin())
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr = format!("127.0.0.1:{grpc}");
    let ca = dir.path().join("certs/server-ca.pem");
    let tls = || ClientTls {
        ca: Some(&ca),
        ..ClientTls::default()
    };
    // A centre that trusts the demo CA gets in (waiting for the server to come up).
    let until = Instant::now() + Duration::from_secs(30);
    let mut client = loop {
        match console::connect(&addr, Some("demo-centre-token"), tls()).await {
            Ok(mut c) => {
                if c.list_open_alarms(pb::ListOpenAlarmsRequest::default())
                    .await
                    .is_ok()
                {
                    break c;
                }
            }
            Err(e) => assert!(Instant::now() < until, "centre API never came up: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(client
        .list_open_alarms(pb::ListOpenAlarmsRequest::default())
        .await
        .is_ok());
    // The same call in plaintext with the right token: refused, no answer.
    let plain = match console::connect(&addr, Some("demo-centre-token"), ClientTls::default()).await
    {
        Err(_) => None,
        Ok(mut c) => Some(
            c.list_open_alarms(pb::ListOpenAlarmsRequest::default())
                .await,
        ),
    };
    assert!(
        !matches!(plain, Some(Ok(_))),
        "a plaintext centre was served: {plain:?}"
    );
}
