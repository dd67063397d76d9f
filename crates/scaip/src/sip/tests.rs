//! Message-level tests: realistic SCAIP traffic, compact and folded forms, builders, and
//! property tests (no panic on any input, build -> parse round trip).

use proptest::prelude::*;

use super::*;
use crate::testdata::{scaip_message, MRQ_PERSONAL_TRIGGER};

#[test]
fn parses_realistic_scaip_message() {
    let raw = scaip_message(MRQ_PERSONAL_TRIGGER);
    let m = SipMessage::parse(raw.as_bytes()).unwrap();
    assert!(m.is_request());
    assert_eq!(m.method(), &Method::Message);
    assert_eq!(m.request_uri(), Some("sip:arc@alarm.vaka.example"));
    assert_eq!(m.top_via().transport, "UDP");
    assert_eq!(m.top_via().branch(), Some("z9hG4bK4f2a9c77"));
    assert_eq!(m.top_via().sent_by(), "10.20.30.40:5060");
    assert_eq!(m.from().user(), Some("4600123456"));
    assert_eq!(m.from().tag(), Some("a73kszlfl"));
    assert_eq!(m.to().tag(), None);
    assert_eq!(m.call_id(), "1j9FpLxk3uxtm8tn@10.20.30.40");
    assert_eq!(m.cseq().seq, 17);
    assert_eq!(m.max_forwards(), Some(70));
    assert_eq!(m.user_agent(), Some("TryggLarm/2.1"));
    assert!(m.is_scaip());
    assert!(m
        .authorization()
        .unwrap()
        .starts_with("Digest username=\"4600123456\""));
    assert_eq!(m.body_str(), Some(MRQ_PERSONAL_TRIGGER));
}

#[test]
fn head_only_parse_ignores_the_body_and_its_length() {
    let raw = scaip_message(MRQ_PERSONAL_TRIGGER);
    let head_end = raw.find("\r\n\r\n").unwrap() + 4;
    // The whole message, and its head alone (Content-Length promises a body that is absent).
    for input in [raw.as_bytes(), &raw.as_bytes()[..head_end]] {
        let m = SipMessage::parse_head(input).unwrap();
        assert_eq!(m.method(), &Method::Message);
        assert_eq!(m.call_id(), "1j9FpLxk3uxtm8tn@10.20.30.40");
        assert!(m.body().is_empty());
        assert_eq!(m.header("Content-Length"), None);
    }
    assert_eq!(
        SipMessage::parse(&raw.as_bytes()[..head_end]),
        Err(SipError::BodyTruncated)
    );
    // Still no message without the required headers.
    assert_eq!(
        SipMessage::parse_head(b"MESSAGE sip:x SIP/2.0\r\nl: 70000\r\n\r\n"),
        Err(SipError::MissingHeader("Via"))
    );
}

#[test]
fn compact_forms_folding_and_case() {
    let body = "<mrq/>";
    let raw = format!(
        "\r\n\r\nMESSAGE sip:arc@h SIP/2.0\r\n\
v: SIP/2.0/TCP a.example;branch=z9hG4bKx, SIP/2.0/UDP b.example:5070\r\n\
via  : SIP/2.0/UDP c.example\r\n\
f: \"Dev\r\n ice\" <sip:1@h>;tag=1\r\n\
t: sip:arc@h\r\n\
i: abc@h\r\n\
CSEQ: 3\r\n\tMESSAGE\r\n\
m: <sip:1@192.0.2.1>;expires=60, <sip:1@192.0.2.2>\r\n\
c: application/SCAIP+xml; charset=utf-8\r\n\
k: path\r\n\
X-Custom: one,\r\n  two\r\n\
l: {}\r\n\r\n{body}trailing garbage ignored",
        body.len()
    );
    let m = SipMessage::parse(raw.as_bytes()).unwrap();
    let hosts: Vec<_> = m.vias().iter().map(|v| v.host.as_str()).collect();
    assert_eq!(hosts, ["a.example", "b.example", "c.example"]);
    assert_eq!(m.from().display.as_deref(), Some("Dev ice"));
    assert_eq!(m.to().uri, "sip:arc@h");
    assert_eq!(m.call_id(), "abc@h");
    assert_eq!(m.cseq().to_string(), "3 MESSAGE");
    let contacts = m.contacts().unwrap();
    assert_eq!(contacts.len(), 2);
    assert_eq!(contacts[0].expires(), Some(60));
    assert!(m.is_scaip());
    assert_eq!(m.header("Supported"), Some("path"));
    assert_eq!(m.header("x-custom"), Some("one, two"));
    assert_eq!(m.body(), body.as_bytes());
    // Serialised with long names; parses back to the same message.
    let out = String::from_utf8(m.to_bytes()).unwrap();
    assert!(
        out.contains("\r\nCall-ID: abc@h\r\n")
            && out.contains("\r\nContent-Length: 6\r\n\r\n<mrq/>")
    );
    assert_eq!(SipMessage::parse(out.as_bytes()).unwrap(), m);
}

#[test]
fn responses_and_other_methods() {
    let resp = "SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n\
To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\
WWW-Authenticate: Digest realm=\"h\", nonce=\"n\"\r\n\r\n";
    let m = SipMessage::parse(resp.as_bytes()).unwrap();
    assert_eq!(m.status(), Some(401));
    assert_eq!(m.method(), &Method::Register);
    assert_eq!(
        m.www_authenticate(),
        Some("Digest realm=\"h\", nonce=\"n\"")
    );

    let sub =
        "SUBSCRIBE sip:x@h SIP/2.0\nVia: SIP/2.0/UDP h\nFrom: <sip:a@h>;tag=1\nTo: <sip:b@h>\n\
Call-ID: c\nCSeq: 9 SUBSCRIBE\no: presence\n\n";
    let m = SipMessage::parse(sub.as_bytes()).unwrap();
    assert_eq!(m.method(), &Method::Other("SUBSCRIBE".into()));
    assert_eq!(m.header("Event"), Some("presence"));
    assert_eq!(m.body(), b"");
}

#[test]
fn parse_errors() {
    let ok_tail = "Via: SIP/2.0/UDP h\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n";
    let cases: Vec<(String, SipError)> = vec![
        ("\r\n\r\n".into(), SipError::Empty),
        (
            "OPTIONS sip:x SIP/2.0\r\nVia: x\r\n".into(),
            SipError::NoHeaderEnd,
        ),
        (
            format!("OPTIONS sip:x\r\n{ok_tail}\r\n"),
            SipError::BadStartLine,
        ),
        (
            format!("OPTIONS sip:x SIP/3.0\r\n{ok_tail}\r\n"),
            SipError::UnsupportedVersion,
        ),
        (
            format!("SIP/1.0 200 OK\r\n{ok_tail}\r\n"),
            SipError::UnsupportedVersion,
        ),
        (
            format!("SIP/2.0 2000 OK\r\n{ok_tail}\r\n"),
            SipError::BadStartLine,
        ),
        (
            format!("OPTIONS sip:x SIP/2.0\r\n continuation\r\n{ok_tail}\r\n"),
            SipError::BadHeaderLine,
        ),
        (
            format!("OPTIONS sip:x SIP/2.0\r\n{ok_tail}no colon\r\n\r\n"),
            SipError::BadHeaderLine,
        ),
        (
            "OPTIONS sip:x SIP/2.0\r\nFrom: <sip:a@h>\r\n\r\n".into(),
            SipError::MissingHeader("Via"),
        ),
        (
            format!("OPTIONS sip:x SIP/2.0\r\n{ok_tail}From: <sip:c@h>\r\n\r\n"),
            SipError::BadHeader("From"),
        ),
        (
            format!("MESSAGE sip:x SIP/2.0\r\n{ok_tail}\r\n"),
            SipError::BadHeader("CSeq"),
        ),
        (
            format!("OPTIONS sip:x SIP/2.0\r\n{ok_tail}l: 10\r\n\r\nshort"),
            SipError::BodyTruncated,
        ),
        (
            format!("OPTIONS sip:x SIP/2.0\r\n{ok_tail}l: -1\r\n\r\n"),
            SipError::BadHeader("Content-Length"),
        ),
    ];
    for (raw, want) in cases {
        assert_eq!(
            SipMessage::parse(raw.as_bytes()),
            Err(want.clone()),
            "{raw:?}"
        );
    }
    assert_eq!(SipError::UnsupportedVersion.status_code(), 505);
    assert_eq!(SipError::BadHeader("Via").status_code(), 400);
    let many = format!(
        "OPTIONS sip:x SIP/2.0\r\n{ok_tail}{}\r\n",
        "X: y\r\n".repeat(MAX_HEADERS)
    );
    assert_eq!(
        SipMessage::parse(many.as_bytes()),
        Err(SipError::TooManyHeaders)
    );
}

#[test]
fn response_copies_headers_and_adds_to_tag() {
    let mut req = SipMessage::parse(scaip_message(MRQ_PERSONAL_TRIGGER).as_bytes()).unwrap();
    req.stamp_source("198.51.100.9", 34567);
    let mut resp = SipMessage::response(&req, 200, "OK", "srv1");
    resp.push_header("User-Agent", "vaka").unwrap();
    let bytes = resp.to_bytes();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK4f2a9c77;rport=34567;received=198.51.100.9\r\n"
    ));
    let parsed = SipMessage::parse(&bytes).unwrap();
    assert_eq!(parsed, resp);
    assert_eq!(parsed.to().tag(), Some("srv1"));
    assert_eq!(parsed.from(), req.from());
    assert_eq!(parsed.cseq(), req.cseq());
    assert_eq!(parsed.call_id(), req.call_id());
    assert_eq!(parsed.top_via().response_target(), ("198.51.100.9", 34567));
    // 100 Trying carries no tag; an existing tag is kept; reason cannot inject lines.
    assert_eq!(
        SipMessage::response(&req, 100, "Trying", "srv1").to().tag(),
        None
    );
    let resp = SipMessage::response(&parsed, 480, "x\r\nVia: evil", "other");
    assert_eq!(resp.to().tag(), Some("srv1"));
    assert_eq!(
        resp.start_line(),
        &StartLine::Response {
            code: 480,
            reason: "x  Via: evil".into()
        }
    );
}

#[test]
fn header_mutation_rules() {
    let mut m = SipMessage::parse(scaip_message("<mrq/>").as_bytes()).unwrap();
    assert_eq!(
        m.push_header("Via", "SIP/2.0/UDP x"),
        Err(SipError::InvalidInput("core header"))
    );
    assert_eq!(
        m.push_header("l", "5"),
        Err(SipError::InvalidInput("core header"))
    );
    assert_eq!(
        m.push_header("X-A", "a\r\nb"),
        Err(SipError::InvalidInput("header value"))
    );
    assert_eq!(
        m.push_header("bad name", "a"),
        Err(SipError::InvalidInput("header name"))
    );
    m.set_header("Expires", "30").unwrap();
    assert_eq!(m.expires(), Some(30));
    assert_eq!(m.remove_header("expires"), 1);
    m.set_body("text/plain", b"hi".to_vec()).unwrap();
    assert_eq!(m.content_type(), Some("text/plain"));
    assert!(!m.is_scaip());
    assert_eq!(SipMessage::parse(&m.to_bytes()).unwrap().body(), b"hi");
}

fn new_request<'a>() -> NewRequest<'a> {
    NewRequest {
        request_uri: "sip:4600123456@10.20.30.40:5060",
        sent_by: "alarm.vaka.example:5060",
        branch: "abc123",
        from_uri: "sip:arc@alarm.vaka.example",
        from_tag: "t1",
        to_uri: "sip:4600123456@alarm.vaka.example",
        call_id: "cid-1@alarm.vaka.example",
        cseq: 4,
        ..NewRequest::default()
    }
}

#[test]
fn builds_scaip_message_request() {
    let xml = "<mrs><ref>A1</ref><snu>0</snu></mrs>";
    let m = new_request().scaip_message(xml).unwrap();
    let text = String::from_utf8(m.to_bytes()).unwrap();
    let want = format!(
        "MESSAGE sip:4600123456@10.20.30.40:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP alarm.vaka.example:5060;branch=z9hG4bKabc123\r\n\
Max-Forwards: 70\r\n\
From: <sip:arc@alarm.vaka.example>;tag=t1\r\n\
To: <sip:4600123456@alarm.vaka.example>\r\n\
Call-ID: cid-1@alarm.vaka.example\r\n\
CSeq: 4 MESSAGE\r\n\
Content-Type: application/scaip+xml\r\n\
Content-Length: {}\r\n\r\n{xml}",
        xml.len()
    );
    assert_eq!(text, want);
    assert_eq!(SipMessage::parse(text.as_bytes()).unwrap(), m);

    let bad = [
        NewRequest {
            call_id: "a\r\nb",
            ..new_request()
        },
        NewRequest {
            to_uri: "",
            ..new_request()
        },
        NewRequest {
            branch: "a;b",
            ..new_request()
        },
        NewRequest {
            request_uri: "sip:a b",
            ..new_request()
        },
        NewRequest {
            sent_by: "h:99999",
            ..new_request()
        },
    ];
    for r in bad {
        assert!(
            matches!(r.scaip_message(xml), Err(SipError::InvalidInput(_))),
            "{r:?}"
        );
        assert!(
            matches!(r.scaip_message_bytes(xml), Err(SipError::InvalidInput(_))),
            "{r:?}"
        );
    }
    assert_eq!(
        new_request().scaip_message_bytes(xml).unwrap(),
        text.as_bytes()
    );
}

/// A comma in the sent-by makes two Via values: both writers refuse it (found by the proptest).
#[test]
fn a_sent_by_with_a_comma_is_refused_by_both_writers() {
    let r = NewRequest {
        sent_by: "[,@%]",
        ..new_request()
    };
    assert!(r.scaip_message("<mrs/>").is_err());
    assert!(r.scaip_message_bytes("<mrs/>").is_err());
}

/// Found by fuzzing (sip_message): `To: h>` was accepted, and the response built to the request
/// carried `To: <h>>;tag=...`, which the device cannot parse. Such a To is now refused.
#[test]
fn a_to_whose_uri_holds_a_closing_angle_is_refused() {
    let req =
        b"SUBSCRIBE s SIP/2.0\nVia: SIP/2.0/U h\nF: t1\nT:h>\nCall-ID:c\nCSeq: 9 SUBSCRIBE\n\n";
    assert_eq!(SipMessage::parse(req), Err(SipError::BadHeader("To")));
}

/// Found by fuzzing (sip_message): a message of exactly `MAX_HEADERS` header lines, none of them
/// Content-Length, parsed, but written back (with its Content-Length line) it no longer did.
#[test]
fn a_message_read_at_the_header_cap_can_be_written_and_read_again() {
    let core = "Via: SIP/2.0/UDP h\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n";
    let message = |lines: usize| {
        format!(
            "OPTIONS sip:x SIP/2.0\r\n{core}{}\r\n",
            "X: y\r\n".repeat(lines - 5)
        )
    };
    assert_eq!(
        SipMessage::parse(message(MAX_HEADERS).as_bytes()),
        Err(SipError::TooManyHeaders)
    );
    let m = SipMessage::parse(message(MAX_HEADERS - 1).as_bytes()).unwrap();
    assert_eq!(SipMessage::parse(&m.to_bytes()), Ok(m));
}

fn valid_message() -> Vec<u8> {
    scaip_message(MRQ_PERSONAL_TRIGGER).into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The direct writer and the typed builder agree on every input: the same bytes, or both
    /// refuse it.
    #[test]
    fn direct_mrs_message_equals_built_one(
        fields in proptest::collection::vec("[a-z0-9:;@.<>\\[\\] =,\"%-]{0,14}", 8),
        cseq in prop_oneof![0u32..5, Just(1u32 << 31)],
        xml in "[<>a-z/&]{0,20}",
    ) {
        let base = new_request();
        let valid = [base.request_uri, "UDP", base.sent_by, base.branch, base.from_uri,
            base.from_tag, base.to_uri, base.call_id];
        // Half of the time a field keeps its valid value, so the others are tested alone too.
        let v: Vec<&str> = (0..8)
            .map(|i| if fields[i].len() % 2 == 0 { valid[i] } else { fields[i].as_str() })
            .collect();
        let r = NewRequest {
            request_uri: v[0],
            transport: v[1],
            sent_by: v[2],
            branch: v[3],
            from_uri: v[4],
            from_tag: v[5],
            to_uri: v[6],
            call_id: v[7],
            cseq,
            ..base
        };
        let built = r.scaip_message(&xml).map(|m| m.to_bytes());
        let direct = r.scaip_message_bytes(&xml);
        prop_assert_eq!(built.is_ok(), direct.is_ok(), "{:?}: {:?} vs {:?}", r, built, direct);
        if let (Ok(a), Ok(b)) = (built, direct) {
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = SipMessage::parse(&bytes);
        let _ = find_message(&bytes, 400);
    }

    #[test]
    fn parse_survives_mutations(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut m = valid_message();
        for (at, byte, op) in edits {
            let i = at.index(m.len());
            match op {
                0 => m[i] = byte,
                1 => m.insert(i, byte),
                _ => { m.remove(i); }
            }
        }
        let _ = SipMessage::parse(&m);
        let _ = find_message(&m, 4096);
        let truncated = &m[..cut.index(m.len())];
        let _ = SipMessage::parse(truncated);
        if let Ok(msg) = SipMessage::parse(&m) {
            // Whatever parses must serialise to something that parses to the same message.
            prop_assert_eq!(SipMessage::parse(&msg.to_bytes()), Ok(msg));
        }
    }

    #[test]
    fn build_parse_round_trip(
        user in "[0-9]{1,16}",
        host in "[a-z]{1,10}(\\.[a-z]{2,5}){0,2}",
        port in proptest::option::of(1u16..),
        branch in "[A-Za-z0-9.!%*_+`'~-]{1,24}",
        tag in "[A-Za-z0-9]{1,12}",
        call_id in "[A-Za-z0-9@.:_-]{1,40}",
        cseq in 0u32..(1 << 31),
        body in "[ -~\\n\\r\\t\\u{80}-\\u{10ffff}]{0,200}",
        code in 100u16..700,
        reason in "[ -~]{0,20}",
    ) {
        let sent_by = match port { Some(p) => format!("{host}:{p}"), None => host.clone() };
        let ruri = format!("sip:{user}@{host}");
        let req = NewRequest {
            request_uri: &ruri, sent_by: &sent_by, branch: &branch, from_uri: &ruri,
            from_tag: &tag, to_uri: "sip:arc@vaka.example", call_id: &call_id, cseq,
            ..NewRequest::default()
        }.scaip_message(&body).unwrap();
        let parsed = SipMessage::parse(&req.to_bytes()).unwrap();
        prop_assert_eq!(parsed.body_str(), Some(body.as_str()));
        prop_assert_eq!(&parsed, &req);
        let resp = SipMessage::response(&parsed, code, &reason, &tag);
        prop_assert_eq!(SipMessage::parse(&resp.to_bytes()).unwrap(), resp);
        let mut framed = req.to_bytes();
        let len = framed.len();
        framed.extend_from_slice(b"NEXT");
        prop_assert_eq!(find_message(&framed, 100_000), Ok(Frame::Message(len)));
    }
}
