//! Stateless server nonces and the full server-side check.
//!
//! A nonce is `hex(issued_ms) || hex(entropy) || hex(MAC)` where the MAC is HMAC-SHA-256 under
//! the server secret, cut to 128 bits. The server keeps no table of issued nonces: the MAC
//! proves it issued one, the embedded time bounds its life. Replays within that life are
//! caught by [`NonceCounter`], which only needs to remember nonces that were actually used.

use sha2::{Digest as _, Sha256};

use super::digest::{
    check_response, constant_time_eq, Authorization, Challenge, Credential, DigestAlgorithm,
};
use super::replay::{NcCheck, NonceCounter};
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

/// Issues and checks nonces, and verifies Authorization headers. Cheap to clone; shares no
/// state, so any number of ingest tasks can hold one.
#[derive(Clone)]
pub struct NonceIssuer {
    secret: Vec<u8>,
    lifetime_ms: u64,
    opaque: Option<String>,
    allow_rfc2069: bool,
}

impl std::fmt::Debug for NonceIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("NonceIssuer")
            .field("lifetime_ms", &self.lifetime_ms)
            .finish_non_exhaustive()
    }
}

const NONCE_LEN: usize = 64;

impl NonceIssuer {
    /// An issuer with a server secret (keep it out of logs; rotate it to void all nonces)
    /// and a nonce lifetime. Credentials without qop (RFC 2069) are accepted by default.
    pub fn new(secret: &[u8], lifetime_ms: u64) -> NonceIssuer {
        NonceIssuer {
            secret: secret.to_vec(),
            lifetime_ms,
            opaque: None,
            allow_rfc2069: true,
        }
    }

    /// Put this opaque value in challenges and require clients to echo it.
    pub fn with_opaque(mut self, opaque: &str) -> NonceIssuer {
        self.opaque = Some(opaque.to_owned());
        self
    }

    /// Refuse credentials without `qop=auth` (RFC 2069 has no replay protection within a
    /// nonce's lifetime).
    pub fn require_qop(mut self) -> NonceIssuer {
        self.allow_rfc2069 = false;
        self
    }

    /// The nonce lifetime.
    pub fn lifetime_ms(&self) -> u64 {
        self.lifetime_ms
    }

    fn mac_hex(&self, prefix: &str) -> String {
        hex::encode(&hmac_sha256(&self.secret, prefix.as_bytes())[..16])
    }

    /// A new nonce. `entropy` (random, or a counter) keeps nonces issued in the same
    /// millisecond distinct.
    pub fn issue(&self, now_ms: u64, entropy: u64) -> String {
        let prefix = format!("{now_ms:016x}{entropy:016x}");
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
        let (prefix, mac) = nonce.split_at(32);
        if !constant_time_eq(self.mac_hex(prefix).as_bytes(), mac.as_bytes()) {
            return NonceCheck::Forged;
        }
        let Ok(issued_ms) = u64::from_str_radix(&prefix[..16], 16) else {
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

    /// The full server check of credentials on a request with `method`: realm, opaque, response,
    /// nonce origin and age, and (with qop) nonce-count replay. The response is checked before
    /// the nonce's origin: right password with a nonce we did not issue (a restart changed the
    /// secret) is `Stale`; wrong password is `Invalid` whatever the nonce.
    ///
    /// Run it after the transaction layer has filtered retransmissions: a retransmitted
    /// request carries the same `nc` and would otherwise count as a replay.
    /// The digest-uri is not compared with the Request-URI: devices disagree on its form,
    /// and it is covered by the response hash anyway.
    pub fn verify(
        &self,
        auth: &Authorization,
        method: &str,
        realm: &str,
        credential: Credential<'_>,
        now_ms: u64,
        counter: &mut NonceCounter,
    ) -> AuthOutcome {
        if auth.realm != realm {
            return AuthOutcome::Invalid(InvalidReason::WrongRealm);
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
        if auth.qop.is_none() && !self.allow_rfc2069 {
            return AuthOutcome::Invalid(InvalidReason::QopRequired);
        }
        match check_response(auth, method, credential) {
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
        let Some(nc) = auth.nc else {
            return AuthOutcome::Ok; // RFC 2069: nothing to count
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
        let later = format!("{:016x}{}", 2_000_000u64, &n[16..]);
        assert_eq!(issuer.check(&later, 2_000_000), NonceCheck::Forged);
        let mut flipped = n.clone().into_bytes();
        flipped[63] = if flipped[63] == b'0' { b'1' } else { b'0' };
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
        let mut v =
            |a: &Authorization, now: u64| issuer.verify(a, "MESSAGE", realm, pw, now, &mut counter);

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
                "MESSAGE",
                realm,
                Credential::Ha1(&ha1),
                12_000,
                &mut counter
            ),
            AuthOutcome::Ok
        );
        assert_eq!(
            issuer.verify(&auth(10), "REGISTER", realm, pw, 12_000, &mut counter),
            AuthOutcome::Invalid(InvalidReason::BadResponse)
        );
    }

    #[test]
    fn rfc2069_and_require_qop() {
        let issuer = NonceIssuer::new(b"k", 30_000);
        let mut counter = NonceCounter::new(4);
        let mut ch = issuer.challenge("r", DigestAlgorithm::Md5, 0, 0, false);
        ch.qop_auth = false;
        let auth = authorize(&ch, "REGISTER", "sip:r", "u", "p", "", 0);
        let pw = Credential::Password("p");
        assert_eq!(
            issuer.verify(&auth, "REGISTER", "r", pw, 1, &mut counter),
            AuthOutcome::Ok
        );
        assert_eq!(
            issuer.verify(&auth, "REGISTER", "r", pw, 2, &mut counter),
            AuthOutcome::Ok
        );
        assert_eq!(counter.len(), 0);
        let strict = issuer.clone().require_qop();
        assert_eq!(
            strict.verify(&auth, "REGISTER", "r", pw, 1, &mut counter),
            AuthOutcome::Invalid(InvalidReason::QopRequired)
        );
    }
}
