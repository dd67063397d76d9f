//! What a centre sends, read and checked before anything acts on it: the decoder the fuzz
//! target `centre_inbound` drives (bytes -> `pb::CentreMessage` -> [`Inbound`]). Pure: no
//! store, no router; the stream ([`crate::stream`]) applies what comes out.
use crate::pb::{self, centre_message::Msg as In};
use tonic::Status;
use vaka_core::alarm::AlarmInput;
use vaka_core::alarm_action::{note, one_line, FieldProblem};
use vaka_core::CentreId;

/// Longest operator id, outcome, note and refusal reason a centre may send.
pub const MAX_ID_CHARS: usize = 64;
pub const MAX_NOTE_CHARS: usize = 2000;

/// One message from a connected centre (after its hello).
#[derive(Debug)]
pub enum Inbound {
    /// Everything up to this cursor has been handled by the centre.
    Ack(u64),
    /// An input on one alarm; a bad field is its own answer (the stream goes on).
    Act {
        request_id: u64,
        alarm_id: u64,
        what: &'static str,
        input: Result<AlarmInput, Status>,
    },
}

/// The mandatory first message; anything else first is refused.
pub fn hello(m: pb::CentreMessage) -> Result<pb::Hello, Status> {
    match m.msg {
        Some(In::Hello(h)) => Ok(h),
        _ => Err(Status::failed_precondition(
            "the first message must be hello",
        )),
    }
}

/// A later message from `centre`. An error ends the stream (a protocol violation).
pub fn read(m: pb::CentreMessage, centre: &CentreId) -> Result<Inbound, Status> {
    let Some(msg) = m.msg else {
        return Err(Status::invalid_argument("empty message"));
    };
    let centre = centre.clone();
    let act = |request_id, alarm_id, what, input| Inbound::Act {
        request_id,
        alarm_id,
        what,
        input,
    };
    Ok(match msg {
        In::Hello(_) => {
            return Err(Status::failed_precondition(
                "hello may only be sent once, first",
            ))
        }
        In::Ack(a) => Inbound::Ack(a.cursor),
        In::Receipt(r) => act(
            r.request_id,
            r.alarm_id,
            "receipt",
            Ok(AlarmInput::Receipt { centre }),
        ),
        In::Accept(a) => {
            let input = checked(one_line("operator_id", &a.operator_id, MAX_ID_CHARS)).map(|_| {
                AlarmInput::Accept {
                    centre,
                    operator: a.operator_id,
                }
            });
            act(a.request_id, a.alarm_id, "accept", input)
        }
        In::Close(c) => {
            let input = checked(one_line("outcome", &c.outcome, MAX_ID_CHARS))
                .and_then(|_| checked(note("note", &c.note, MAX_NOTE_CHARS)))
                .map(|_| AlarmInput::Close {
                    centre,
                    // The core keeps one outcome string: the note travels with it.
                    outcome: if c.note.trim().is_empty() {
                        c.outcome.clone()
                    } else {
                        format!("{}: {}", c.outcome, c.note.trim())
                    },
                });
            act(c.request_id, c.alarm_id, "close", input)
        }
        In::Attended(a) => act(
            a.request_id,
            a.alarm_id,
            "attended",
            Ok(AlarmInput::Attended { centre }),
        ),
        In::Refuse(r) => {
            let input = checked(one_line("reason", &r.reason, MAX_NOTE_CHARS)).map(|_| {
                AlarmInput::Refuse {
                    centre,
                    reason: r.reason,
                }
            });
            act(r.request_id, r.alarm_id, "refuse", input)
        }
    })
}

/// A field's problem (the same rules as every other way a receiver answers) as the status
/// that answers the input.
fn checked(problem: Option<FieldProblem>) -> Result<(), Status> {
    match problem {
        None => Ok(()),
        Some((field, why)) => Err(Status::invalid_argument(format!("{field} {why}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_are_bounded_and_printable() {
        let c = CentreId::new("c1");
        let accept = |operator: &str| {
            let m = msg(In::Accept(pb::Accept {
                request_id: 1,
                alarm_id: 2,
                operator_id: operator.into(),
            }));
            match read(m, &c).unwrap() {
                Inbound::Act { input, .. } => input.is_ok(),
                other => panic!("{other:?}"),
            }
        };
        assert!(accept("op-7"));
        assert!(!accept(""));
        assert!(!accept("a\nb"));
        // Found by the fuzz target centre_inbound: a tab was let through in an id.
        assert!(!accept("op\t7"));
        assert!(!accept(&"x".repeat(MAX_ID_CHARS + 1)));
        let close = |note: &str| {
            let m = msg(In::Close(pb::Close {
                request_id: 1,
                alarm_id: 2,
                outcome: "visited".into(),
                note: note.into(),
            }));
            match read(m, &c).unwrap() {
                Inbound::Act { input, .. } => input.is_ok(),
                other => panic!("{other:?}"),
            }
        };
        assert!(close(""));
        assert!(close("two\nlines"));
        assert!(!close("bell\u{7}"));
        assert!(!close(&"x".repeat(MAX_NOTE_CHARS + 1)));
    }

    fn msg(m: In) -> pb::CentreMessage {
        pb::CentreMessage { msg: Some(m) }
    }

    #[test]
    fn a_close_carries_its_note_and_a_bad_field_is_the_inputs_own_answer() {
        let c = CentreId::new("c1");
        let close = msg(In::Close(pb::Close {
            request_id: 7,
            alarm_id: 9,
            outcome: "visited".into(),
            note: " all well ".into(),
        }));
        match read(close, &c).unwrap() {
            Inbound::Act {
                request_id: 7,
                alarm_id: 9,
                what: "close",
                input: Ok(AlarmInput::Close { outcome, .. }),
            } => assert_eq!(outcome, "visited: all well"),
            other => panic!("{other:?}"),
        }
        let accept = msg(In::Accept(pb::Accept {
            request_id: 1,
            alarm_id: 2,
            operator_id: "".into(),
        }));
        assert!(matches!(
            read(accept, &c).unwrap(),
            Inbound::Act { input: Err(_), .. }
        ));
    }

    #[test]
    fn hello_only_first_and_never_empty() {
        let c = CentreId::new("c1");
        let hello = || msg(In::Hello(pb::Hello::default()));
        assert!(super::hello(hello()).is_ok());
        assert!(read(hello(), &c).is_err());
        assert!(super::hello(msg(In::Ack(pb::Ack { cursor: 1 }))).is_err());
        assert!(read(pb::CentreMessage { msg: None }, &c).is_err());
    }
}
