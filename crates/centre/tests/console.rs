//! The `vaka-centre` console client as a script uses it: `--json` prints one object per line,
//! offers are receipted at once, `accept` and `close` on stdin act on the alarm.
mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use support::*;
use vaka_core::AlarmState;
use vaka_router::Clock;
use vaka_store::{Backend, MemBackend};

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> serde_json::Value {
    let line = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("vaka-centre prints within 20 s");
    let line = line.expect("vaka-centre ended early");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not one JSON object: {line:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_client_prints_json_and_takes_commands() {
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let w = World::start(backend, Clock::new(), test_config()).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_vaka-centre"))
        .args([
            "--addr",
            &w.addr.to_string(),
            "--token",
            &token("cc"),
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut stdin = child.stdin.take().unwrap();

    let welcome = next(&mut rx).await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["centre"], "cc");
    eventually("cc reachable", || w.is_reachable("cc")).await;

    let (id, _) = w.raise("c", "d3", "r1").await;
    let offer = next(&mut rx).await;
    assert_eq!(offer["type"], "offer");
    assert_eq!(offer["alarm"]["alarm_id"], id.0);
    assert_eq!(offer["alarm"]["device"], "d3");
    assert_eq!(offer["alarm"]["text"], "fallen in the kitchen");
    let receipt = next(&mut rx).await;
    assert_eq!(receipt["type"], "result");
    assert_eq!(receipt["ok"], true, "{receipt}");

    writeln!(stdin, "accept {} op-9", id.0).unwrap();
    let r = next(&mut rx).await;
    assert_eq!(
        (r["type"].as_str(), r["ok"].as_bool()),
        (Some("result"), Some(true)),
        "{r}"
    );
    writeln!(stdin, "close {} visited all well", id.0).unwrap();
    let r = next(&mut rx).await;
    assert_eq!(r["ok"], true, "{r}");
    // A refused command is reported, not fatal.
    writeln!(stdin, "accept 999999 op-9").unwrap();
    let r = next(&mut rx).await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["code"], "NOT_FOUND");
    writeln!(stdin, "audit {}", id.0).unwrap();
    let mut actions = Vec::new();
    for _ in 0..5 {
        let a = next(&mut rx).await;
        assert_eq!(a["type"], "audit");
        actions.push(a["action"].as_str().unwrap().to_string());
    }
    assert_eq!(
        actions,
        ["received", "offered to cc", "receipt", "accepted", "closed"]
    );
    writeln!(stdin, "quit").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());

    let alarm = vaka_store::load_alarm(w.backend.as_ref(), id)
        .unwrap()
        .unwrap();
    assert_eq!(
        alarm.state,
        AlarmState::Closed {
            centre: vaka_core::CentreId::new("cc"),
            outcome: "visited: all well".into()
        }
    );
    w.shutdown().await;
}

#[test]
fn console_client_without_credentials_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_vaka-centre"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_client_with_a_wrong_token_exits_with_the_reason() {
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let w = World::start(backend, Clock::new(), test_config()).await;
    let out = tokio::task::spawn_blocking({
        let addr = w.addr.to_string();
        move || {
            Command::new(env!("CARGO_BIN_EXE_vaka-centre"))
                .args(["--addr", &addr, "--token", "not-a-valid-token"])
                .stdin(Stdio::null())
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown token"), "{err}");
    w.shutdown().await;
}
