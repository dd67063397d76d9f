//! Message framing on stream transports (TCP/TLS): RFC 3261 §18.3 delimits messages by the
//! empty line after the headers plus Content-Length bytes of body.

use super::message::{find_head_end, parse_content_length, split_head, HeaderName};

/// What the front of a stream buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Not enough bytes yet: read more and call again.
    Incomplete,
    /// A complete message occupies the first `n` bytes: parse them, then drop them.
    Message(usize),
    /// The first `n` bytes are CR/LF keep-alives (RFC 5626: `CRLFCRLF` ping, `CRLF` pong).
    /// Drop them; a server may answer a ping with a single CRLF.
    KeepAlive(usize),
}

/// Why a stream can no longer be framed; the connection should be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Headers or headers+body exceed the limit.
    #[error("message larger than the limit")]
    TooLarge,
    /// Content-Length is not a number, or two differ.
    #[error("invalid Content-Length")]
    BadContentLength,
    /// The header section is not valid SIP.
    #[error("malformed header section")]
    BadHeaders,
}

/// Find the first complete message in a stream buffer, never reading past `max_len` bytes.
///
/// A missing Content-Length counts as 0: RFC 3261 requires it on streams, but devices omit it
/// on body-less requests, and a message with a body but no length cannot be framed anyway.
pub fn find_message(buf: &[u8], max_len: usize) -> Result<Frame, FramingError> {
    let crlf = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    if crlf > 0 {
        return Ok(Frame::KeepAlive(crlf));
    }
    let window = &buf[..buf.len().min(max_len)];
    let Some((head_end, body_start)) = find_head_end(window) else {
        return if buf.len() >= max_len {
            Err(FramingError::TooLarge)
        } else {
            Ok(Frame::Incomplete)
        };
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let (_, fields) = split_head(&head).map_err(|_| FramingError::BadHeaders)?;
    let mut length: Option<usize> = None;
    for (name, value) in &fields {
        if HeaderName::from_wire(name) == HeaderName::ContentLength {
            let n = parse_content_length(value).ok_or(FramingError::BadContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(FramingError::BadContentLength);
            }
            length = Some(n);
        }
    }
    let total = body_start
        .checked_add(length.unwrap_or(0))
        .ok_or(FramingError::TooLarge)?;
    if total > max_len {
        Err(FramingError::TooLarge)
    } else if buf.len() < total {
        Ok(Frame::Incomplete)
    } else {
        Ok(Frame::Message(total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"OPTIONS sip:arc@vaka.example SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
l: 5\r\n\r\nhello";

    #[test]
    fn frames() {
        let n = MSG.len();
        let mut two = MSG.to_vec();
        two.extend_from_slice(MSG);
        let cases: Vec<(&[u8], usize, Result<Frame, FramingError>)> = vec![
            (b"", 1000, Ok(Frame::Incomplete)),
            (&MSG[..20], 1000, Ok(Frame::Incomplete)),
            (&MSG[..n - 1], 1000, Ok(Frame::Incomplete)),
            (MSG, 1000, Ok(Frame::Message(n))),
            (&two, 1000, Ok(Frame::Message(n))),
            (b"\r\n\r\nOPTIONS", 1000, Ok(Frame::KeepAlive(4))),
            (MSG, n - 1, Err(FramingError::TooLarge)),
            (&MSG[..30], 30, Err(FramingError::TooLarge)),
            (
                b"A sip:x SIP/2.0\r\nContent-Length: x\r\n\r\n",
                1000,
                Err(FramingError::BadContentLength),
            ),
            (
                b"A sip:x SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab",
                1000,
                Err(FramingError::BadContentLength),
            ),
            (
                b"A sip:x SIP/2.0\r\nno colon\r\n\r\n",
                1000,
                Err(FramingError::BadHeaders),
            ),
            (
                b"A sip:x SIP/2.0\r\nX: y\r\n\r\nrest",
                1000,
                Ok(Frame::Message(25)),
            ),
            (
                b"A sip:x SIP/2.0\nContent-Length:\n 2\n\nab",
                1000,
                Ok(Frame::Message(38)),
            ),
        ];
        for (i, (buf, max, want)) in cases.into_iter().enumerate() {
            assert_eq!(find_message(buf, max), want, "case {i}");
        }
    }

    #[test]
    fn huge_content_length_is_too_large_before_body_arrives() {
        let buf = b"MESSAGE sip:x SIP/2.0\r\nContent-Length: 999999999\r\n\r\n";
        assert_eq!(find_message(buf, 65_536), Err(FramingError::TooLarge));
    }
}
