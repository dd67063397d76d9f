//! Interoperability: a Python centre using grpcio, with stubs generated from proto/centre.proto at
//! test time (grpcio-tools), connects, is offered a device alarm, confirms and accepts it.
//! Needs python3 with grpcio and grpcio-tools (scripts/install-deps.sh installs them); without
//! them this test fails and says so; it never skips.
mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use support::*;
use vaka_core::AlarmState;
use vaka_router::Clock;
use vaka_store::{Backend, MemBackend};

fn python_ready() {
    let ok = Command::new("python3")
        .args(["-c", "import grpc, grpc_tools.protoc"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python3 with grpcio and grpcio-tools is required for this test: run \
         scripts/install-deps.sh (or `python3 -m pip install grpcio grpcio-tools`)"
    );
}

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> serde_json::Value {
    let line = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("python client answers within 60 s");
    match line {
        Some(l) => serde_json::from_str(&l).expect("one JSON object per line"),
        None => panic!("python client ended early"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_centre_receives_an_offer_and_accepts_it() {
    python_ready();
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let w = World::start(backend, Clock::new(), test_config()).await;
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR: run by cargo"),
    );
    let proto = manifest.join("../../proto");
    let script = manifest.join("tests/python/centre_client.py");
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(&proto)
        .arg(out.path())
        .arg(w.addr.to_string())
        .arg(token("cc"))
        .arg("py-op")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let welcome = next(&mut rx).await;
    assert_eq!(welcome["event"], "welcome");
    assert_eq!(welcome["centre"], "cc");
    eventually("cc reachable", || w.is_reachable("cc")).await;

    let (id, _) = w.raise("c", "d7", "r1").await;
    let offer = next(&mut rx).await;
    assert_eq!(offer["event"], "offer");
    assert_eq!(offer["alarm_id"], id.0);
    assert_eq!(offer["device"], "d7");
    assert_eq!(offer["callback"][0], "gsm:+46701234567");
    assert_eq!(offer["lat"], 57.7089);
    let accepted = next(&mut rx).await;
    assert_eq!(accepted["event"], "accepted");
    let audit = next(&mut rx).await;
    assert_eq!(
        audit["actions"],
        serde_json::json!(["received", "offered to cc", "receipt", "accepted"])
    );
    assert_eq!(audit["operator"], "py-op");

    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "python client failed: {err}");
    let alarm = vaka_store::load_alarm(w.backend.as_ref(), id)
        .unwrap()
        .unwrap();
    assert!(
        matches!(&alarm.state, AlarmState::Accepted { operator, .. } if operator == "py-op"),
        "{:?}",
        alarm.state
    );
    w.shutdown().await;
}
