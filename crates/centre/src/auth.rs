//! Who is calling: a bearer token or a TLS client certificate, mapped to exactly one centre.
use std::collections::HashSet;
use tonic::{Request, Status};
use vaka_core::CentreId;

/// Looks up an API token (the admin API's, role `centre`) and names its centre.
pub type TokenLookup = std::sync::Arc<dyn Fn(&str) -> Option<CentreId> + Send + Sync>;

/// The centres' credentials: from config, and API tokens of role `centre` (so a centre created
/// through the admin API can connect without a restart).
#[derive(Clone, Default)]
pub struct Credentials {
    tokens: Vec<(String, CentreId)>,
    /// Centres that may present a client certificate: its subject CN is the centre id.
    centres: HashSet<CentreId>,
    api_tokens: Option<TokenLookup>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("tokens", &self.tokens.len())
            .field("centres", &self.centres)
            .field("api_tokens", &self.api_tokens.is_some())
            .finish()
    }
}

impl Credentials {
    /// `centres`: each centre with its bearer token, if it has one. Every centre may also use a
    /// client certificate (issued by the configured client CA) whose CN is its id.
    pub fn new(centres: impl IntoIterator<Item = (CentreId, Option<String>)>) -> Self {
        let mut c = Credentials::default();
        for (id, token) in centres {
            if let Some(t) = token.filter(|t| !t.is_empty()) {
                c.tokens.push((t, id.clone()));
            }
            c.centres.insert(id);
        }
        c
    }

    /// Also accept API tokens of role `centre`, looked up per call (revoking one counts at once).
    pub fn with_api_tokens(mut self, lookup: TokenLookup) -> Self {
        self.api_tokens = Some(lookup);
        self
    }

    /// The centre behind a request, or UNAUTHENTICATED.
    pub fn authenticate<T>(&self, req: &Request<T>) -> Result<CentreId, Status> {
        let by_token = match req.metadata().get("authorization") {
            Some(v) => {
                let v = v
                    .to_str()
                    .map_err(|_| Status::unauthenticated("authorization header is not text"))?;
                Some(self.by_token(v)?)
            }
            None => None,
        };
        let by_cert = match req.peer_certs() {
            Some(certs) => match certs.first() {
                Some(der) => Some(self.by_certificate(der.as_ref())?),
                None => None,
            },
            None => None,
        };
        match (by_token, by_cert) {
            (Some(a), Some(b)) if a != b => Err(Status::unauthenticated(
                "the token and the client certificate name different centres",
            )),
            (Some(a), _) | (None, Some(a)) => Ok(a),
            (None, None) => Err(Status::unauthenticated(
                "no credentials: send `authorization: Bearer <token>` or a client certificate",
            )),
        }
    }

    fn by_token(&self, header: &str) -> Result<CentreId, Status> {
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?;
        // Compare against every token without stopping early: the time taken says nothing.
        let mut found = None;
        for (t, centre) in &self.tokens {
            if constant_time_eq(t.as_bytes(), token.as_bytes()) {
                found = Some(centre.clone());
            }
        }
        if found.is_none() {
            // API tokens are looked up by their SHA-256: no secret is compared byte by byte.
            found = self.api_tokens.as_ref().and_then(|f| f(token));
        }
        found.ok_or_else(|| Status::unauthenticated("unknown token"))
    }

    fn by_certificate(&self, der: &[u8]) -> Result<CentreId, Status> {
        let cn = common_name(der)
            .ok_or_else(|| Status::unauthenticated("client certificate has no subject CN"))?;
        let id = CentreId::new(cn);
        if self.centres.contains(&id) {
            Ok(id)
        } else {
            Err(Status::unauthenticated(format!(
                "client certificate names no known centre ({id})"
            )))
        }
    }
}

/// The subject CN of a DER certificate (the TLS layer has already verified its chain).
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials::new([
            (CentreId::new("a"), Some("token-of-centre-a".to_string())),
            (CentreId::new("b"), None),
        ])
    }

    fn req(auth: &str) -> Request<()> {
        let mut r = Request::new(());
        r.metadata_mut()
            .insert("authorization", auth.parse().unwrap());
        r
    }

    #[test]
    fn bearer_token_names_its_centre() {
        let c = creds();
        assert_eq!(
            c.authenticate(&req("Bearer token-of-centre-a")).unwrap(),
            CentreId::new("a")
        );
        assert_eq!(
            c.authenticate(&req("bearer token-of-centre-a")).unwrap(),
            CentreId::new("a")
        );
    }

    #[test]
    fn wrong_missing_or_malformed_credentials_are_unauthenticated() {
        let c = creds();
        for bad in [
            "Bearer nope",
            "token-of-centre-a",
            "Basic token-of-centre-a",
            "Bearer ",
        ] {
            let e = c.authenticate(&req(bad)).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated, "{bad}");
        }
        let e = c.authenticate(&Request::new(())).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn certificate_cn_names_its_centre() {
        let c = creds();
        let cert = |cn: &str| {
            let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            let key = rcgen::KeyPair::generate().unwrap();
            p.self_signed(&key).unwrap().der().to_vec()
        };
        assert_eq!(c.by_certificate(&cert("b")).unwrap(), CentreId::new("b"));
        assert_eq!(
            c.by_certificate(&cert("stranger")).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert!(c.by_certificate(b"not a certificate").is_err());
    }
}
