//! A `ClientFrame` parser that returns each event's exact wire bytes.
//!
//! Decoding a whole `ClientFrame` with prost would fail the frame on one bad event and would lose
//! the events' original bytes (prost drops unknown fields, re-encoding is not the raw message).
//! Walking the two outer message levels by hand is cheap and gives both: the events are then
//! decoded one by one with [`pb::Event::decode`](crate::pb::Event).
use crate::pb;
use prost::Message;

/// `ClientFrame.hello` and `ClientFrame.events`, `EventFrame.events`.
const CLIENT_HELLO: u64 = 1;
const CLIENT_EVENTS: u64 = 2;
const FRAME_EVENTS: u64 = 1;

/// A parsed `ClientFrame`, borrowing the frame's bytes.
#[derive(Debug, PartialEq)]
pub enum ClientFrameRef<'a> {
    Hello(pb::Hello),
    /// The wire bytes of each `Event`, in frame order; decode each with `pb::Event::decode`.
    Events(Vec<&'a [u8]>),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    #[error("malformed hello: {0}")]
    Hello(String),
    #[error("frame carries more than {max} events")]
    TooManyEvents { max: usize },
    #[error("empty frame: neither hello nor events")]
    Empty,
}

/// Parses one `ClientFrame`. `max_events` bounds the events of one frame: past it the parse stops
/// with [`ParseError::TooManyEvents`] (it never allocates for more). Protobuf semantics hold: the
/// last member of the `kind` oneof wins, repeated occurrences of one message field merge, unknown
/// fields are skipped.
pub fn parse_client_frame(buf: &[u8], max_events: usize) -> Result<ClientFrameRef<'_>, ParseError> {
    let mut kind: Option<ClientFrameRef<'_>> = None;
    let mut r = Reader(buf);
    while !r.is_empty() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (CLIENT_HELLO, WIRE_LEN) => {
                let body = r.len_delimited()?;
                let mut hello = match kind.take() {
                    Some(ClientFrameRef::Hello(h)) => h,
                    _ => pb::Hello::default(),
                };
                hello
                    .merge(body)
                    .map_err(|e| ParseError::Hello(e.to_string()))?;
                kind = Some(ClientFrameRef::Hello(hello));
            }
            (CLIENT_EVENTS, WIRE_LEN) => {
                let body = r.len_delimited()?;
                let mut events = match kind.take() {
                    Some(ClientFrameRef::Events(v)) => v,
                    _ => Vec::new(),
                };
                event_frame(body, max_events, &mut events)?;
                kind = Some(ClientFrameRef::Events(events));
            }
            (CLIENT_HELLO | CLIENT_EVENTS, _) => {
                return Err(ParseError::Malformed("wrong wire type for a frame field"))
            }
            _ => r.skip(wire)?,
        }
    }
    kind.ok_or(ParseError::Empty)
}

fn event_frame<'a>(
    buf: &'a [u8],
    max_events: usize,
    out: &mut Vec<&'a [u8]>,
) -> Result<(), ParseError> {
    let mut r = Reader(buf);
    while !r.is_empty() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (FRAME_EVENTS, WIRE_LEN) => {
                let ev = r.len_delimited()?;
                if out.len() >= max_events {
                    return Err(ParseError::TooManyEvents { max: max_events });
                }
                out.push(ev);
            }
            (FRAME_EVENTS, _) => return Err(ParseError::Malformed("wrong wire type for events")),
            _ => r.skip(wire)?,
        }
    }
    Ok(())
}

const WIRE_VARINT: u64 = 0;
const WIRE_64: u64 = 1;
const WIRE_LEN: u64 = 2;
const WIRE_32: u64 = 5;

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn varint(&mut self) -> Result<u64, ParseError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some((&b, rest)) = self.0.split_first() else {
                return Err(ParseError::Malformed("truncated varint"));
            };
            self.0 = rest;
            if i == 9 && b > 1 {
                break;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ParseError::Malformed("invalid varint"))
    }

    fn key(&mut self) -> Result<(u64, u64), ParseError> {
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(ParseError::Malformed("invalid field number"));
        }
        Ok((field, k & 7))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], ParseError> {
        if n > self.0.len() as u64 {
            return Err(ParseError::Malformed("truncated field"));
        }
        let (a, b) = self.0.split_at(n as usize);
        self.0 = b;
        Ok(a)
    }

    fn len_delimited(&mut self) -> Result<&'a [u8], ParseError> {
        let n = self.varint()?;
        self.take(n)
    }

    fn skip(&mut self, wire: u64) -> Result<(), ParseError> {
        match wire {
            WIRE_VARINT => self.varint().map(|_| ()),
            WIRE_64 => self.take(8).map(|_| ()),
            WIRE_LEN => self.len_delimited().map(|_| ()),
            WIRE_32 => self.take(4).map(|_| ()),
            _ => Err(ParseError::Malformed("unsupported wire type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{client_frame::Kind, event::Body};

    fn event(i: u32) -> pb::Event {
        pb::Event {
            occurred_ms: None,
            key: format!("k{i}"),
            device: if i.is_multiple_of(3) {
                String::new()
            } else {
                format!("d{i}")
            },
            fix: None,
            body: Some(if i.is_multiple_of(2) {
                Body::Heartbeat(pb::Heartbeat {})
            } else {
                Body::Alarm(pb::Alarm {
                    code: "0010".into(),
                    priority: 3,
                    text: Some("help".into()),
                    callback: vec!["+4670".into()],
                })
            }),
        }
    }

    fn frame(events: Vec<pb::Event>) -> Vec<u8> {
        pb::ClientFrame {
            kind: Some(Kind::Events(pb::EventFrame { events })),
        }
        .encode_to_vec()
    }

    #[test]
    fn events_come_back_as_their_exact_bytes() {
        let evs: Vec<_> = (0..20).map(event).collect();
        let buf = frame(evs.clone());
        let ClientFrameRef::Events(raw) = parse_client_frame(&buf, 100).unwrap() else {
            panic!("events expected");
        };
        assert_eq!(raw.len(), 20);
        for (r, e) in raw.iter().zip(&evs) {
            assert_eq!(*r, e.encode_to_vec().as_slice());
            assert_eq!(&pb::Event::decode(*r).unwrap(), e);
        }
    }

    #[test]
    fn hello_parses_and_empty_frame_is_an_error() {
        let h = pb::Hello {
            software: "s".into(),
            version: "1".into(),
            gateway: true,
        };
        let buf = pb::ClientFrame {
            kind: Some(Kind::Hello(h.clone())),
        }
        .encode_to_vec();
        assert_eq!(parse_client_frame(&buf, 1), Ok(ClientFrameRef::Hello(h)));
        assert_eq!(parse_client_frame(&[], 1), Err(ParseError::Empty));
    }

    #[test]
    fn too_many_events_stops_the_parse() {
        let buf = frame((0..11).map(event).collect());
        assert_eq!(
            parse_client_frame(&buf, 10),
            Err(ParseError::TooManyEvents { max: 10 })
        );
        assert!(parse_client_frame(&buf, 11).is_ok());
    }

    fn varint(v: usize, buf: &mut Vec<u8>) {
        prost::encode_length_delimiter(v, buf).unwrap();
    }

    fn key(field: usize, wire: usize, buf: &mut Vec<u8>) {
        varint(field << 3 | wire, buf);
    }

    #[test]
    fn unknown_fields_are_skipped_and_kept_in_raw() {
        // An unknown varint field 99 inside the event, and unknown fields at both outer levels.
        let mut ev = event(1).encode_to_vec();
        key(99, 0, &mut ev);
        varint(7, &mut ev);
        let mut ef = Vec::new();
        key(1, 2, &mut ef);
        varint(ev.len(), &mut ef);
        ef.extend_from_slice(&ev);
        key(50, 5, &mut ef);
        ef.extend_from_slice(&[1, 2, 3, 4]);
        let mut cf = Vec::new();
        key(7, 1, &mut cf);
        cf.extend_from_slice(&[0; 8]);
        key(2, 2, &mut cf);
        varint(ef.len(), &mut cf);
        cf.extend_from_slice(&ef);
        let ClientFrameRef::Events(raw) = parse_client_frame(&cf, 10).unwrap() else {
            panic!("events expected");
        };
        assert_eq!(raw, vec![ev.as_slice()]);
        assert_eq!(pb::Event::decode(raw[0]).unwrap(), event(1));
    }

    #[test]
    fn split_event_frames_merge_and_last_oneof_member_wins() {
        let a = frame(vec![event(1)]);
        let b = frame(vec![event(2), event(3)]);
        let both = [a.clone(), b].concat();
        let ClientFrameRef::Events(raw) = parse_client_frame(&both, 10).unwrap() else {
            panic!("events expected");
        };
        assert_eq!(raw.len(), 3);
        let hello = pb::ClientFrame {
            kind: Some(Kind::Hello(pb::Hello::default())),
        }
        .encode_to_vec();
        let hello_then_events = [hello, a].concat();
        assert!(matches!(
            parse_client_frame(&hello_then_events, 10),
            Ok(ClientFrameRef::Events(v)) if v.len() == 1
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let good = frame((0..5).map(event).collect());
        for n in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut buf = good.clone();
            if n % 2 == 0 {
                let i = (seed as usize) % buf.len();
                buf[i] = (seed >> 32) as u8;
                buf.truncate(buf.len() - (seed as usize >> 8) % 3);
            } else {
                buf = (0..(seed % 64)).map(|i| (seed >> (i % 56)) as u8).collect();
            }
            if let Ok(ClientFrameRef::Events(evs)) = parse_client_frame(&buf, 100) {
                for e in evs {
                    let _ = pb::Event::decode(e);
                }
            }
        }
    }
}
