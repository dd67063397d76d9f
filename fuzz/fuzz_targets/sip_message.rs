//! `SipMessage::parse` on one datagram (or one framed TCP message), and `parse_head` (the headers
//! of one over the size limit, answered 513) agreeing with it, then what the SIP front does
//! with a message that parsed: the accessors it reads, stamping the source on the top Via, the
//! stateless response it builds. Round trips asserted: parse -> to_bytes -> parse gives the same
//! message, for the message as received, as stamped, and for the response built to it (what a
//! device must be able to parse back).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vaka_scaip::sip::{uri_user, MAX_HEADERS};
use vaka_scaip::{SipError, SipMessage, TxKey};

fn reparses_to_itself(m: &SipMessage, what: &str) {
    let bytes = m.to_bytes();
    match SipMessage::parse(&bytes) {
        // Stamping writes one Via line per hop, so a request with many hops on one line can be
        // written with more header lines than the reader takes; a received one never is.
        Err(SipError::TooManyHeaders) if m.headers().len() >= MAX_HEADERS => {}
        Ok(back) => assert_eq!(
            &back,
            m,
            "{what}: serialised {:?}",
            String::from_utf8_lossy(&bytes)
        ),
        Err(e) => panic!(
            "{what}: serialised message does not parse ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    // What a message over the size limit gets: its headers alone (answered 513 from them).
    let head = SipMessage::parse_head(data);
    if let Ok(h) = &head {
        assert!(h.body().is_empty());
        let _ = SipMessage::response(h, 513, "Message Too Large", "3f2a9c").to_bytes();
    }
    let Ok(mut m) = SipMessage::parse(data) else {
        return;
    };
    reparses_to_itself(&m, "message");
    // Whatever parses has headers that parse alone, the same ones.
    let h = head.expect("a message that parses has a head that parses");
    assert_eq!((h.start_line(), h.headers()), (m.start_line(), m.headers()));

    // What the front reads before deciding anything.
    let _ = m.top_via().response_target();
    let _ = m.top_via().branch();
    let _ = m.request_uri().and_then(uri_user);
    let _ = m.from().user();
    let _ = m.to().tag();
    let _ = m.contacts();
    let _ = m.expires();
    let _ = m.max_forwards();
    let _ = m.is_scaip();
    let _ = m.body_str();
    let _ = m.authorization();
    let _ = m.www_authenticate();
    if m.is_request() {
        let _ = TxKey::from_request(&m);
    }

    // A request is stamped with its source on receipt (RFC 3261 18.2.1, RFC 3581), then answered.
    if m.is_request() {
        m.stamp_source("192.0.2.7", 40000);
        reparses_to_itself(&m, "stamped request");
        m.stamp_source("2001:db8::7", 5061);
        reparses_to_itself(&m, "stamped request (IPv6 source)");
        let r = SipMessage::response(&m, 401, "Unauthorized", "3f2a9c");
        reparses_to_itself(&r, "response");
    }
});
