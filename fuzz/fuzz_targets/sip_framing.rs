//! `find_message` on a TCP/TLS receive buffer, driven as the stream transport drives it: take
//! keep-alives and complete messages off the front until it needs more bytes or fails (the
//! connection is then closed). The first byte picks the size limit (256 B to 64 KiB), the rest is
//! the stream. Checked for each step: a frame lies within the buffer and the limit, every shorter
//! prefix of a message is `Incomplete` (a message is never cut early), a keep-alive is only CR/LF,
//! and a framed message that parses frames again, whole, once serialised.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vaka_scaip::{find_message, Frame, SipMessage};

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let max = 256 * (usize::from(first) + 1);
    let mut buf = stream;
    loop {
        match find_message(buf, max) {
            Ok(Frame::Incomplete) => {
                assert!(
                    buf.len() < max,
                    "incomplete at {} >= limit {max}",
                    buf.len()
                );
                break;
            }
            Ok(Frame::KeepAlive(n)) => {
                assert!(n > 0 && n <= buf.len());
                assert!(buf[..n].iter().all(|b| *b == b'\r' || *b == b'\n'));
                buf = &buf[n..];
            }
            Ok(Frame::Message(n)) => {
                assert!(
                    n > 0 && n <= buf.len() && n <= max,
                    "frame {n} of {}",
                    buf.len()
                );
                for cut in [n - 1, n / 2] {
                    assert_eq!(
                        find_message(&buf[..cut], max),
                        Ok(Frame::Incomplete),
                        "prefix of {cut} of a {n}-byte message"
                    );
                }
                if let Ok(m) = SipMessage::parse(&buf[..n]) {
                    let out = m.to_bytes();
                    assert_eq!(
                        find_message(&out, out.len()),
                        Ok(Frame::Message(out.len())),
                        "serialised message does not frame whole: {:?}",
                        String::from_utf8_lossy(&out)
                    );
                }
                buf = &buf[n..];
            }
            Err(_) => break,
        }
    }
});
