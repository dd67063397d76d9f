//! Round trips through the public API, and property tests: decoding never panics, and
//! encode -> decode is the identity for generated messages, plain and encrypted.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use vaka_dc09::{
    ack, decode, duh, frame, nak, reply_for, stream, Account, CidData, DecodeError, EncodeError,
    Frame, Header, HexId, Key, Message, Payload, Qualifier, Reply, Seq, SiaData, SiaEvent,
    Timestamp, Token, Window, XData,
};

fn header(token: Token, encrypted: bool) -> Header {
    Header {
        token,
        encrypted,
        seq: Seq::new(17).unwrap(),
        receiver: HexId::new("A1"),
        line: HexId::new("2"),
        account: Account::new("4711").unwrap(),
    }
}

fn ts(text: &str) -> Timestamp {
    Timestamp::parse(text.as_bytes()).unwrap()
}

fn ms(t: Timestamp) -> u64 {
    u64::try_from(t.unix_secs()).unwrap() * 1000
}

#[test]
fn plain_sia_round_trip_and_ack() {
    let m = Message::new(
        header(Token::SiaDcs, false),
        "#4711|Nri1/BA01/BA02".into(),
        vec![XData {
            id: 'I',
            value: "Door".into(),
        }],
        Some(ts("10:00:00,03-01-2026")),
    )
    .unwrap();
    let bytes = m.encode(None, &[0; 16]).unwrap();
    assert_eq!(
        frame::check(&bytes).unwrap().body,
        b"\"SIA-DCS\"0017RA1L2#4711[#4711|Nri1/BA01/BA02][IDoor]_10:00:00,03-01-2026"
    );
    // A plain message's timestamp is not checked: this one is years off.
    let back = decode(&bytes, |_| None, 0, &Window::default());
    assert_eq!(back.as_ref(), Ok(&m));
    assert_eq!(reply_for(&back), Reply::Ack);
    let Payload::Sia(sia) = &m.payload else {
        panic!("not SIA")
    };
    assert_eq!(sia.events.len(), 2);
    let a = ack(&m.header, None, ts("10:00:01,03-01-2026"), &[0; 16]).unwrap();
    assert_eq!(frame::check(&a).unwrap().body, b"\"ACK\"0017RA1L2#4711[]");
}

#[test]
fn encrypted_round_trip_every_key_size() {
    let at = ts("23:59:59,12-31-2026");
    for (n, token, data) in [
        (16, Token::SiaDcs, "#4711|NFA3"),
        (24, Token::AdmCid, "#4711|1101 00 001"),
        (32, Token::Null, ""),
    ] {
        let key = Key::from_bytes(&vec![n as u8; n]).unwrap();
        let m = Message::new(header(token, true), data.into(), Vec::new(), Some(at)).unwrap();
        let bytes = m.encode(Some(&key), &[42; 16]).unwrap();
        let body = frame::check(&bytes).unwrap().body;
        // Ciphertext only after '[': the data is not readable on the wire.
        assert!(!String::from_utf8_lossy(body).contains("4711|"), "{n}");
        let back = decode(
            &bytes,
            |a| (a.as_str() == "4711").then_some(&key),
            ms(at),
            &Window::default(),
        );
        assert_eq!(back, Ok(m.clone()));
        let a = ack(&m.header, Some(&key), at, &[1; 16]).unwrap();
        assert!(frame::check(&a)
            .unwrap()
            .body
            .starts_with(b"\"*ACK\"0017RA1L2#4711["));
    }
}

#[test]
fn encode_is_strict() {
    let key = Key::from_ascii("0123456789abcdef").unwrap();
    let m = Message::new(header(Token::Null, true), String::new(), Vec::new(), None).unwrap();
    assert_eq!(m.encode(None, &[0; 16]), Err(EncodeError::KeyRequired));
    assert_eq!(
        m.encode(Some(&key), &[0; 16]),
        Err(EncodeError::TimestampRequired)
    );
    let mut bad =
        Message::new(header(Token::Null, false), String::new(), Vec::new(), None).unwrap();
    bad.data = "a]b".into();
    assert_eq!(bad.encode(None, &[0; 16]), Err(EncodeError::BadText));
    bad.data = "x".repeat(70_000);
    assert_eq!(bad.encode(None, &[0; 16]), Err(EncodeError::TooLong));
}

#[test]
fn failures_and_their_answers() {
    let unknown = frame::write(b"\"XYZ\"0001L0#1234[]");
    let r = decode(&unknown, |_| None, 0, &Window::default());
    assert_eq!(r, Err(DecodeError::UnknownToken("XYZ".into())));
    assert_eq!(reply_for(&r), Reply::Duh);
    // The DUH echoes the header, which Frame::parse still reads.
    let f = Frame::parse(&unknown).unwrap();
    assert_eq!(
        frame::check(&duh(Some(&f.header))).unwrap().body,
        b"\"DUH\"0001L0#1234[]"
    );

    let bad_cid = frame::write(b"\"ADM-CID\"0001L0#1234[#1234|9130 01 015]");
    let r = decode(&bad_cid, |_| None, 0, &Window::default());
    assert!(matches!(
        r,
        Err(DecodeError::BadData {
            token: "ADM-CID",
            ..
        })
    ));
    assert_eq!(reply_for(&r), Reply::Duh);

    let mut crc = frame::write(b"\"NULL\"0001L0#1234[]");
    crc[1] = if crc[1] == b'0' { b'1' } else { b'0' };
    let r = decode(&crc, |_| None, 0, &Window::default());
    assert!(matches!(r, Err(DecodeError::BadCrc { .. })));
    assert_eq!(reply_for(&r), Reply::Nak);
    let n = nak(ts("00:00:00,01-01-2026"));
    assert_eq!(
        frame::check(&n).unwrap().body,
        b"\"NAK\"0000R0L0A0[]_00:00:00,01-01-2026"
    );

    // Encrypted flag, plaintext on the wire: not hex -> decryption failed.
    let fake = frame::write(b"\"*NULL\"0001L0#1234[]_00:00:00,01-01-2026");
    let key = Key::from_ascii("0123456789abcdef").unwrap();
    let r = decode(&fake, |_| Some(&key), 0, &Window::default());
    assert!(matches!(r, Err(DecodeError::DecryptFailed(_))));
}

#[test]
fn configurable_window() {
    let key = Key::from_ascii("0123456789abcdef").unwrap();
    let at = ts("12:00:00,06-01-2026");
    let m = Message::new(
        header(Token::Null, true),
        String::new(),
        Vec::new(),
        Some(at),
    )
    .unwrap();
    let bytes = m.encode(Some(&key), &[0; 16]).unwrap();
    let narrow = Window {
        past_secs: 5,
        future_secs: 5,
    };
    assert!(decode(&bytes, |_| Some(&key), ms(at) + 5_000, &narrow).is_ok());
    assert_eq!(
        decode(&bytes, |_| Some(&key), ms(at) + 6_000, &narrow),
        Err(DecodeError::StaleTimestamp { skew_secs: -6 })
    );
}

#[test]
fn stream_then_decode() {
    let a = Message::new(header(Token::Null, false), String::new(), Vec::new(), None).unwrap();
    let mut buf = a.encode(None, &[0; 16]).unwrap();
    buf.extend_from_slice(b"\0\0");
    buf.extend_from_slice(&a.encode(None, &[0; 16]).unwrap());
    let mut seen = 0;
    while !buf.is_empty() {
        match stream::next_frame(&buf, 1024).unwrap() {
            stream::Framed::Frame(n) => {
                assert_eq!(
                    decode(&buf[..n], |_| None, 0, &Window::default()),
                    Ok(a.clone())
                );
                seen += 1;
                buf.drain(..n);
            }
            stream::Framed::Skip(n) => {
                buf.drain(..n);
            }
            stream::Framed::Incomplete => break,
        }
    }
    assert_eq!(seen, 2);
}

// ---- property tests ----

fn hex_id() -> impl Strategy<Value = Option<HexId>> {
    option::of("[0-9A-F]{1,6}".prop_map(|s| HexId::new(&s).unwrap()))
}

fn arb_header(token: Token, encrypted: bool) -> impl Strategy<Value = Header> {
    (0u16..=9999, hex_id(), hex_id(), "[0-9A-Za-z]{1,16}").prop_map(move |(n, r, l, a)| Header {
        token: token.clone(),
        encrypted,
        seq: Seq::new(n).unwrap(),
        receiver: r,
        line: l,
        account: Account::new(&a).unwrap(),
    })
}

fn arb_sia() -> impl Strategy<Value = SiaData> {
    let event = (
        "[A-Z]{2}",
        option::of("[0-9]{1,4}"),
        option::of("[A-Za-z ]{0,8}"),
        option::of("[0-9]{1,3}"),
        option::of("[0-9]{1,4}"),
        option::of("([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?"),
    )
        .prop_map(|(code, address, name, area, user, time)| SiaEvent {
            code,
            address,
            name,
            area,
            user,
            time,
        });
    (
        option::of("[0-9A-Z]{1,10}"),
        vec(event, 0..4),
        option::of("[A-Za-z0-9 .,]{0,16}"),
    )
        .prop_map(|(account, mut events, text)| {
            // Modifiers hold until changed: once set, they stay set for later events.
            for i in 1..events.len() {
                let prev = events[i - 1].clone();
                let e = &mut events[i];
                e.area = e.area.take().or(prev.area);
                e.user = e.user.take().or(prev.user);
                e.time = e.time.take().or(prev.time);
            }
            SiaData {
                account,
                events,
                text,
            }
        })
}

fn arb_cid() -> impl Strategy<Value = CidData> {
    (
        option::of("[0-9A-Z]{1,10}"),
        prop_oneof![
            Just(Qualifier::New),
            Just(Qualifier::Restoral),
            Just(Qualifier::Repeat)
        ],
        0u16..=999,
        0u8..=99,
        0u16..=999,
    )
        .prop_map(|(account, qualifier, code, group, zone)| CidData {
            account,
            qualifier,
            code,
            group,
            zone,
        })
}

fn arb_message() -> impl Strategy<Value = Message> {
    let xdata = vec(
        ("[A-Z]", "[A-Za-z0-9.,:/ -]{0,12}").prop_map(|(id, value)| XData {
            id: id.chars().next().unwrap(),
            value,
        }),
        0..3,
    );
    let data = prop_oneof![
        arb_sia().prop_map(|s| (Token::SiaDcs, s.to_data())),
        arb_cid().prop_map(|c| (Token::AdmCid, c.to_data())),
        Just((Token::Null, String::new())),
    ];
    (
        data,
        any::<bool>(),
        xdata,
        option::of(0i64..253_402_300_799),
    )
        .prop_flat_map(|((token, data), encrypted, xdata, secs)| {
            let secs = if encrypted {
                secs.or(Some(1_767_225_600))
            } else {
                secs
            };
            let timestamp = secs.map(|s| Timestamp::from_unix_secs(s).unwrap());
            arb_header(token, encrypted)
                .prop_map(move |h| Message::new(h, data.clone(), xdata.clone(), timestamp).unwrap())
        })
}

fn arb_key() -> impl Strategy<Value = Key> {
    prop_oneof![Just(16usize), Just(24), Just(32)]
        .prop_flat_map(|n| vec(any::<u8>(), n))
        .prop_map(|b| Key::from_bytes(&b).unwrap())
}

proptest! {
    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..300), key in arb_key()) {
        let _ = decode(&bytes, |_| Some(&key), 0, &Window::default());
        let _ = stream::next_frame(&bytes, 128);
    }

    #[test]
    fn decode_never_panics_past_the_crc(body in vec(any::<u8>(), 0..300), key in arb_key(), star in any::<bool>()) {
        // A valid CRC and length around arbitrary bytes, so the header and content parsers
        // (not only the CRC check) see the noise; half of them behind an encrypted header.
        let mut b = if star { b"\"*SIA-DCS\"0001L0#1[".to_vec() } else { Vec::new() };
        b.extend_from_slice(&body);
        let framed = frame::write(&b);
        let r = decode(&framed, |_| Some(&key), 0, &Window::default());
        let _ = reply_for(&r);
        if let Ok(f) = Frame::parse(&framed) {
            let _ = duh(Some(&f.header));
        }
    }

    #[test]
    fn decode_never_panics_on_random_ciphertext(blocks in vec(any::<[u8; 16]>(), 1..6), key in arb_key()) {
        let hex: String = blocks.iter().flatten().map(|b| format!("{b:02X}")).collect();
        let framed = frame::write(format!("\"*SIA-DCS\"0001L0#1[{hex}").as_bytes());
        let r = decode(&framed, |_| Some(&key), 0, &Window::default());
        // Noise almost never forms a pad, '|', data ']' and a valid timestamp.
        prop_assert!(r.is_err());
    }

    #[test]
    fn encode_then_decode_is_identity(m in arb_message(), key in arb_key(), entropy in any::<[u8; 16]>()) {
        let bytes = m.encode(Some(&key), &entropy).unwrap();
        let now = m.timestamp.map_or(0, |t| u64::try_from(t.unix_secs()).unwrap() * 1000);
        let back = decode(&bytes, |_| Some(&key), now, &Window::default());
        prop_assert_eq!(back, Ok(m.clone()));
        // And the answer to it is written and checks.
        let a = ack(&m.header, Some(&key), Timestamp::from_unix_ms(now), &entropy).unwrap();
        prop_assert!(frame::check(&a).is_ok());
    }

    #[test]
    fn typed_data_round_trips(s in arb_sia(), c in arb_cid()) {
        prop_assert_eq!(SiaData::parse(&s.to_data()), Ok(s));
        prop_assert_eq!(CidData::parse(&c.to_data()), Ok(c));
    }
}
