//! The centre API's inbound messages as a centre's stream reads them: the bytes of one gRPC
//! message (after tonic's length prefix) decoded by prost as `vaka.centre.v1.CentreMessage`,
//! then read and checked by `vaka_centre::inbound` (first as the hello, then as a later
//! message).
//!
//! Asserted:
//! - nothing panics;
//! - a message that decodes encodes and decodes again to itself;
//! - what `inbound` accepts keeps its bounds: an accepted operator id and outcome are one
//!   printable line of at most `MAX_ID_CHARS`, a refusal reason at most `MAX_NOTE_CHARS`
//!   printable characters; a hello is never also a later message, and a later message never a
//!   hello.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use vaka_centre::inbound::{self, Inbound, MAX_ID_CHARS, MAX_NOTE_CHARS};
use vaka_centre::pb;
use vaka_core::alarm::AlarmInput;
use vaka_core::CentreId;

fn one_printable_line(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

fn printable(s: &str, max: usize) -> bool {
    s.chars().count() <= max && !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

fuzz_target!(|data: &[u8]| {
    let Ok(m) = pb::CentreMessage::decode(data) else {
        return;
    };
    let again = pb::CentreMessage::decode(m.encode_to_vec().as_slice()).expect("own encoding");
    assert_eq!(again, m, "round trip");

    let first = inbound::hello(m.clone());
    let later = inbound::read(m, &CentreId::new("c1"));
    assert!(
        !(first.is_ok() && later.is_ok()),
        "a message is a hello or a later one, never both"
    );
    let Ok(Inbound::Act {
        input: Ok(input), ..
    }) = later
    else {
        return;
    };
    match input {
        AlarmInput::Accept { operator, .. } => {
            assert!(one_printable_line(&operator, MAX_ID_CHARS), "{operator:?}")
        }
        AlarmInput::Close { outcome, .. } => {
            // "<outcome>: <note>": the outcome's own bound plus the note's.
            assert!(
                printable(&outcome, MAX_ID_CHARS + 2 + MAX_NOTE_CHARS),
                "{outcome:?}"
            )
        }
        AlarmInput::Refuse { reason, .. } => {
            assert!(one_printable_line(&reason, MAX_NOTE_CHARS), "{reason:?}")
        }
        _ => {}
    }
});
