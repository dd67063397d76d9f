//! Digest challenge and credentials (RFC 3261 §22.4, RFC 7616 with `qop=auth`, RFC 2069
//! without qop), the response computation, and the client side.

use md5::Md5;
use sha2::{Digest as _, Sha256};

use super::params::{get, parse_auth_params, push_quoted, push_token};
use super::DigestError;

/// Hash algorithm of a digest exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DigestAlgorithm {
    /// `MD5`: what SIP devices support; the default when `algorithm` is absent.
    #[default]
    Md5,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
}

impl DigestAlgorithm {
    /// Parse the `algorithm` value (case-insensitive). The `-sess` variants are refused.
    pub fn parse(s: &str) -> Option<DigestAlgorithm> {
        if s.eq_ignore_ascii_case("MD5") {
            Some(DigestAlgorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Some(DigestAlgorithm::Sha256)
        } else {
            None
        }
    }

    /// The token as written in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }

    /// Lower-case hex hash of `data`.
    pub fn hash_hex(self, data: &str) -> String {
        match self {
            DigestAlgorithm::Md5 => hex::encode(Md5::digest(data.as_bytes())),
            DigestAlgorithm::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }

    /// HA1 = H(username:realm:password): what a server may store instead of the password.
    pub fn ha1(self, username: &str, realm: &str, password: &str) -> String {
        self.hash_hex(&format!("{username}:{realm}:{password}"))
    }
}

/// A server's challenge: the value of WWW-Authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space, e.g. the alarm receiver's domain.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque value the client must echo.
    pub opaque: Option<String>,
    /// Hash algorithm.
    pub algorithm: DigestAlgorithm,
    /// Whether `qop="auth"` is offered (false = RFC 2069 style).
    pub qop_auth: bool,
    /// The previous nonce was valid but expired: retry with this one, no new password prompt.
    pub stale: bool,
}

impl Challenge {
    /// The WWW-Authenticate header value.
    pub fn to_header_value(&self) -> String {
        let mut out = String::from("Digest ");
        push_quoted(&mut out, "realm", &self.realm);
        push_quoted(&mut out, "nonce", &self.nonce);
        if let Some(o) = &self.opaque {
            push_quoted(&mut out, "opaque", o);
        }
        // An absent algorithm means MD5 (RFC 7616 3.3): left out then, since a 401 may not be
        // larger than the request it answers.
        if self.algorithm != DigestAlgorithm::Md5 {
            push_token(&mut out, "algorithm", self.algorithm.as_str());
        }
        if self.qop_auth {
            push_quoted(&mut out, "qop", "auth");
        }
        if self.stale {
            push_token(&mut out, "stale", "true");
        }
        out
    }

    /// Parse a WWW-Authenticate value (client side).
    pub fn parse(s: &str) -> Result<Challenge, DigestError> {
        let (scheme, p) = parse_auth_params(s)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::NotDigest);
        }
        let algorithm = match get(&p, "algorithm") {
            None => DigestAlgorithm::Md5,
            Some(a) => DigestAlgorithm::parse(a).ok_or(DigestError::UnsupportedAlgorithm)?,
        };
        let qop_auth = get(&p, "qop")
            .is_some_and(|q| q.split(',').any(|o| o.trim().eq_ignore_ascii_case("auth")));
        Ok(Challenge {
            realm: get(&p, "realm")
                .ok_or(DigestError::Missing("realm"))?
                .to_owned(),
            nonce: get(&p, "nonce")
                .ok_or(DigestError::Missing("nonce"))?
                .to_owned(),
            opaque: get(&p, "opaque").map(str::to_owned),
            algorithm,
            qop_auth,
            stale: get(&p, "stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }
}

/// A client's credentials: the value of Authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// User name (for SCAIP devices typically the controller id or SIP user).
    pub username: String,
    /// Realm from the challenge.
    pub realm: String,
    /// Nonce from the challenge.
    pub nonce: String,
    /// The digest-uri (the Request-URI in SIP).
    pub uri: String,
    /// The computed response, hex.
    pub response: String,
    /// Hash algorithm.
    pub algorithm: DigestAlgorithm,
    /// Client nonce (with qop).
    pub cnonce: Option<String>,
    /// Quality of protection (`auth`), absent for RFC 2069.
    pub qop: Option<String>,
    /// Nonce count (with qop).
    pub nc: Option<u32>,
    /// Opaque echoed from the challenge.
    pub opaque: Option<String>,
}

impl Authorization {
    /// Parse an Authorization value. `Basic` and other schemes give [`DigestError::NotDigest`].
    pub fn parse(s: &str) -> Result<Authorization, DigestError> {
        let (scheme, p) = parse_auth_params(s)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::NotDigest);
        }
        let req = |name: &'static str| {
            get(&p, name)
                .map(str::to_owned)
                .ok_or(DigestError::Missing(name))
        };
        let algorithm = match get(&p, "algorithm") {
            None => DigestAlgorithm::Md5,
            Some(a) => DigestAlgorithm::parse(a).ok_or(DigestError::UnsupportedAlgorithm)?,
        };
        let nc = match get(&p, "nc") {
            None => None,
            Some(n) if (1..=8).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(u32::from_str_radix(n, 16).map_err(|_| DigestError::Malformed)?)
            }
            Some(_) => return Err(DigestError::Malformed),
        };
        Ok(Authorization {
            username: req("username")?,
            realm: req("realm")?,
            nonce: req("nonce")?,
            uri: req("uri")?,
            response: req("response")?,
            algorithm,
            cnonce: get(&p, "cnonce").map(str::to_owned),
            qop: get(&p, "qop").map(str::to_owned),
            nc,
            opaque: get(&p, "opaque").map(str::to_owned),
        })
    }

    /// The Authorization header value.
    pub fn to_header_value(&self) -> String {
        let mut out = String::from("Digest ");
        push_quoted(&mut out, "username", &self.username);
        push_quoted(&mut out, "realm", &self.realm);
        push_quoted(&mut out, "nonce", &self.nonce);
        push_quoted(&mut out, "uri", &self.uri);
        push_quoted(&mut out, "response", &self.response);
        push_token(&mut out, "algorithm", self.algorithm.as_str());
        if let Some(c) = &self.cnonce {
            push_quoted(&mut out, "cnonce", c);
        }
        if let Some(o) = &self.opaque {
            push_quoted(&mut out, "opaque", o);
        }
        if let Some(q) = &self.qop {
            push_token(&mut out, "qop", q);
        }
        if let Some(n) = self.nc {
            push_token(&mut out, "nc", &format!("{n:08x}"));
        }
        out
    }
}

/// What the server knows about the user's secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// The password itself.
    Password(&'a str),
    /// HA1 = H(username:realm:password) in hex, for the algorithm in use.
    Ha1(&'a str),
}

/// The expected `response` for credentials `auth` on a request with `method`.
/// Errors when qop is not `auth` or its fields are missing.
pub fn expected_response(
    auth: &Authorization,
    method: &str,
    credential: Credential<'_>,
) -> Result<String, DigestError> {
    let alg = auth.algorithm;
    let ha1 = match credential {
        Credential::Password(p) => alg.ha1(&auth.username, &auth.realm, p),
        Credential::Ha1(h) => h.to_ascii_lowercase(),
    };
    let ha2 = alg.hash_hex(&format!("{method}:{}", auth.uri));
    match auth.qop.as_deref() {
        None => Ok(alg.hash_hex(&format!("{ha1}:{}:{ha2}", auth.nonce))),
        Some(q) if q.eq_ignore_ascii_case("auth") => {
            let nc = auth.nc.ok_or(DigestError::Missing("nc"))?;
            let cnonce = auth
                .cnonce
                .as_deref()
                .ok_or(DigestError::Missing("cnonce"))?;
            Ok(alg.hash_hex(&format!(
                "{ha1}:{}:{nc:08x}:{cnonce}:auth:{ha2}",
                auth.nonce
            )))
        }
        Some(_) => Err(DigestError::UnsupportedQop),
    }
}

/// Compare two strings in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Check a response against the credential (no nonce or replay checks; see
/// [`super::NonceIssuer::verify`] for the full server check).
pub fn check_response(
    auth: &Authorization,
    method: &str,
    credential: Credential<'_>,
) -> Result<bool, DigestError> {
    let want = expected_response(auth, method, credential)?;
    Ok(constant_time_eq(
        want.as_bytes(),
        auth.response.to_ascii_lowercase().as_bytes(),
    ))
}

/// Client side: answer `challenge` for a request `method uri`. With `qop=auth` offered the
/// answer uses it with `cnonce` and `nc`; otherwise it is RFC 2069 style.
pub fn authorize(
    challenge: &Challenge,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Authorization {
    let mut auth = Authorization {
        username: username.to_owned(),
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: uri.to_owned(),
        response: String::new(),
        algorithm: challenge.algorithm,
        cnonce: challenge.qop_auth.then(|| cnonce.to_owned()),
        qop: challenge.qop_auth.then(|| "auth".to_owned()),
        nc: challenge.qop_auth.then_some(nc),
        opaque: challenge.opaque.clone(),
    };
    // Cannot fail: qop is "auth" with nc and cnonce set, or absent.
    auth.response =
        expected_response(&auth, method, Credential::Password(password)).unwrap_or_default();
    auth
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn rfc2617_example() {
        let header = "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", qop=auth, nc=00000001, \
cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
        let auth = Authorization::parse(header).unwrap();
        assert_eq!(auth.nc, Some(1));
        assert_eq!(auth.algorithm, DigestAlgorithm::Md5);
        assert_eq!(
            check_response(&auth, "GET", Credential::Password("Circle Of Life")),
            Ok(true)
        );
        assert_eq!(
            check_response(&auth, "GET", Credential::Password("circle of life")),
            Ok(false)
        );
        assert_eq!(
            check_response(&auth, "POST", Credential::Password("Circle Of Life")),
            Ok(false)
        );
        let ha1 = DigestAlgorithm::Md5.ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
        assert_eq!(
            check_response(&auth, "GET", Credential::Ha1(&ha1.to_uppercase())),
            Ok(true)
        );
        // The client side reproduces the same response.
        let challenge = Challenge {
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            opaque: Some("5ccc069c403ebaf9f0171e9517f40e41".into()),
            algorithm: DigestAlgorithm::Md5,
            qop_auth: true,
            stale: false,
        };
        let client = authorize(
            &challenge,
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
            1,
        );
        assert_eq!(client.response, "6629fae49393a05397450978507c4ef1");
        assert_eq!(Authorization::parse(&client.to_header_value()), Ok(client));
    }

    #[test]
    fn rfc7616_examples() {
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        for (alg, want) in [
            (
                DigestAlgorithm::Sha256,
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
            (DigestAlgorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
        ] {
            let challenge = Challenge {
                realm: "http-auth@example.org".into(),
                nonce: nonce.into(),
                opaque: Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS".into()),
                algorithm: alg,
                qop_auth: true,
                stale: false,
            };
            let parsed = Challenge::parse(&challenge.to_header_value()).unwrap();
            assert_eq!(parsed, challenge);
            let auth = authorize(
                &parsed,
                "GET",
                "/dir/index.html",
                "Mufasa",
                "Circle of Life",
                cnonce,
                1,
            );
            assert_eq!(auth.response, want, "{alg:?}");
        }
    }

    #[test]
    fn rfc2069_without_qop() {
        let challenge = Challenge::parse("Digest realm=\"r\", nonce=\"n\"").unwrap();
        assert!(!challenge.qop_auth);
        let auth = authorize(&challenge, "REGISTER", "sip:r", "u", "p", "ignored", 7);
        assert_eq!(
            (auth.qop.as_deref(), auth.nc, auth.cnonce.as_deref()),
            (None, None, None)
        );
        let ha1 = DigestAlgorithm::Md5.hash_hex("u:r:p");
        let ha2 = DigestAlgorithm::Md5.hash_hex("REGISTER:sip:r");
        assert_eq!(
            auth.response,
            DigestAlgorithm::Md5.hash_hex(&format!("{ha1}:n:{ha2}"))
        );
        assert_eq!(
            check_response(&auth, "REGISTER", Credential::Password("p")),
            Ok(true)
        );
    }

    /// Found by fuzzing (digest_header): a quoted qop that is not a token was written back bare,
    /// and the header written no longer parsed.
    #[test]
    fn a_qop_that_is_not_a_token_is_written_quoted() {
        for qop in ["auth, auth-int", ""] {
            let header =
                format!("Digest username=u, realm=r, nonce=n, uri=x, response=y, qop=\"{qop}\"");
            let auth = Authorization::parse(&header).unwrap();
            assert_eq!(auth.qop.as_deref(), Some(qop));
            assert_eq!(Authorization::parse(&auth.to_header_value()), Ok(auth));
        }
    }

    #[test]
    fn parse_errors() {
        let cases: &[(&str, DigestError)] = &[
            ("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", DigestError::NotDigest),
            ("Digest realm=\"r\"", DigestError::Missing("username")),
            (
                "Digest username=u, realm=r, nonce=n, uri=x, response=y, algorithm=MD5-sess",
                DigestError::UnsupportedAlgorithm,
            ),
            (
                "Digest username=u, realm=r, nonce=n, uri=x, response=y, nc=zz",
                DigestError::Malformed,
            ),
            (
                "Digest username=u, realm=r, nonce=n, uri=x, response=y, nc=123456789",
                DigestError::Malformed,
            ),
            ("Digest username=\"u", DigestError::Malformed),
        ];
        for (s, want) in cases {
            assert_eq!(Authorization::parse(s).as_ref(), Err(want), "{s}");
        }
        let auth = Authorization::parse(
            "Digest username=u, realm=r, nonce=n, uri=x, response=y, qop=auth-int",
        )
        .unwrap();
        assert_eq!(
            check_response(&auth, "MESSAGE", Credential::Password("p")),
            Err(DigestError::UnsupportedQop)
        );
        let auth = Authorization::parse(
            "Digest username=u, realm=r, nonce=n, uri=x, response=y, qop=auth",
        )
        .unwrap();
        assert_eq!(
            check_response(&auth, "MESSAGE", Credential::Password("p")),
            Err(DigestError::Missing("nc"))
        );
        assert_eq!(
            Challenge::parse("Digest nonce=\"n\""),
            Err(DigestError::Missing("realm"))
        );
        let c = Challenge::parse(
            "digest realm=r, nonce=n, qop=\"auth-int, auth\", stale=TRUE, algorithm=sha-256",
        )
        .unwrap();
        assert!(c.qop_auth && c.stale && c.algorithm == DigestAlgorithm::Sha256);
    }

    proptest! {
        #[test]
        fn header_parsers_never_panic(s in "\\PC{0,200}", t in "(Digest|,|=|\"|\\\\| |[a-z]{1,8}){0,40}") {
            let _ = Authorization::parse(&s);
            let _ = Challenge::parse(&s);
            let _ = Authorization::parse(&t);
            let _ = Challenge::parse(&t);
        }

        #[test]
        fn authorization_round_trip(
            username in "[^\\p{Cc}]{0,20}", realm in "[^\\p{Cc}]{0,20}", nonce in "[ -~]{0,40}",
            uri in "[ -~]{0,40}", cnonce in "[ -~]{0,20}", nc in any::<u32>(), qop in any::<bool>(),
            sha in any::<bool>(),
        ) {
            let challenge = Challenge {
                realm, nonce, opaque: None, qop_auth: qop, stale: false,
                algorithm: if sha { DigestAlgorithm::Sha256 } else { DigestAlgorithm::Md5 },
            };
            prop_assert_eq!(Challenge::parse(&challenge.to_header_value()), Ok(challenge.clone()));
            let auth = authorize(&challenge, "MESSAGE", &uri, &username, "pw", &cnonce, nc);
            let parsed = Authorization::parse(&auth.to_header_value());
            prop_assert_eq!(parsed.as_ref(), Ok(&auth));
            prop_assert_eq!(check_response(&parsed.unwrap(), "MESSAGE", Credential::Password("pw")), Ok(true));
        }
    }
}
