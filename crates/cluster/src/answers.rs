//! An answers input as `VAKA_IN` holds it (issue 23, "One alarm for two receivers"): one format
//! byte, then the answers (postcard) one committed batch of the appending node gave to devices'
//! alarm-lane messages in one partition. Every other node records them as if it had given them,
//! so a device that sends the same message to its second receiver (another node) is answered
//! there as its first receiver answered it: the same event and alarm, never a second alarm.
//!
//! Appended only once the batch is stored (never before, unlike the alarm records): a batch
//! that fails after its append would otherwise leave the other nodes answering a resend from an
//! alarm nobody holds. An answers input lost on the way costs a second alarm, never a lost one.

use bytes::Bytes;
use vaka_core::idempotency::GivenAnswer;

/// The first byte of every answers input ([`crate::events::FORMAT`] is device events',
/// [`crate::alarm_records::FORMAT`] alarm records').
pub const FORMAT: u8 = 3;

pub fn encode(answers: &[GivenAnswer]) -> Bytes {
    let mut out = vec![FORMAT];
    postcard::to_io(answers, &mut out).expect("serialising to a Vec cannot fail");
    Bytes::from(out)
}

/// The answers of an input in this format; `None`: another format.
pub fn decode(bytes: &[u8]) -> Option<Result<Vec<GivenAnswer>, String>> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => Some(postcard::from_bytes(rest).map_err(|e| e.to_string())),
        _ => None,
    }
}

/// The `Nats-Msg-Id` an answers input is appended under: its bytes' digest, so an append sent
/// again after a failure is stored once.
pub fn msg_id(bytes: &[u8]) -> String {
    format!("n{}", &crate::alarm_records::msg_id(bytes)[1..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaka_core::idempotency::{Answer, IdemKey};
    use vaka_core::{AlarmId, DeviceKey, EventId};

    fn given(key: &str, alarm: Option<u64>) -> GivenAnswer {
        GivenAnswer {
            key: IdemKey {
                device: DeviceKey::new("t", "d"),
                key: key.into(),
            },
            answer: Answer {
                event: EventId(7),
                alarm: alarm.map(AlarmId),
            },
        }
    }

    #[test]
    fn answers_come_back_as_encoded_and_no_other_input_is_taken_for_them() {
        let answers = vec![given("fall-1", Some(7)), given("cancel-1", None)];
        let bytes = encode(&answers);
        assert_eq!(decode(&bytes).unwrap().unwrap(), answers);
        assert!(decode(&bytes[..bytes.len() - 2]).unwrap().is_err());
        assert!(decode(&crate::events::encode(&[])).is_none());
        let records = crate::alarm_records::encode(&crate::alarm_records::AlarmRecords {
            holder_range: 1,
            records: vec![],
        });
        assert!(decode(&records).is_none());
        assert!(crate::alarm_records::decode(&bytes).is_none());
        assert!(crate::events::decode(&bytes)
            .unwrap_err()
            .contains("format 3"));
        assert_ne!(msg_id(&bytes), crate::alarm_records::msg_id(&bytes));
        assert_ne!(msg_id(&bytes), msg_id(&encode(&answers[..1])));
    }
}
