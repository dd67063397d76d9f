//! The crash-safety tests' shared parts: run `vaka-crash-writer` (the real engine writing
//! through the router, printing each event the moment it is acknowledged durable), SIGKILL it,
//! and check a store against what it acknowledged. Used by `crash_safety.rs` (SIGKILL) and
//! `power_loss.rs` (SIGKILL and the unsynced writes thrown away).
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use vaka_core::idempotency::IdemKey;
use vaka_core::{Alarm, DeviceKey};
use vaka_store::keys::{decode_idem_key, id_key};
use vaka_store::*;

pub struct Ack {
    pub id: u64,
    device: String,
    key: String,
    alarm: bool,
}

pub fn run_and_kill(data: &std::path::Path, round: usize, kill_after: Duration) -> Vec<Ack> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vaka-crash-writer"))
        .arg(data)
        .arg(format!("r{round}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start crash writer");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let parts: Vec<&str> = line.split(' ').collect();
            if parts.len() == 5 && parts[0] == "ack" {
                acks.push(Ack {
                    id: parts[1].parse().unwrap(),
                    device: parts[2].into(),
                    key: parts[3].into(),
                    alarm: parts[4] == "alarm",
                });
            }
        }
        acks
    });
    std::thread::sleep(kill_after);
    child.kill().expect("SIGKILL"); // std's kill is SIGKILL on unix
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the writer must have been killed, not have exited"
    );
    reader.join().unwrap()
}

/// Opens the store in `data` and checks every acknowledged event is there and no write set was
/// half applied; returns the alarms stored.
pub fn verify(data: &std::path::Path, acks: &[Ack], round: usize) -> usize {
    let backend = Arc::new(RocksBackend::open(&RocksConfig::new(data.join("db"))).unwrap());
    // Recovery itself checks the open-alarm index against the alarm records.
    let (store, _rec) = Store::open(
        backend.clone(),
        GroupConfig::default(),
        RecoverOptions {
            now_ms: i64::MAX / 2,
            idem_window_ms: i64::MAX,
        },
    )
    .unwrap_or_else(|e| panic!("round {round}: store does not recover: {e}"));

    for a in acks {
        let v = backend
            .get(Cf::Events, &id_key(a.id))
            .unwrap()
            .unwrap_or_else(|| panic!("round {round}: acked event {} ({}) lost", a.id, a.key));
        let stored: StoredEvent = postcard::from_bytes(&v).unwrap();
        assert_eq!(
            stored.event.key, a.key,
            "round {round}: event {} is another event",
            a.id
        );
        if a.alarm {
            let k = IdemKey {
                device: DeviceKey::new("t", a.device.clone()),
                key: a.key.clone(),
            };
            let rec = backend
                .get(Cf::Idem, &vaka_store::keys::idem_key(&k))
                .unwrap();
            assert!(
                rec.is_some(),
                "round {round}: acked alarm {} has no idempotency entry",
                a.key
            );
        }
    }

    // No half-applied write set: each record's companions are there.
    let mut events = HashSet::new();
    backend
        .scan(Cf::Events, &[], &mut |k, _| {
            events.insert(k.to_vec());
            true
        })
        .unwrap();
    let mut alarms = 0;
    backend
        .scan(Cf::Alarms, &[], &mut |k, v| {
            let alarm: Alarm = postcard::from_bytes(v).unwrap();
            assert!(
                events.contains(k),
                "round {round}: alarm {} without its event",
                alarm.id
            );
            let audit = vaka_store::keys::audit_key(alarm.id, 0);
            assert!(
                backend.get(Cf::Audit, &audit).unwrap().is_some(),
                "round {round}: alarm {} without its audit trail",
                alarm.id
            );
            alarms += 1;
            true
        })
        .unwrap();
    backend
        .scan(Cf::Idem, &[], &mut |k, v| {
            let rec: IdemRecord = postcard::from_bytes(v).unwrap();
            assert!(decode_idem_key(k).is_some());
            assert!(
                events.contains(&id_key(rec.answer.event.0)),
                "round {round}: idempotency entry without its event"
            );
            if let Some(a) = rec.answer.alarm {
                assert!(backend.get(Cf::Alarms, &id_key(a.0)).unwrap().is_some());
            }
            true
        })
        .unwrap();
    store.close().unwrap();
    alarms
}
