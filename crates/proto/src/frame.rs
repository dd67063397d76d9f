//! Length-delimited framing: a protobuf varint length, then the message.
use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

use crate::pb;

/// A varint length prefix takes at most this many bytes.
pub const MAX_LENGTH_PREFIX: usize = 10;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// The length prefix announces more than the receiver accepts.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u64, max: usize },
    /// The length prefix is not a valid varint.
    #[error("invalid frame length prefix")]
    BadLength,
}

/// Appends `msg` to `buf` as one frame.
pub fn encode_frame(msg: &impl Message, buf: &mut impl BufMut) {
    // Both calls fail only when a fixed-size buffer runs out of space; callers that pass one
    // (rather than a growing Vec or BytesMut) get a truncated frame, never a panic.
    let _ = prost::encode_length_delimiter(msg.encoded_len(), buf);
    let _ = msg.encode(buf);
}

/// `ClientFrame.events` (field 2) and `EventFrame.events` (field 1), both length-delimited.
const CLIENT_EVENTS_KEY: u8 = 2 << 3 | 2;
const FRAME_EVENT_KEY: u8 = 1 << 3 | 2;

/// Encoded size of one event inside an `EventFrame` (tag, length, body).
pub fn event_entry_len(ev: &pb::Event) -> usize {
    let n = ev.encoded_len();
    1 + prost::length_delimiter_len(n) + n
}

/// Size of the frame (without its own length prefix) holding events whose entries add up to
/// `entries` bytes (see [`event_entry_len`]).
pub fn events_frame_len(entries: usize) -> usize {
    1 + prost::length_delimiter_len(entries) + entries
}

/// Appends one `ClientFrame{events}` frame holding `events` to `buf`, encoding from references
/// (the same bytes as building the message and calling [`encode_frame`], without the copies).
pub fn encode_events_frame<'a, I>(events: I, buf: &mut impl BufMut)
where
    I: IntoIterator<Item = &'a pb::Event>,
    I::IntoIter: Clone,
{
    let events = events.into_iter();
    let entries: usize = events.clone().map(event_entry_len).sum();
    let _ = prost::encode_length_delimiter(events_frame_len(entries), buf);
    buf.put_u8(CLIENT_EVENTS_KEY);
    let _ = prost::encode_length_delimiter(entries, buf);
    for ev in events {
        buf.put_u8(FRAME_EVENT_KEY);
        let _ = ev.encode_length_delimited(buf);
    }
}

/// Takes the next complete frame (without its prefix) off the front of `buf`, or `Ok(None)` when
/// more bytes are needed. A prefix announcing more than `max` bytes is an error as soon as the
/// prefix itself is complete, so an oversized frame is never buffered.
pub fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, FramingError> {
    let mut len: u64 = 0;
    let mut prefix = 0;
    loop {
        let Some(&b) = buf.get(prefix) else {
            return Ok(None);
        };
        if prefix == MAX_LENGTH_PREFIX - 1 && b > 1 {
            return Err(FramingError::BadLength);
        }
        len |= u64::from(b & 0x7f) << (7 * prefix);
        prefix += 1;
        if b & 0x80 == 0 {
            break;
        }
        if prefix == MAX_LENGTH_PREFIX {
            return Err(FramingError::BadLength);
        }
    }
    if len > max as u64 {
        return Err(FramingError::TooLarge { len, max });
    }
    let len = len as usize;
    if buf.len() < prefix + len {
        return Ok(None);
    }
    buf.advance(prefix);
    Ok(Some(buf.split_to(len).freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_frame_from_references_matches_prost() {
        let events: Vec<pb::Event> = (0..300)
            .map(|i| pb::Event {
                occurred_ms: None,
                key: format!("k{i}"),
                device: "x".repeat(i % 5),
                fix: None,
                body: Some(pb::event::Body::Telemetry(pb::Telemetry {
                    name: "t".repeat(i),
                    value: i as f64,
                })),
            })
            .collect();
        let mut ours = Vec::new();
        encode_events_frame(&events, &mut ours);
        let mut theirs = Vec::new();
        encode_frame(
            &pb::ClientFrame {
                kind: Some(pb::client_frame::Kind::Events(pb::EventFrame {
                    events: events.clone(),
                })),
            },
            &mut theirs,
        );
        assert_eq!(ours, theirs);
        let entries: usize = events.iter().map(event_entry_len).sum();
        assert_eq!(
            events_frame_len(entries) + prost::length_delimiter_len(events_frame_len(entries)),
            ours.len()
        );
    }

    #[test]
    fn frames_round_trip_in_any_chunking() {
        let mut wire = Vec::new();
        for i in 0..50 {
            let hello = pb::Hello {
                software: "x".repeat(i * 7),
                version: i.to_string(),
                gateway: i % 2 == 0,
            };
            encode_frame(
                &pb::ClientFrame {
                    kind: Some(pb::client_frame::Kind::Hello(hello)),
                },
                &mut wire,
            );
        }
        for chunk in [1, 2, 3, 7, 64, 1000] {
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(f) = split_frame(&mut buf, 1 << 20).unwrap() {
                    got.push(pb::ClientFrame::decode(f).unwrap());
                }
            }
            assert_eq!(got.len(), 50, "chunk {chunk}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn oversized_prefix_is_refused_before_the_body() {
        let mut buf = BytesMut::new();
        prost::encode_length_delimiter(1_000_001, &mut buf).unwrap();
        assert_eq!(
            split_frame(&mut buf, 1_000_000),
            Err(FramingError::TooLarge {
                len: 1_000_001,
                max: 1_000_000
            })
        );
    }

    #[test]
    fn bad_prefix_is_an_error_and_short_prefix_waits() {
        let mut buf = BytesMut::from(&[0xffu8; 11][..]);
        assert_eq!(
            split_frame(&mut buf, usize::MAX),
            Err(FramingError::BadLength)
        );
        let mut buf = BytesMut::from(&[0xffu8, 0xff][..]);
        assert_eq!(split_frame(&mut buf, usize::MAX), Ok(None));
        let mut buf = BytesMut::from(&[0u8][..]);
        assert_eq!(split_frame(&mut buf, 10), Ok(Some(Bytes::new())));
    }
}
