//! Which lane a datagram belongs in, decided before it is parsed (invariant 9 from the socket
//! on): a SCAIP heartbeat or info `<mrq>` (`mty` PI or IN: heartbeats, positions, sensor
//! readings) is telemetry; everything else (alarms, resets, REGISTER, OPTIONS, responses to our
//! `<mrs>`, anything unreadable) goes first. One substring search, no allocation: cheap enough
//! to run on the socket's reader, which must keep the kernel's queue from overflowing.
//!
//! It only orders work; it decides nothing about a message. A sender that labels telemetry as
//! an alarm gets its message parsed first and then treated for what it is.

/// The lane a received datagram waits in before it is parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Triage {
    /// Alarms and everything that is not clearly telemetry.
    First,
    /// A MESSAGE whose `<mrq>` says `mty` PI or IN.
    Telemetry,
}

/// The lane of `datagram` (a whole SIP message as received).
pub fn triage(datagram: &[u8]) -> Triage {
    if !datagram.starts_with(b"MESSAGE ") {
        return Triage::First;
    }
    let body = memchr::memmem::find(datagram, b"\r\n\r\n").map_or(datagram, |i| &datagram[i..]);
    body_triage(body)
}

/// The lane of an `<mrq>` body alone (the message already parsed): telemetry when its `mty`
/// is PI or IN.
pub fn body_triage(body: &[u8]) -> Triage {
    let Some(at) = memchr::memmem::find(body, b"<mty>") else {
        return Triage::First;
    };
    let value = body[at + 5..]
        .iter()
        .copied()
        .skip_while(u8::is_ascii_whitespace)
        .take(2)
        .map(|b| b.to_ascii_uppercase());
    let mut v = [0u8; 2];
    for (slot, b) in v.iter_mut().zip(value) {
        *slot = b;
    }
    match &v {
        b"PI" | b"IN" => Triage::Telemetry,
        _ => Triage::First,
    }
}

/// Whether `datagram` comes with something to check before it is answered: a request with an
/// `Authorization` header, or a response (matched to a transaction of ours, cheap). A request
/// without one is a stranger's until challenged (invariant 13), so it waits in a lane of its
/// own and a flood of them never fills the lane authenticated devices' alarms wait in. Like
/// [`triage`] it only orders work: a forged header is refused when checked.
pub fn carries_credentials(datagram: &[u8]) -> bool {
    if datagram.starts_with(b"SIP/2.0 ") {
        return true;
    }
    let head = memchr::memmem::find(datagram, b"\r\n\r\n").map_or(datagram, |i| &datagram[..i]);
    head.split(|b| *b == b'\n').skip(1).any(|line| {
        let name = line.split(|b| *b == b':').next().unwrap_or_default();
        name.trim_ascii().eq_ignore_ascii_case(b"authorization")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(mty: &str) -> Vec<u8> {
        format!(
            "MESSAGE sip:vaka@h SIP/2.0\r\nVia: SIP/2.0/UDP d;branch=z9hG4bK1\r\n\
             Content-Type: application/scaip+xml\r\n\r\n\
             <?xml version=\"1.0\"?><mrq><ver>01</ver><mty>{mty}</mty><ref>1</ref></mrq>"
        )
        .into_bytes()
    }

    #[test]
    fn heartbeats_and_info_are_telemetry_the_rest_goes_first() {
        assert_eq!(triage(&message("PI")), Triage::Telemetry);
        assert_eq!(triage(&message("IN")), Triage::Telemetry);
        assert_eq!(triage(&message(" in ")), Triage::Telemetry);
        assert_eq!(triage(&message("ME")), Triage::First);
        assert_eq!(triage(&message("RE")), Triage::First);
        assert_eq!(triage(&message("")), Triage::First);
        assert_eq!(triage(&message("I")), Triage::First);
        let register = b"REGISTER sip:h SIP/2.0\r\n\r\n<mty>PI</mty>";
        assert_eq!(triage(register), Triage::First);
        assert_eq!(triage(b"SIP/2.0 200 OK\r\n\r\n"), Triage::First);
        assert_eq!(triage(b""), Triage::First);
        assert_eq!(triage(b"MESSAGE <mty>"), Triage::First);
        // The header section is not looked at for <mty>.
        let in_header = b"MESSAGE sip:h SIP/2.0\r\nX: <mty>PI</mty>\r\n\r\n<mty>ME</mty>";
        assert_eq!(triage(in_header), Triage::First);
    }

    #[test]
    fn requests_with_an_authorization_header_and_responses_carry_credentials() {
        let with = |h: &str| format!("MESSAGE sip:h SIP/2.0\r\nVia: x\r\n{h}\r\n\r\nbody");
        assert!(carries_credentials(
            with("Authorization: Digest username=\"d\"").as_bytes()
        ));
        assert!(carries_credentials(
            with("authorization : Digest x").as_bytes()
        ));
        assert!(carries_credentials(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n"));
        assert!(!carries_credentials(with("Subject: x").as_bytes()));
        assert!(!carries_credentials(
            with("Proxy-Authorization: Digest x").as_bytes()
        ));
        assert!(!carries_credentials(
            with("X-Authorization: Digest x").as_bytes()
        ));
        // The request line and the body are not headers.
        assert!(!carries_credentials(
            b"Authorization: x\r\n\r\nAuthorization: y"
        ));
        assert!(!carries_credentials(
            b"MESSAGE sip:h SIP/2.0\r\nVia: x\r\n\r\nAuthorization: y"
        ));
        assert!(!carries_credentials(b""));
    }
}
