//! An alarm-records input as `VAKA_IN` holds it (issue 23, "Alarm replicas"): one format byte,
//! then the records (postcard, the store's encoding) of the alarms one batch of the appending
//! node changed in one partition, each with its version, and the id range the node gives its
//! ids from now. The appending node (the input's `Vaka-Node`) is the alarms' holder, and its
//! range tells this run of it from an earlier one (a node whose data dir was wiped comes back
//! under its name with a new range, without the alarms it held); every other node keeps the
//! records as replicas.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use vaka_core::Alarm;

/// The first byte of every alarm-records input ([`crate::events::FORMAT`] is device events').
pub const FORMAT: u8 = 2;

/// An alarm as its holder changed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmRecord {
    /// How many audit records the alarm had after the change: grows with every change.
    pub version: u32,
    pub alarm: Alarm,
}

/// What one alarm-records input holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmRecords {
    /// The id range of the node that appended them (`crate::id_range`).
    pub holder_range: u64,
    pub records: Vec<AlarmRecord>,
}

pub fn encode(records: &AlarmRecords) -> Bytes {
    let mut out = vec![FORMAT];
    postcard::to_io(records, &mut out).expect("serialising to a Vec cannot fail");
    Bytes::from(out)
}

/// The records of an input in this format; `None`: another format (device events).
pub fn decode(bytes: &[u8]) -> Option<Result<AlarmRecords, String>> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => Some(postcard::from_bytes(rest).map_err(|e| e.to_string())),
        _ => None,
    }
}

/// The `Nats-Msg-Id` an alarm-records input is appended under: its bytes' digest, so an append
/// sent again after a failure is stored once.
pub fn msg_id(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("a{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaka_core::alarm::{AlarmKind, AlarmState, Stages};
    use vaka_core::{AlarmId, DeviceKey};

    fn alarm(id: u64) -> Alarm {
        Alarm {
            id: AlarmId(id),
            device: DeviceKey::new("t", "d"),
            reference: "r".into(),
            kind: AlarmKind::Help,
            code: "help".into(),
            priority: 1,
            text: Some("fell".into()),
            callback: vec![],
            state: AlarmState::Pending,
            step: 0,
            deadline: None,
            repeats: 0,
            created_ms: 1,
            updated_ms: 2,
            stages: Stages::default(),
            test: false,
        }
    }

    #[test]
    fn records_come_back_as_encoded_and_events_are_not_taken_for_records() {
        let mut records = AlarmRecords {
            holder_range: 4,
            records: vec![
                AlarmRecord {
                    version: 3,
                    alarm: alarm(7),
                },
                AlarmRecord {
                    version: 1,
                    alarm: alarm(9),
                },
            ],
        };
        let bytes = encode(&records);
        assert_eq!(decode(&bytes).unwrap().unwrap(), records);
        assert!(decode(&bytes[..bytes.len() - 2]).unwrap().is_err());
        assert!(decode(&crate::events::encode(&[])).is_none());
        assert!(crate::events::decode(&bytes)
            .unwrap_err()
            .contains("format 2"));
        assert_eq!(msg_id(&bytes), msg_id(&encode(&records)));
        records.records.pop();
        assert_ne!(msg_id(&bytes), msg_id(&encode(&records)));
    }
}
