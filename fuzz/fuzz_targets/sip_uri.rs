//! The URI and header-value parsers, alone (they also run inside `sip_message`, but there most
//! inputs fail before them): the digest-uri / Request-URI comparison (`same_request_uri`, RFC 3261
//! 19.1.4), `uri_user`, and the typed values `NameAddr` (From/To/Contact), `Via` and `CSeq`.
//! The input is two values separated by the first newline (SIP header values never hold one).
//! Asserted: the comparison is reflexive and symmetric; each typed value that parses prints as
//! text that parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vaka_scaip::auth::same_request_uri;
use vaka_scaip::sip::{uri_user, CSeq, NameAddr, Via};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = s.split_once('\n').unwrap_or((s, s));

    assert!(same_request_uri(a, a), "not equal to itself: {a:?}");
    assert_eq!(
        same_request_uri(a, b),
        same_request_uri(b, a),
        "not symmetric: {a:?} / {b:?}"
    );
    let _ = uri_user(a);

    for v in [a, b] {
        if let Some(n) = NameAddr::parse(v) {
            let _ = (n.user(), n.tag(), n.expires());
            let text = n.to_string();
            assert_eq!(
                NameAddr::parse(&text),
                Some(n),
                "name-addr {v:?} printed as {text:?}"
            );
        }
        if let Some(via) = Via::parse(v) {
            let _ = (via.branch(), via.response_target());
            let text = via.to_string();
            assert_eq!(
                Via::parse(&text),
                Some(via),
                "Via {v:?} printed as {text:?}"
            );
        }
        if let Some(c) = CSeq::parse(v) {
            let text = c.to_string();
            assert_eq!(
                CSeq::parse(&text),
                Some(c),
                "CSeq {v:?} printed as {text:?}"
            );
        }
    }
});
