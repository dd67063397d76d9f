//! Stateless server nonces and the full server-side check.
//!
//! A nonce is `hex(issued_ms) || hex(entropy) || hex(MAC)`: 48 bits of time (ms, good until the
//! year 10889), 32 bits of entropy and HMAC-SHA-256 under the server secret cut to 96 bits (RFC
//! 2104 asks for at least 80; a forgery must be guessed online, one request per try), 44 hex
//! digits in all. It is kept short because the 401 that carries it may not be larger than the
//! request it answers (no amplification, invariant 13). The server keeps no table of issued nonces: the MAC
//! proves it issued one, the embedded time bounds its life. Replays within that life are
//! caught by [`NonceCounter`], which only needs to remember nonces that were actually used.

use sha2::{Digest as _, Sha256};

use super::digest::{
    check_response, constant_time_eq, Authorization, Challenge, Credential, DigestAlgorithm,
};
use super::replay::{NcCheck, NonceCounter};
use super::uri::same_request_uri;
use super::{AuthOutcome, DigestError, InvalidReason};

/// HMAC-SHA-256 (RFC 2104), written out because it is ten lines on top of `sha2`.
pub(crate) fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// What a nonce turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Ours and within its lifetime.
    Fresh {
        /// When it was issued.
        issued_ms: u64,
    },
    /// Ours, but older than the lifetime: answer 401 with `stale=true`.
    Expired {
        /// When it was issued.
        issued_ms: u64,
    },
    /// Not one we issued (bad format or MAC).
    Forged,
}

/// What credentials without `qop` (RFC 2069: no nonce count) are worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithoutQop {
    /// Refused: nothing stops them being replayed within the nonce's life.
    Refused,
    /// Accepted once per nonce (the nonce is remembered as used until it expires); the
    /// device's next request gets 401 `stale=true` with a fresh nonce.
    Once,
    /// Accepted as often as presented while the nonce lives (replayable: only by explicit choice).
    Reusable,
}

/// What the credentials on one request must match.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The request's method.
    pub method: &'a str,
    /// The request's Request-URI: the digest `uri` must name it.
    pub request_uri: &'a str,
    /// Our realm.
    pub realm: &'a str,
    /// The one algorithm accepted (another one is a downgrade).
    pub algorithm: DigestAlgorithm,
    /// Credentials without qop.
    pub without_qop: WithoutQop,
}

/// Issues and checks nonces, and verifies Authorization headers. Cheap to clone; shares no
/// state, so any number of ingest tasks can hold one.
#[derive(Clone)]
pub struct NonceIssuer {
    secret: Vec<u8>,
    lifetime_ms: u64,
    opaque: Option<String>,
}

impl std::fmt::Debug for NonceIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("NonceIssuer")
            .field("lifetime_ms", &self.lifetime_ms)
            .finish_non_exhaustive()
    }
}

/// Time, entropy and MAC in hex digits.
const TIME_HEX: usize = 12;
const PREFIX_HEX: usize = TIME_HEX + 8;
const NONCE_LEN: usize = PREFIX_HEX + 24;

impl NonceIssuer {
    /// An issuer with a server secret (keep it out of logs; rotate it to void all nonces)
    /// and a nonce lifetime.
    pub fn new(secret: &[u8], lifetime_ms: u64) -> NonceIssuer {
        NonceIssuer {
            secret: secret.to_vec(),
            lifetime_ms,
            opaque: None,
        }
    }

    /// Put this opaque value in challenges and require clients to echo it.
    pub fn with_opaque(mut self, opaque: &str) -> NonceIssuer {
        self.opaque = Some(opaque.to_owned());
        self
    }

    /// The nonce lifetime.
    pub fn lifetime_ms(&self) -> u64 {
        self.lifetime_ms
    }

    fn mac_hex(&self, prefix: &str) -> String {
        hex::encode(&hmac_sha256(&self.secret, prefix.as_bytes())[..12])
    }

    /// A new nonce. `entropy` (random, or a counter; its low 32 bits are used) keeps nonces
    /// issued in the same millisecond distinct.
    pub fn issue(&self, now_ms: u64, entropy: u64) -> String {
        let prefix = format!("{:012x}{:08x}", now_ms & 0xffff_ffff_ffff, entropy as u32);
        let mac = self.mac_hex(&prefix);
        prefix + &mac
    }

    /// Check a nonce's origin and age.
    pub fn check(&self, nonce: &str, now_ms: u64) -> NonceCheck {
        let ok_format = nonce.len() == NONCE_LEN
            && nonce
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok_format {
            return NonceCheck::Forged;
        }
        let (prefix, mac) = nonce.split_at(PREFIX_HEX);
        if !constant_time_eq(self.mac_hex(prefix).as_bytes(), mac.as_bytes()) {
            return NonceCheck::Forged;
        }
        let Ok(issued_ms) = u64::from_str_radix(&prefix[..TIME_HEX], 16) else {
            return NonceCheck::Forged;
        };
        // A nonce from the future means our clock stepped back; treat it like an old one.
        let expired = now_ms > issued_ms.saturating_add(self.lifetime_ms)
            || issued_ms > now_ms.saturating_add(self.lifetime_ms);
        if expired {
            NonceCheck::Expired { issued_ms }
        } else {
            NonceCheck::Fresh { issued_ms }
        }
    }

    /// A challenge with a new nonce, `qop="auth"` offered.
    pub fn challenge(
        &self,
        realm: &str,
        algorithm: DigestAlgorithm,
        now_ms: u64,
        entropy: u64,
        stale: bool,
    ) -> Challenge {
        Challenge {
            realm: realm.to_owned(),
            nonce: self.issue(now_ms, entropy),
            opaque: self.opaque.clone(),
            algorithm,
            qop_auth: true,
            stale,
        }
    }

    /// The full server check of credentials against what the request must carry: realm,
    /// algorithm (only the expected one), digest `uri` (must name the Request-URI), opaque,
    /// qop policy, response, nonce origin and age, and nonce-count replay (a nonce used without
    /// qop under [`WithoutQop::Once`] counts as count 1, so it is accepted once). The response
    /// is checked before the nonce's origin: right password with a nonce we did not issue (a
    /// restart changed the secret) is `Stale`; wrong password is `Invalid` whatever the nonce.
    ///
    /// Run it after the transaction layer has filtered retransmissions: a retransmitted
    /// request carries the same `nc` and would otherwise count as a replay.
    pub fn verify(
        &self,
        auth: &Authorization,
        expected: &Expected<'_>,
        credential: Credential<'_>,
        now_ms: u64,
        counter: &mut NonceCounter,
    ) -> AuthOutcome {
        if auth.realm != expected.realm {
            return AuthOutcome::Invalid(InvalidReason::WrongRealm);
        }
        // Checked before any hash: an answer in another algorithm is a downgrade, never tried.
        if auth.algorithm != expected.algorithm {
            return AuthOutcome::Invalid(InvalidReason::Algorithm);
        }
        // Credentials computed for another Request-URI are not for this request.
        if !same_request_uri(&auth.uri, expected.request_uri) {
            return AuthOutcome::Invalid(InvalidReason::UriMismatch);
        }
        // A nonce we cannot verify is checked no further than the response: one issued before a
        // restart (or by another node) with the right password is stale, not an attack, and
        // must get a new challenge (RFC 2617 3.2.1), never a 403 the device would not retry.
        let nonce = self.check(&auth.nonce, now_ms);
        if let Some(want) = &self.opaque {
            if auth.opaque.as_deref() != Some(want.as_str()) {
                return AuthOutcome::Invalid(InvalidReason::Opaque);
            }
        }
        if auth.qop.is_none() && expected.without_qop == WithoutQop::Refused {
            return AuthOutcome::Invalid(InvalidReason::QopRequired);
        }
        match check_response(auth, expected.method, credential) {
            Ok(true) => {}
            Ok(false) if nonce == NonceCheck::Forged => {
                return AuthOutcome::Invalid(InvalidReason::ForgedNonce)
            }
            Ok(false) => return AuthOutcome::Invalid(InvalidReason::BadResponse),
            Err(DigestError::UnsupportedQop) => {
                return AuthOutcome::Invalid(InvalidReason::UnsupportedQop)
            }
            Err(_) => return AuthOutcome::Invalid(InvalidReason::Malformed),
        }
        let issued_ms = match nonce {
            NonceCheck::Fresh { issued_ms } => issued_ms,
            // Right password, old or unknown nonce: the client retries with a new one silently.
            NonceCheck::Expired { .. } | NonceCheck::Forged => return AuthOutcome::Stale,
        };
        let nc = match (auth.nc, expected.without_qop) {
            (Some(nc), _) => nc,
            // RFC 2069 allowed once per nonce: the nonce's first (and only) use is count 1.
            (None, WithoutQop::Once) => 1,
            (None, _) => return AuthOutcome::Ok, // explicitly reusable: nothing to count
        };
        match counter.check(&auth.nonce, issued_ms, nc, now_ms, self.lifetime_ms) {
            NcCheck::Fresh => AuthOutcome::Ok,
            NcCheck::Replay => AuthOutcome::Invalid(InvalidReason::Replay),
            NcCheck::Forgotten => AuthOutcome::Stale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::digest::authorize;

    #[test]
    fn hmac_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Keys longer than a block are hashed first (RFC 4231 case 6).
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn nonce_expiry_and_forgery() {
        let issuer = NonceIssuer::new(b"server secret", 60_000);
        let n = issuer.issue(1_000_000, 42);
        assert_eq!(n.len(), NONCE_LEN);
        assert_ne!(n, issuer.issue(1_000_000, 43));
        assert_eq!(
            issuer.check(&n, 1_000_000),
            NonceCheck::Fresh {
                issued_ms: 1_000_000
            }
        );
        assert_eq!(
            issuer.check(&n, 1_060_000),
            NonceCheck::Fresh {
                issued_ms: 1_000_000
            }
        );
        assert_eq!(
            issuer.check(&n, 1_060_001),
            NonceCheck::Expired {
                issued_ms: 1_000_000
            }
        );
        assert_eq!(
            issuer.check(&n, 950_000),
            NonceCheck::Fresh {
                issued_ms: 1_000_000
            }
        );
        assert_eq!(
            issuer.check(&n, 0),
            NonceCheck::Expired {
                issued_ms: 1_000_000
            }
        );
        assert_eq!(
            issuer.check(&n, u64::MAX),
            NonceCheck::Expired {
                issued_ms: 1_000_000
            }
        );
        // Another secret, an edited time stamp, a flipped MAC digit, junk: all forged.
        let other = NonceIssuer::new(b"other secret", 60_000);
        assert_eq!(other.check(&n, 1_000_000), NonceCheck::Forged);
        let later = format!("{:012x}{}", 2_000_000u64, &n[TIME_HEX..]);
        assert_eq!(issuer.check(&later, 2_000_000), NonceCheck::Forged);
        let mut flipped = n.clone().into_bytes();
        let last = NONCE_LEN - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            issuer.check(std::str::from_utf8(&flipped).unwrap(), 1_000_000),
            NonceCheck::Forged
        );
        for junk in [
            "",
            "abc",
            &n.to_uppercase(),
            &format!("{n}0"),
            &"g".repeat(64),
        ] {
            assert_eq!(issuer.check(junk, 1_000_000), NonceCheck::Forged, "{junk}");
        }
        assert!(!format!("{issuer:?}").contains("secret"));
    }

    #[test]
    fn verify_outcomes() {
        let realm = "alarm.vaka.example";
        let issuer = NonceIssuer::new(b"k", 30_000).with_opaque("op");
        let mut counter = NonceCounter::new(16);
        let ch = issuer.challenge(realm, DigestAlgorithm::Sha256, 10_000, 1, false);
        assert!(ch.to_header_value().contains("qop=\"auth\""));
        let pw = Credential::Password("secret");
        let auth = |nc: u32| {
            authorize(
                &ch,
                "MESSAGE",
                "sip:arc@alarm.vaka.example",
                "4600123456",
                "secret",
                "cn",
                nc,
            )
        };
        let uri = "sip:arc@alarm.vaka.example";
        let message = expect("MESSAGE", uri, realm, DigestAlgorithm::Sha256);
        let mut v = |a: &Authorization, now: u64| issuer.verify(a, &message, pw, now, &mut counter);

        assert_eq!(v(&auth(1), 11_000), AuthOutcome::Ok);
        assert_eq!(
            v(&auth(1), 11_001),
            AuthOutcome::Invalid(InvalidReason::Replay)
        );
        assert_eq!(v(&auth(3), 12_000), AuthOutcome::Ok);
        assert_eq!(
            v(&auth(2), 12_000),
            AuthOutcome::Invalid(InvalidReason::Replay)
        );
        assert_eq!(v(&auth(4), 40_001), AuthOutcome::Stale);
        let mut wrong = auth(5);
        wrong.response = "0".repeat(64);
        assert_eq!(
            v(&wrong, 12_000),
            AuthOutcome::Invalid(InvalidReason::BadResponse)
        );
        // A wrong password on an expired nonce is invalid, not stale.
        assert_eq!(
            v(&wrong, 90_000),
            AuthOutcome::Invalid(InvalidReason::BadResponse)
        );
        // A nonce of another secret (a restart, another node) with the right password: stale,
        // so the device retries at once; with a wrong one (or a foreign forged one): refused.
        let other_issuer = NonceIssuer::new(b"before restart", 30_000).with_opaque("op");
        let old_ch = other_issuer.challenge(realm, DigestAlgorithm::Sha256, 10_000, 1, false);
        let old = |password: &str| {
            authorize(
                &old_ch,
                "MESSAGE",
                "sip:arc@alarm.vaka.example",
                "4600123456",
                password,
                "cn",
                7,
            )
        };
        assert_eq!(v(&old("secret"), 12_000), AuthOutcome::Stale);
        assert_eq!(
            v(&old("wrong"), 12_000),
            AuthOutcome::Invalid(InvalidReason::ForgedNonce)
        );
        let mut forged = auth(6);
        forged.nonce = NonceIssuer::new(b"evil", 30_000).issue(10_000, 1);
        assert_eq!(
            v(&forged, 12_000),
            AuthOutcome::Invalid(InvalidReason::ForgedNonce)
        );
        let mut no_opaque = auth(7);
        no_opaque.opaque = None;
        assert_eq!(
            v(&no_opaque, 12_000),
            AuthOutcome::Invalid(InvalidReason::Opaque)
        );
        let mut realm2 = auth(8);
        realm2.realm = "other".into();
        assert_eq!(
            v(&realm2, 12_000),
            AuthOutcome::Invalid(InvalidReason::WrongRealm)
        );
        let ha1 = DigestAlgorithm::Sha256.ha1("4600123456", realm, "secret");
        assert_eq!(
            issuer.verify(
                &auth(9),
                &message,
                Credential::Ha1(&ha1),
                12_000,
                &mut counter
            ),
            AuthOutcome::Ok
        );
        let register = expect("REGISTER", uri, realm, DigestAlgorithm::Sha256);
        assert_eq!(
            issuer.verify(&auth(10), &register, pw, 12_000, &mut counter),
            AuthOutcome::Invalid(InvalidReason::BadResponse)
        );
    }

    fn expect<'a>(
        method: &'a str,
        request_uri: &'a str,
        realm: &'a str,
        algorithm: DigestAlgorithm,
    ) -> Expected<'a> {
        Expected {
            method,
            request_uri,
            realm,
            algorithm,
            without_qop: WithoutQop::Refused,
        }
    }

    /// The configured algorithm is the only one: an MD5 answer under SHA-256 is refused before
    /// its response is even computed, and the other way round.
    #[test]
    fn another_algorithm_is_a_downgrade() {
        let issuer = NonceIssuer::new(b"k", 30_000);
        let mut counter = NonceCounter::new(4);
        let uri = "sip:arc@r";
        for (entropy, offered, configured) in [
            (1, DigestAlgorithm::Md5, DigestAlgorithm::Sha256),
            (2, DigestAlgorithm::Sha256, DigestAlgorithm::Md5),
        ] {
            // The client answers in `offered` (e.g. a challenge it made up, or an old one).
            let ch = issuer.challenge("r", offered, 0, entropy, false);
            let auth = authorize(&ch, "MESSAGE", uri, "u", "p", "c", 1);
            let want = expect("MESSAGE", uri, "r", configured);
            assert_eq!(
                issuer.verify(&auth, &want, Credential::Password("p"), 1, &mut counter),
                AuthOutcome::Invalid(InvalidReason::Algorithm)
            );
            let right = expect("MESSAGE", uri, "r", offered);
            assert_eq!(
                issuer.verify(&auth, &right, Credential::Password("p"), 1, &mut counter),
                AuthOutcome::Ok
            );
        }
    }

    /// Credentials made for another Request-URI are refused even with the right password.
    #[test]
    fn digest_uri_must_name_the_request_uri() {
        let issuer = NonceIssuer::new(b"k", 30_000);
        let mut counter = NonceCounter::new(4);
        let ch = issuer.challenge("r", DigestAlgorithm::Md5, 0, 1, false);
        let auth = authorize(&ch, "MESSAGE", "sip:alarm@10.0.0.1:5060", "u", "p", "c", 1);
        let pw = Credential::Password("p");
        let other = expect(
            "MESSAGE",
            "sip:other@10.0.0.1:5060",
            "r",
            DigestAlgorithm::Md5,
        );
        assert_eq!(
            issuer.verify(&auth, &other, pw, 1, &mut counter),
            AuthOutcome::Invalid(InvalidReason::UriMismatch)
        );
        // The same URI written differently (RFC 3261 19.1.4) is the same.
        let same = expect(
            "MESSAGE",
            "SIP:alarm@10.0.0.1:5060",
            "r",
            DigestAlgorithm::Md5,
        );
        assert_eq!(
            issuer.verify(&auth, &same, pw, 1, &mut counter),
            AuthOutcome::Ok
        );
    }

    /// Without qop: refused by default, accepted once per nonce for a device set to single-use
    /// nonces (a replay, even with another request line, is refused), or reusable if chosen.
    #[test]
    fn rfc2069_refused_single_use_or_reusable() {
        let issuer = NonceIssuer::new(b"k", 30_000);
        let mut counter = NonceCounter::new(4);
        let mut ch = issuer.challenge("r", DigestAlgorithm::Md5, 0, 0, false);
        ch.qop_auth = false;
        let auth = authorize(&ch, "REGISTER", "sip:r", "u", "p", "", 0);
        let pw = Credential::Password("p");
        let policy = |without_qop| Expected {
            without_qop,
            ..expect("REGISTER", "sip:r", "r", DigestAlgorithm::Md5)
        };
        assert_eq!(
            issuer.verify(&auth, &policy(WithoutQop::Refused), pw, 1, &mut counter),
            AuthOutcome::Invalid(InvalidReason::QopRequired)
        );
        let reusable = policy(WithoutQop::Reusable);
        assert_eq!(
            issuer.verify(&auth, &reusable, pw, 1, &mut counter),
            AuthOutcome::Ok
        );
        assert_eq!(
            issuer.verify(&auth, &reusable, pw, 2, &mut counter),
            AuthOutcome::Ok
        );
        assert_eq!(counter.len(), 0);
        let once = policy(WithoutQop::Once);
        assert_eq!(
            issuer.verify(&auth, &once, pw, 3, &mut counter),
            AuthOutcome::Ok
        );
        assert_eq!(counter.len(), 1, "the used nonce is remembered");
        assert_eq!(
            issuer.verify(&auth, &once, pw, 4, &mut counter),
            AuthOutcome::Invalid(InvalidReason::Replay)
        );
        // Expired: forgotten, and the nonce itself is stale anyway.
        counter.purge_expired(40_000, issuer.lifetime_ms());
        assert_eq!(
            issuer.verify(&auth, &once, pw, 40_000, &mut counter),
            AuthOutcome::Stale
        );
        // A nonce used with qop cannot be used again without it.
        let ch = issuer.challenge("r", DigestAlgorithm::Md5, 100, 1, false);
        let with_qop = authorize(&ch, "REGISTER", "sip:r", "u", "p", "c", 1);
        assert_eq!(
            issuer.verify(&with_qop, &once, pw, 200, &mut counter),
            AuthOutcome::Ok
        );
        let mut bare = with_qop.clone();
        (bare.qop, bare.nc, bare.cnonce) = (None, None, None);
        bare.response = crate::auth::expected_response(&bare, "REGISTER", pw).unwrap();
        assert_eq!(
            issuer.verify(&bare, &once, pw, 300, &mut counter),
            AuthOutcome::Invalid(InvalidReason::Replay)
        );
    }
}
