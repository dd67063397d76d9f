//! Responder links: `/r/<token>`, where the token names one alarm, one receiver and one member
//! of it, and when it stops working, signed with the engine's link key (HMAC-SHA256, kept in the
//! store so links survive restarts). Unguessable without the key; a changed byte, another alarm
//! or a passed expiry is refused. Pure.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Bytes of the MAC kept in a token (128 bits).
const TAG: usize = 16;
/// Domain separation: a link key signs nothing else.
const CONTEXT: &[u8] = b"vaka-responder-link-v1\0";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub alarm: u64,
    pub receiver: String,
    /// Index of the member in the receiver's record.
    pub member: u8,
    /// Unix seconds after which the link is refused.
    pub expires_s: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkError {
    Malformed,
    Forged,
    Expired,
}

impl Link {
    fn payload(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(13 + self.receiver.len());
        p.extend_from_slice(&self.alarm.to_be_bytes());
        p.extend_from_slice(&self.expires_s.to_be_bytes());
        p.push(self.member);
        p.extend_from_slice(self.receiver.as_bytes());
        p
    }

    /// The token for this link under `key`.
    pub fn token(&self, key: &[u8]) -> String {
        let mut bytes = self.payload();
        let tag = tag(key, &bytes);
        bytes.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The link `token` names, if it was made with `key` and has not expired at `now_s`.
    pub fn verify(token: &str, key: &[u8], now_s: i64) -> Result<Link, LinkError> {
        if token.len() > 256 {
            return Err(LinkError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| LinkError::Malformed)?;
        if bytes.len() < 13 + 1 + TAG {
            return Err(LinkError::Malformed);
        }
        let (payload, got) = bytes.split_at(bytes.len() - TAG);
        let mut data = CONTEXT.to_vec();
        data.extend_from_slice(payload);
        // Constant-time comparison of the truncated tag.
        let want = crate::sign::mac(key, &data);
        if !constant_eq(&want[..TAG], got) {
            return Err(LinkError::Forged);
        }
        let link = Link {
            alarm: u64::from_be_bytes(payload[..8].try_into().expect("8 bytes")),
            expires_s: u32::from_be_bytes(payload[8..12].try_into().expect("4 bytes")),
            member: payload[12],
            receiver: String::from_utf8(payload[13..].to_vec())
                .map_err(|_| LinkError::Malformed)?,
        };
        if i64::from(link.expires_s) < now_s {
            return Err(LinkError::Expired);
        }
        Ok(link)
    }
}

fn tag(key: &[u8], payload: &[u8]) -> [u8; TAG] {
    let mut data = CONTEXT.to_vec();
    data.extend_from_slice(payload);
    let mac = crate::sign::mac(key, &data);
    mac[..TAG].try_into().expect("TAG bytes")
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn link() -> Link {
        Link {
            alarm: 42,
            receiver: "relatives".into(),
            member: 1,
            expires_s: 2_000_000_000,
        }
    }

    #[test]
    fn a_token_names_its_link() {
        let t = link().token(KEY);
        assert!(t.len() < 80, "short enough for an SMS: {t}");
        assert_eq!(Link::verify(&t, KEY, 1_900_000_000), Ok(link()));
    }

    #[test]
    fn tampered_expired_and_foreign_tokens_are_refused() {
        let t = link().token(KEY);
        // Every single changed character is refused.
        for i in 0..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(b).unwrap();
            if changed != t {
                assert!(Link::verify(&changed, KEY, 0).is_err(), "changed at {i}");
            }
        }
        assert_eq!(Link::verify(&t, b"another key", 0), Err(LinkError::Forged));
        assert_eq!(
            Link::verify(&t, KEY, 2_000_000_001),
            Err(LinkError::Expired)
        );
        // Another alarm's token does not open this alarm: the alarm is in the signed payload.
        let other = Link {
            alarm: 43,
            ..link()
        }
        .token(KEY);
        assert_eq!(Link::verify(&other, KEY, 0).unwrap().alarm, 43);
        assert_eq!(Link::verify("", KEY, 0), Err(LinkError::Malformed));
        assert_eq!(Link::verify("!!!", KEY, 0), Err(LinkError::Malformed));
    }
}
