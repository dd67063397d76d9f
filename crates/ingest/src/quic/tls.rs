//! mTLS: the server's certificate, and the client verifier that turns a device certificate into a
//! [`DeviceKey`]: the tenant is the tenant whose CA verifies the chain, the device id is the
//! certificate's subject CN, and that device must exist in the directory. Anything else fails the
//! handshake.
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use std::path::Path;
use std::sync::Arc;
use vaka_core::{DeviceId, DeviceKey, TenantId};
use vaka_router::LiveDirectory;

use super::{QuicConfig, QuicError};

/// The one crypto provider of the QUIC front (ring), named explicitly so that another crate
/// enabling rustls' aws-lc-rs feature cannot make the process-wide default ambiguous.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn cfg_err(key: impl Into<String>, reason: impl std::fmt::Display) -> QuicError {
    QuicError::Config {
        key: key.into(),
        reason: reason.to_string(),
    }
}

pub(crate) fn load_certs(
    path: &Path,
    key: &str,
) -> Result<Vec<CertificateDer<'static>>, QuicError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| cfg_err(key, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(cfg_err(
            key,
            format!("{}: no certificate found", path.display()),
        ));
    }
    Ok(certs)
}

pub(crate) fn load_key(path: &Path, key: &str) -> Result<PrivateKeyDer<'static>, QuicError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| cfg_err(key, format!("{}: {e}", path.display())))
}

struct TenantCa {
    tenant: TenantId,
    verifier: Arc<dyn ClientCertVerifier>,
    /// Raw DER subjects of the tenant's CA certificates: a quick filter on the issuer.
    subjects: Vec<Vec<u8>>,
}

/// Verifies device certificates against every tenant's CA and names the device.
pub(crate) struct TenantVerifier {
    tenants: Vec<TenantCa>,
    directory: LiveDirectory,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for TenantVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantVerifier")
            .field(
                "tenants",
                &self.tenants.iter().map(|t| &t.tenant).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl TenantVerifier {
    pub(crate) fn load(
        cfg: &QuicConfig,
        directory: LiveDirectory,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, QuicError> {
        let mut tenants = Vec::with_capacity(cfg.tenant_cas.len());
        let mut seen: Vec<(Vec<u8>, String)> = Vec::new();
        for (tenant, path) in &cfg.tenant_cas {
            let key = format!("quic.tenant_cas.{tenant}");
            if !directory
                .load()
                .tenants
                .contains_key(&TenantId::new(tenant.as_str()))
            {
                return Err(cfg_err(key, format!("unknown tenant \"{tenant}\"")));
            }
            let certs = load_certs(path, &key)?;
            let mut roots = RootCertStore::empty();
            let mut subjects = Vec::new();
            for c in &certs {
                if let Some((_, other)) = seen.iter().find(|(der, _)| der == c.as_ref()) {
                    return Err(cfg_err(
                        key,
                        format!("the same CA certificate is configured for tenant \"{other}\": a device's tenant would be ambiguous"),
                    ));
                }
                seen.push((c.to_vec(), tenant.clone()));
                roots
                    .add(c.clone())
                    .map_err(|e| cfg_err(&key, format!("{}: {e}", path.display())))?;
                let (_, x) = x509_parser::parse_x509_certificate(c)
                    .map_err(|e| cfg_err(&key, format!("{}: {e}", path.display())))?;
                subjects.push(x.subject().as_raw().to_vec());
            }
            let mut builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if let Some(crl) = cfg.tenant_crls.get(tenant) {
                let crl_key = format!("quic.tenant_crls.{tenant}");
                let crls = load_crls(crl, &crl_key)?;
                // Device certificates come straight from the tenant CA: the end entity is what
                // a revocation list names.
                builder = builder.with_crls(crls).only_check_end_entity_revocation();
            }
            let verifier = builder.build().map_err(|e| cfg_err(&key, e))?;
            tenants.push(TenantCa {
                tenant: TenantId::new(tenant.as_str()),
                verifier,
                subjects,
            });
        }
        Ok(Self {
            tenants,
            directory,
            provider,
        })
    }

    /// The device a certificate chain names, or why it is refused.
    pub(crate) fn identify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<DeviceKey, rustls::Error> {
        let bad = |e: CertificateError| rustls::Error::InvalidCertificate(e);
        let (_, cert) = x509_parser::parse_x509_certificate(end_entity)
            .map_err(|_| bad(CertificateError::BadEncoding))?;
        let mut cns = cert.subject().iter_common_name();
        let cn = match (cns.next(), cns.next()) {
            (Some(cn), None) => cn
                .as_str()
                .map_err(|_| bad(CertificateError::BadEncoding))?,
            _ => {
                return Err(bad(CertificateError::Other(rustls::OtherError(Arc::new(
                    IdentityError("the certificate must have exactly one subject CN"),
                )))))
            }
        };
        if cn.is_empty() || cn.len() > 128 || cn.contains('\0') {
            return Err(bad(CertificateError::Other(rustls::OtherError(Arc::new(
                IdentityError("the subject CN is not a valid device id"),
            )))));
        }
        let issuer = cert.issuer().as_raw();
        let direct = self
            .tenants
            .iter()
            .any(|t| t.subjects.iter().any(|s| s == issuer));
        let mut found: Option<&TenantId> = None;
        // Why the CA that issued it refused it (expired, not yet valid, ...): said as it is, not
        // as an unknown issuer.
        let mut refused: Option<rustls::Error> = None;
        for t in &self.tenants {
            // With no CA subject equal to the issuer the chain may run through intermediates:
            // then every tenant is asked.
            if direct && !t.subjects.iter().any(|s| s == issuer) {
                continue;
            }
            match t
                .verifier
                .verify_client_cert(end_entity, intermediates, now)
            {
                Ok(_) => {
                    if found.is_some() {
                        return Err(bad(CertificateError::ApplicationVerificationFailure));
                    }
                    found = Some(&t.tenant);
                }
                // Only what the operator can act on is worth more than "unknown issuer": a
                // certificate out of its validity, or revoked (a forged one with our CA's name
                // stays an unknown issuer).
                Err(e)
                    if direct
                        && matches!(
                            refusal_reason(&e),
                            "expired" | "not_yet_valid" | "revoked"
                        ) =>
                {
                    refused = Some(e)
                }
                Err(_) => {}
            }
        }
        let tenant = match (found, refused) {
            (Some(t), _) => t,
            (None, Some(e)) => return Err(e),
            (None, None) => return Err(bad(CertificateError::UnknownIssuer)),
        };
        let key = DeviceKey {
            tenant: tenant.clone(),
            device: DeviceId::new(cn),
        };
        if self.directory.load().device(&key).is_none() {
            // Issued by this tenant's CA but not one of its devices: e.g. another tenant's
            // device id in a certificate from the wrong CA, or a device since removed.
            return Err(bad(CertificateError::ApplicationVerificationFailure));
        }
        Ok(key)
    }

    /// [`identify`](Self::identify) on a connection's peer chain (end entity first).
    pub(crate) fn identify_chain(
        &self,
        chain: &[CertificateDer<'static>],
    ) -> Result<DeviceKey, rustls::Error> {
        let (ee, rest) = chain
            .split_first()
            .ok_or(rustls::Error::NoCertificatesPresented)?;
        self.identify(ee, rest, UnixTime::now())
    }
}

/// The revocation lists in a PEM file (at least one).
fn load_crls(
    path: &std::path::Path,
    key: &str,
) -> Result<Vec<rustls::pki_types::CertificateRevocationListDer<'static>>, QuicError> {
    use rustls::pki_types::pem::PemObject;
    let crls = rustls::pki_types::CertificateRevocationListDer::pem_file_iter(path)
        .map_err(|e| cfg_err(key, format!("{}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cfg_err(key, format!("{}: {e}", path.display())))?;
    if crls.is_empty() {
        return Err(cfg_err(
            key,
            format!("{}: no X509 CRL in the file", path.display()),
        ));
    }
    Ok(crls)
}

/// A short, stable name for why a device certificate was refused (metrics label, log field).
pub(crate) fn refusal_reason(e: &rustls::Error) -> &'static str {
    use CertificateError as C;
    match e {
        rustls::Error::NoCertificatesPresented => "no_certificate",
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => "expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "not_yet_valid",
            C::UnknownIssuer => "unknown_issuer",
            C::Revoked => "revoked",
            C::BadEncoding => "bad_encoding",
            C::BadSignature => "bad_signature",
            C::ApplicationVerificationFailure => "not_a_device_of_the_tenant",
            _ => "invalid",
        },
        _ => "other",
    }
}

#[derive(Debug)]
struct IdentityError(&'static str);

impl std::fmt::Display for IdentityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for IdentityError {}

impl ClientCertVerifier for TenantVerifier {
    /// No hints: with hundreds of tenants the list would bloat every handshake, and a device
    /// has exactly one certificate to offer anyway.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.identify(end_entity, intermediates, now) {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(e) => {
                let reason = refusal_reason(&e);
                metrics::counter!("vaka_errors_total", "stage" => "quic", "kind" => "certificate", "reason" => reason)
                    .increment(1);
                tracing::debug!(error = %e, reason, "device certificate refused");
                Err(e)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::generate_demo;
    use vaka_core::directory::{Device, Directory, Tenant};

    fn directory() -> Directory {
        let mut d = Directory::default();
        for t in ["t1", "t2"] {
            d.insert_tenant(Tenant::new(t, &[]));
        }
        for (t, id) in [("t1", "d1"), ("t2", "x1")] {
            d.insert_device(Device::new(DeviceKey::new(t, id), "0003"));
        }
        d
    }

    fn cert(path: &Path) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(path).unwrap()
    }

    #[test]
    fn tenant_comes_from_the_ca_and_device_from_the_cn() {
        let dir = tempfile::tempdir().unwrap();
        let a = generate_demo(dir.path(), "t1", &["d1", "ghost"]).unwrap();
        let b = generate_demo(dir.path(), "t2", &["x1", "d1"]).unwrap();
        let rogue = generate_demo(&dir.path().join("rogue"), "t1", &["d1"]).unwrap();
        let mut cfg = QuicConfig::default();
        cfg.tenant_cas.insert("t1".into(), a.tenant_ca.clone());
        cfg.tenant_cas.insert("t2".into(), b.tenant_ca.clone());
        let v = TenantVerifier::load(&cfg, directory().into(), provider()).unwrap();
        let now = UnixTime::now();
        let id = |p: &Path| v.identify(&cert(p), &[], now);
        assert_eq!(id(&a.devices[0].cert).unwrap(), DeviceKey::new("t1", "d1"));
        assert_eq!(id(&b.devices[0].cert).unwrap(), DeviceKey::new("t2", "x1"));
        // t2's CA naming t1's device: not a device of t2.
        assert!(matches!(
            id(&b.devices[1].cert),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure
            ))
        ));
        // Not in the directory at all.
        assert!(id(&a.devices[1].cert).is_err());
        // Unknown CA.
        assert!(matches!(
            id(&rogue.devices[0].cert),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ));
        // A CA certificate is not a device.
        assert!(id(&a.tenant_ca).is_err());
        // Out of its validity: said as it is, not as an unknown issuer.
        let at = |secs: u64| UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
        let after_4096 = 4_200_000_000_000;
        let expired = v.identify(&cert(&a.devices[0].cert), &[], at(after_4096));
        assert_eq!(expired.err().as_ref().map(refusal_reason), Some("expired"));
        let early = v.identify(&cert(&a.devices[0].cert), &[], at(0));
        assert_eq!(
            early.err().as_ref().map(refusal_reason),
            Some("not_yet_valid")
        );
        let rogue_id = id(&rogue.devices[0].cert);
        assert_eq!(
            rogue_id.err().as_ref().map(refusal_reason),
            Some("unknown_issuer")
        );
        assert!(v
            .identify(&CertificateDer::from(vec![1, 2, 3]), &[], now)
            .is_err());
    }

    #[test]
    fn a_device_on_its_tenants_revocation_list_is_refused_as_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let a = generate_demo(dir.path(), "t1", &["d1", "d2"]).unwrap();
        let crl = crate::certs::revoke_demo(dir.path(), "t1", &["d2"]).unwrap();
        let mut cfg = QuicConfig::default();
        cfg.tenant_cas.insert("t1".into(), a.tenant_ca.clone());
        let mut dir_ = directory();
        dir_.insert_device(Device::new(DeviceKey::new("t1", "d2"), "0003"));
        let without = TenantVerifier::load(&cfg, dir_.clone().into(), provider()).unwrap();
        cfg.tenant_crls.insert("t1".into(), crl);
        let with = TenantVerifier::load(&cfg, dir_.into(), provider()).unwrap();
        let now = UnixTime::now();
        let d2 = cert(&a.devices[1].cert);
        assert!(without.identify(&d2, &[], now).is_ok());
        let refused = with.identify(&d2, &[], now);
        assert_eq!(refused.err().as_ref().map(refusal_reason), Some("revoked"));
        // The others of the tenant still connect.
        assert!(with.identify(&cert(&a.devices[0].cert), &[], now).is_ok());
    }

    #[test]
    fn configuration_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = generate_demo(dir.path(), "t1", &[]).unwrap();
        let load = |cas: &[(&str, &Path)]| {
            let mut cfg = QuicConfig::default();
            for (t, p) in cas {
                cfg.tenant_cas.insert(t.to_string(), p.to_path_buf());
            }
            TenantVerifier::load(&cfg, directory().into(), provider())
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(load(&[("t1", &a.tenant_ca)]), None);
        let e = load(&[("nope", &a.tenant_ca)]).unwrap();
        assert!(e.starts_with("quic.tenant_cas.nope: unknown tenant"), "{e}");
        let e = load(&[("t1", &a.tenant_ca), ("t2", &a.tenant_ca)]).unwrap();
        assert!(e.contains("ambiguous"), "{e}");
        let e = load(&[("t1", &dir.path().join("missing.pem"))]).unwrap();
        assert!(e.starts_with("quic.tenant_cas.t1:"), "{e}");
    }
}
