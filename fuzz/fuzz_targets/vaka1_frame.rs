//! vaka/1 on a QUIC stream, as the QUIC front reads it: `split_frame` takes length-prefixed
//! frames off the receive buffer (limit 64 KiB here), `parse_client_frame` walks each one (at
//! most 64 events) and every event's bytes go through `pb::Event::decode`.
//!
//! Asserted:
//! - framing does not depend on how the bytes arrive: the stream fed in small chunks (sizes from
//!   the first byte) gives the same frames and the same error as fed whole;
//! - a frame's events come back as slices of the frame, at most the limit;
//! - round trip: the events that decode, encoded again as one frame (`encode_events_frame`, the
//!   device's writer), split and parse back to the same events; a Hello likewise;
//! - the hand-written parser agrees with prost: an events frame it accepts whose events all decode
//!   decodes with prost to the same events.
//!
//! Events are compared by their encoding (a telemetry value may be NaN, which equals nothing).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vaka_proto::bytes::{Bytes, BytesMut};
use vaka_proto::pb::{self, client_frame::Kind};
use vaka_proto::{
    encode_events_frame, encode_frame, parse_client_frame, split_frame, ClientFrameRef,
    FramingError, Message,
};

const MAX_FRAME: usize = 64 * 1024;
const MAX_EVENTS: usize = 64;

/// Splits `stream` fed in pieces of `chunk` bytes: the frames, then the error if one stopped it.
fn split_all(stream: &[u8], chunk: usize) -> (Vec<Bytes>, Option<FramingError>) {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match split_frame(&mut buf, MAX_FRAME) {
                Ok(Some(f)) => {
                    assert!(f.len() <= MAX_FRAME);
                    frames.push(f);
                }
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

fn one_frame(wire: &[u8]) -> Bytes {
    let mut buf = BytesMut::from(wire);
    let frame = split_frame(&mut buf, usize::MAX)
        .expect("own frame splits")
        .expect("own frame is complete");
    assert!(buf.is_empty(), "bytes left after our own frame");
    frame
}

fn check_frame(frame: &[u8]) {
    match parse_client_frame(frame, MAX_EVENTS) {
        Ok(ClientFrameRef::Hello(hello)) => {
            let mut wire = Vec::new();
            encode_frame(
                &pb::ClientFrame {
                    kind: Some(Kind::Hello(hello.clone())),
                },
                &mut wire,
            );
            let again = one_frame(&wire);
            let back = parse_client_frame(&again, MAX_EVENTS);
            assert_eq!(back, Ok(ClientFrameRef::Hello(hello)));
        }
        Ok(ClientFrameRef::Events(raws)) => {
            assert!(raws.len() <= MAX_EVENTS);
            let range = frame.as_ptr_range();
            for raw in &raws {
                let r = raw.as_ptr_range();
                assert!(
                    range.start <= r.start && r.end <= range.end,
                    "event outside its frame"
                );
            }
            let decoded: Vec<pb::Event> = raws
                .iter()
                .filter_map(|raw| pb::Event::decode(*raw).ok())
                .collect();
            let encodings: Vec<Vec<u8>> = decoded.iter().map(Message::encode_to_vec).collect();

            let mut wire = Vec::new();
            encode_events_frame(&decoded, &mut wire);
            let again = one_frame(&wire);
            match parse_client_frame(&again, MAX_EVENTS) {
                // An empty EventFrame encodes as an empty ClientFrame.events message, still events.
                Ok(ClientFrameRef::Events(back)) => {
                    let back: Vec<&[u8]> = back.to_vec();
                    assert_eq!(back, encodings, "re-encoded events differ");
                }
                other => panic!("re-encoded events frame parses as {other:?}"),
            }

            if decoded.len() == raws.len() {
                match pb::ClientFrame::decode(frame) {
                    Ok(pb::ClientFrame {
                        kind: Some(Kind::Events(ef)),
                    }) => {
                        let theirs: Vec<Vec<u8>> =
                            ef.events.iter().map(Message::encode_to_vec).collect();
                        assert_eq!(theirs, encodings, "prost decodes other events");
                    }
                    other => panic!("parser took events, prost decodes {other:?}"),
                }
            }
        }
        Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let (frames, err) = split_all(stream, stream.len());
    let chunk = usize::from(first % 16) + 1;
    assert_eq!(
        split_all(stream, chunk),
        (frames.clone(), err.clone()),
        "framing depends on chunks of {chunk}"
    );
    for f in &frames {
        check_frame(f);
    }
});
