//! A device-event input as `VAKA_IN` holds it: one format byte, then the events (postcard, the
//! store's encoding). An alarm-lane event is one input; a telemetry batch is one input per
//! partition.

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use vaka_core::Event;

/// The first byte of every device-event input; another value is refused when read.
pub const FORMAT: u8 = 1;

pub fn encode(events: &[Event]) -> Bytes {
    let mut out = vec![FORMAT];
    postcard::to_io(events, &mut out).expect("serialising to a Vec cannot fail");
    Bytes::from(out)
}

pub fn decode(bytes: &[u8]) -> Result<Vec<Event>, String> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => postcard::from_bytes(rest).map_err(|e| e.to_string()),
        Some((other, _)) => Err(format!("input format {other}, this build reads {FORMAT}")),
        None => Err("an empty input".into()),
    }
}

/// The idempotency key an event is appended under (`Nats-Msg-Id`): the same for a resend of
/// the same message by the same device, to any node. Hashed, since device ids and keys may
/// hold characters a message id must not.
pub fn msg_id(event: &Event) -> String {
    let mut h = Sha256::new();
    for part in [
        event.device.tenant.to_string().as_str(),
        event.device.device.to_string().as_str(),
        event.key.as_str(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaka_core::{DeviceKey, EventKind};

    fn ev(device: &str, key: &str) -> Event {
        Event {
            device: DeviceKey::new("t", device),
            key: key.into(),
            received_ms: 1_700_000_000_000,
            kind: EventKind::Heartbeat,
            fix: None,
            raw: b"<mrq/>".to_vec(),
            occurred_ms: Some(1_699_999_999_000),
        }
    }

    #[test]
    fn events_come_back_as_encoded_and_another_format_is_refused() {
        let events = vec![ev("a", "1"), ev("b", "2")];
        let bytes = encode(&events);
        assert_eq!(decode(&bytes).unwrap(), events);
        let mut other = bytes.to_vec();
        other[0] = 2;
        assert!(decode(&other).unwrap_err().contains("format 2"));
        assert!(decode(&[]).is_err());
        assert!(decode(&bytes[..bytes.len() - 3]).is_err());
    }

    #[test]
    fn the_key_is_the_device_and_its_key_and_always_a_valid_message_id() {
        let a = msg_id(&ev("a", "1"));
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        let mut later = ev("a", "1");
        later.received_ms += 5_000;
        assert_eq!(msg_id(&later), a, "a resend has the original's key");
        assert_ne!(msg_id(&ev("a", "2")), a);
        assert_ne!(msg_id(&ev("a 1", "")), msg_id(&ev("a", " 1")));
    }
}
