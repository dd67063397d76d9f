//! SCAIP's XML bodies. `Mrq::parse` is what the SIP front runs on the body of every
//! authenticated MESSAGE (after `body_str`, so on UTF-8 only). Then, as the front does:
//! - a request that parsed: its class, position and GGA fix are read; round trip
//!   parse -> to_xml -> parse gives the same request (position values the parser dropped as
//!   malformed are not written, so `lge.rejected` starts empty again);
//! - a request refused: the `<mrs>` answer echoing its `ref` with the error's `snu` must parse at
//!   the device as that same `ref` and `snu`.
//!
//! The same bytes also go through `Mrs::parse` (the device side's reader of our answers; the
//! root element decides which of the two gets past its first tag), with its round trip.
//!
//! XML cannot carry every character: the writer drops C0 controls other than tab, newline and
//! CR, and U+FFFE/U+FFFF. Exact round trips are asserted only for values free of those; for
//! the others the written document must still parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vaka_scaip::scaip::{Mrq, Mrs};

fn carriable(s: &str) -> bool {
    !s.chars().any(|c| {
        (c < '\u{20}' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
    })
}

fn mrq_texts(m: &Mrq) -> impl Iterator<Item = &str> {
    [
        &m.ver, &m.did, &m.dco, &m.dte, &m.stc, &m.stt, &m.lco, &m.lva, &m.lte, &m.ico, &m.ite,
    ]
    .into_iter()
    .flatten()
    .map(String::as_str)
    .chain(m.crd.iter().map(String::as_str))
    .chain([m.reference.as_str(), m.cid.as_str(), m.dty.as_str()])
    .chain(m.lge.iter().flat_map(|l| l.gga.as_deref()))
}

/// The request as written back: position values dropped as malformed are not written.
fn without_rejected(mut m: Mrq) -> Mrq {
    if let Some(lge) = &mut m.lge {
        lge.rejected.clear();
    }
    m
}

fn check_mrq(s: &str) {
    match Mrq::parse(s) {
        Ok(m) => {
            let _ = (
                m.class(),
                m.priority(),
                m.version(),
                m.heartbeat_adjustable(),
            );
            let _ = m.position();
            if let Some(lge) = &m.lge {
                let _ = lge.gga().map(|g| (g.is_valid(), g.position()));
            }
            let xml = m.to_xml();
            let back = match Mrq::parse(&xml) {
                Ok(b) => b,
                Err(e) => panic!("accepted <mrq> written as {xml:?} is refused: {e}"),
            };
            if mrq_texts(&m).all(carriable) {
                assert_eq!(back, without_rejected(m), "written as {xml:?}");
            } else {
                // Written once, the request holds only what XML carries: a fixed point (a value
                // that lost a character may have been dropped as malformed on the way).
                let again = Mrq::parse(&back.to_xml()).map(without_rejected);
                assert_eq!(again, Ok(without_rejected(back)));
            }
        }
        Err(e) => {
            let reference = e.reference().unwrap_or("");
            let _ = e.detail();
            let answer = Mrs::new(reference, e.kind().snu());
            let xml = answer.to_xml();
            match Mrs::parse(&xml) {
                Ok(got) if carriable(reference) => assert_eq!(got, answer, "answer {xml:?}"),
                Ok(_) => {}
                Err(e) => panic!("answer {xml:?} does not parse: {e}"),
            }
        }
    }
}

fn check_mrs(s: &str) {
    let Ok(m) = Mrs::parse(s) else {
        return;
    };
    let xml = m.to_xml();
    let back = match Mrs::parse(&xml) {
        Ok(b) => b,
        Err(e) => panic!("accepted <mrs> written as {xml:?} is refused: {e}"),
    };
    let texts = [&m.ste, &m.cve, &m.tnu].into_iter().flatten();
    if carriable(&m.reference) && texts.map(String::as_str).all(carriable) {
        assert_eq!(back, m, "written as {xml:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    check_mrq(s);
    check_mrs(s);
});
