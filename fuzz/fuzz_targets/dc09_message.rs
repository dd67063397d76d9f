//! SIA DC-09 (`vaka-dc09`) as a receiver reads it: `Frame::parse` (CRC, length, header),
//! `Frame::open` (decrypting with fixed AES-128 and AES-256 keys, the timestamp window, SIA-DCS
//! / ADM-CID / NULL data), `reply_for`, the answers, and `stream::next_frame` on the same bytes
//! as a TCP stream.
//!
//! The first byte picks how the rest is used, so that the fuzzer gets past the CRC:
//! - 0: the bytes as received (a whole frame, CRC and all);
//! - 1: a frame body, wrapped with a correct CRC and length (`frame::write`) before decoding;
//! - 2: a header and data as a sender would write them (`Message::new`, encrypted with the
//!   AES-128 key when the header says so), encoded and decoded back.
//!
//! Asserted:
//! - a message that decodes is ACKed (`reply_for`), and our ACK to it, and a DUH to its header,
//!   are frames that parse back with its sequence and account;
//! - round trip: a message that decodes, encoded again (strict form; encrypted with the key it
//!   was opened with), decodes to the same message; likewise a message built in mode 2;
//! - the typed data round trips: SIA-DCS and ADM-CID data printed (`to_data`) parse back to the
//!   same value;
//! - stream framing moves forward within the buffer and the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vaka_dc09::frame;
use vaka_dc09::stream::{next_frame, Framed};
use vaka_dc09::{
    ack, decode, duh, nak, reply_for, CidData, Frame, Header, Key, Message, Payload, Reply,
    SiaData, Timestamp, Token, Window,
};

/// 2026-01-02 03:04:05 UTC: the clock of the encrypted seeds (tests/vectors.rs).
const NOW_MS: u64 = 1_767_323_045_000;
const STREAM_LIMIT: usize = 1024;

fn keys() -> [Key; 2] {
    [
        Key::parse("0123456789ABCDEF").expect("AES-128 key"),
        Key::from_bytes(&(0u8..32).collect::<Vec<_>>()).expect("AES-256 key"),
    ]
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => received(rest),
        1 => received(&frame::write(rest)),
        _ => written(rest),
    }
    stream(rest);
});

/// What the receiver does with one frame, with each key it might hold for the account.
fn received(bytes: &[u8]) {
    let window = Window::default();
    let frame = match Frame::parse(bytes) {
        Ok(f) => f,
        Err(e) => {
            let r = Err(e);
            assert_ne!(reply_for(&r), Reply::Ack);
            return;
        }
    };
    answers_parse(&frame.header, &duh(Some(&frame.header)));
    let keys = keys();
    let tries: Vec<Option<&Key>> = if frame.header.encrypted {
        vec![None, Some(&keys[0]), Some(&keys[1])]
    } else {
        vec![None]
    };
    for key in tries {
        let result = frame.open(key, NOW_MS, &window);
        let reply = reply_for(&result);
        let Ok(m) = result else {
            assert_ne!(reply, Reply::Ack);
            continue;
        };
        assert_eq!(reply, Reply::Ack);
        assert!(key.is_some() || !m.header.encrypted);
        let a = ack(&m.header, key, Timestamp::from_unix_ms(NOW_MS), &[7; 16])
            .expect("a message that opened can be ACKed with the key it opened with");
        answers_parse(&m.header, &a);
        round_trip(&m, key);
        typed_round_trip(&m);
    }
}

/// Our answer to `header` is a frame that parses back to its sequence and account.
fn answers_parse(header: &Header, answer: &[u8]) {
    let f = Frame::parse(answer).expect("our answers are frames");
    assert_eq!(f.header.seq, header.seq);
    assert_eq!(f.header.account, header.account);
    // The NAK's fixed form has `A0` where a header has `#account`: only its frame is checked.
    assert!(frame::check(&nak(Timestamp::from_unix_ms(NOW_MS))).is_ok());
}

/// Written again in the strict form and read back: the same message.
fn round_trip(m: &Message, key: Option<&Key>) {
    // The decoder is lenient where the encoder is strict (e.g. text it may not write): a
    // message it refuses to write proves nothing.
    let Ok(bytes) = m.encode(key, &[3; 16]) else {
        return;
    };
    let back = decode(&bytes, |_| key, NOW_MS, &Window::default());
    assert_eq!(back.as_ref(), Ok(m), "{}", String::from_utf8_lossy(&bytes));
}

fn typed_round_trip(m: &Message) {
    match &m.payload {
        Payload::Sia(s) => assert_eq!(SiaData::parse(&s.to_data()).as_ref(), Ok(s)),
        Payload::Cid(c) => assert_eq!(CidData::parse(&c.to_data()).as_ref(), Ok(c)),
        Payload::Null => {}
    }
}

/// A sender's message: header from the bytes, the rest (up to `]`) as data.
fn written(bytes: &[u8]) {
    let Ok((header, rest)) = Header::parse(bytes) else {
        return;
    };
    if matches!(header.token, Token::Other(_)) {
        return;
    }
    let end = rest.iter().position(|b| *b == b']').unwrap_or(rest.len());
    let data = String::from_utf8_lossy(&rest[..end]).into_owned();
    let keys = keys();
    let key = header.encrypted.then_some(&keys[0]);
    let timestamp = header.encrypted.then(|| Timestamp::from_unix_ms(NOW_MS));
    let Ok(m) = Message::new(header, data, Vec::new(), timestamp) else {
        return;
    };
    typed_round_trip(&m);
    round_trip(&m, key);
}

/// The bytes as a TCP stream: every step consumes something within the buffer and the limit.
fn stream(bytes: &[u8]) {
    let mut buf = bytes;
    while !buf.is_empty() {
        match next_frame(buf, STREAM_LIMIT) {
            Ok(Framed::Incomplete) | Err(_) => break,
            Ok(Framed::Skip(n)) => {
                assert!(n > 0 && n <= buf.len());
                buf = &buf[n..];
            }
            Ok(Framed::Frame(n)) => {
                assert!(n > 0 && n <= buf.len() && n <= STREAM_LIMIT);
                let _ = decode(&buf[..n], |_| None, NOW_MS, &Window::default());
                buf = &buf[n..];
            }
        }
    }
}
