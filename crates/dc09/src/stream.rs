//! Cutting frames out of a TCP byte stream. A frame runs from its `LF` to its `CR`; between
//! frames senders leave stray whitespace or NULs. A sender that drops the `CR` is still framed:
//! its frame ends where the next one's `LF` begins (the frame is then complete only when that
//! next frame starts, which is the best a stream allows).

/// What the front of a stream buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framed {
    /// No complete frame yet: read more and call again.
    Incomplete,
    /// The first `n` bytes are filler between frames: drop them.
    Skip(usize),
    /// A frame occupies the first `n` bytes: decode them, then drop them.
    Frame(usize),
}

/// No frame ends within `max_len` bytes: the connection should be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no DC-09 frame end within the limit")]
pub struct TooLarge;

/// Find the first frame in `buf`, never reading past `max_len` bytes of it.
pub fn next_frame(buf: &[u8], max_len: usize) -> Result<Framed, TooLarge> {
    let filler = buf
        .iter()
        .take_while(|b| **b == 0 || (b.is_ascii_whitespace() && **b != b'\n'))
        .count();
    if filler > 0 {
        return Ok(Framed::Skip(filler));
    }
    let window = &buf[..buf.len().min(max_len)];
    // Skip the frame's own LF, then the frame ends at CR (inclusive) or before the next LF.
    let from = usize::from(window.first() == Some(&b'\n'));
    match window[from.min(window.len())..]
        .iter()
        .position(|b| *b == b'\r' || *b == b'\n')
    {
        Some(i) if window[from + i] == b'\r' => Ok(Framed::Frame(from + i + 1)),
        Some(0) => Ok(Framed::Skip(from)), // LF LF: the first is filler
        Some(i) => Ok(Framed::Frame(from + i)),
        None if buf.len() >= max_len => Err(TooLarge),
        None => Ok(Framed::Incomplete),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &[u8] = b"\n96ED0016\"SIA-DCS\"0001L0#1234[]\r";

    #[test]
    fn frames_back_to_back_with_filler() {
        let mut buf = V2.to_vec();
        buf.extend_from_slice(b"\0 \r");
        buf.extend_from_slice(V2);
        assert_eq!(next_frame(&buf, 1024), Ok(Framed::Frame(V2.len())));
        let rest = &buf[V2.len()..];
        assert_eq!(next_frame(rest, 1024), Ok(Framed::Skip(3)));
        assert_eq!(next_frame(&rest[3..], 1024), Ok(Framed::Frame(V2.len())));
    }

    #[test]
    fn incomplete_and_too_large() {
        assert_eq!(next_frame(&V2[..10], 1024), Ok(Framed::Incomplete));
        assert_eq!(next_frame(b"", 1024), Ok(Framed::Incomplete));
        assert_eq!(next_frame(&V2[..10], 10), Err(TooLarge));
        assert_eq!(next_frame(V2, V2.len()), Ok(Framed::Frame(V2.len())));
    }

    #[test]
    fn lenient_missing_lf_or_cr() {
        assert_eq!(next_frame(&V2[1..], 1024), Ok(Framed::Frame(V2.len() - 1)));
        let mut no_cr = V2[..V2.len() - 1].to_vec();
        no_cr.extend_from_slice(V2);
        assert_eq!(next_frame(&no_cr, 1024), Ok(Framed::Frame(V2.len() - 1)));
        assert_eq!(next_frame(b"\n\nabc", 1024), Ok(Framed::Skip(1)));
    }
}
