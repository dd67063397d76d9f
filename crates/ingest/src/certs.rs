//! Demo certificates for vaka/1 (`vaka certs`): a server CA and a server certificate for
//! localhost, a tenant CA, and device certificates issued by it (subject CN = device id), as PEM
//! files. Production uses the tenants' own CAs; these are for the demo config and the tests.
//!
//! Layout under `dir` (existing CAs and the server certificate are reused, so the function can be
//! run again to add a tenant or devices; device certificates are always written anew):
//!
//! ```text
//! server-ca.pem  server-ca-key.pem    the CA devices trust for the server (DeviceConfig CA)
//! server.pem     server-key.pem       the server's certificate: localhost, 127.0.0.1, ::1
//! <tenant>/ca.pem  <tenant>/ca-key.pem         the tenant CA  (quic.tenant_cas.<tenant>)
//! <tenant>/<device>.pem  <tenant>/<device>-key.pem   one device (CN = device id)
//! ```
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("invalid name {0:?}: tenant and device ids used as file names must be non-empty, without '/', '\\\\', NUL or a leading '.'")]
    Name(String),
}

/// The files [`generate_demo`] wrote or reused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoCerts {
    pub server_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub tenant: String,
    pub tenant_ca: PathBuf,
    pub devices: Vec<DeviceFiles>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceFiles {
    pub device: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertsError + '_ {
    move |source| CertsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn check_name(s: &str) -> Result<(), CertsError> {
    if s.is_empty() || s.starts_with('.') || s.contains(['/', '\\', '\0']) {
        return Err(CertsError::Name(s.into()));
    }
    Ok(())
}

fn write(path: &Path, contents: &str, secret: bool) -> Result<(), CertsError> {
    fs::write(path, contents).map_err(io(path))?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io(path))?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    Ok(())
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name
        .push(DnType::OrganizationName, "Vaka demo");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

/// Loads the CA at `cert`/`key`, or makes a new self-signed one with `cn`. Returns the issuer and
/// whether it is new.
fn ca(cert: &Path, key: &Path, cn: &str) -> Result<(Issuer<'static, KeyPair>, bool), CertsError> {
    if cert.exists() && key.exists() {
        let pem = fs::read_to_string(cert).map_err(io(cert))?;
        let kp = KeyPair::from_pem(&fs::read_to_string(key).map_err(io(key))?)?;
        return Ok((Issuer::from_ca_cert_pem(&pem, kp)?, false));
    }
    let kp = KeyPair::generate()?;
    let params = ca_params(cn);
    let c = params.self_signed(&kp)?;
    write(cert, &c.pem(), false)?;
    write(key, &kp.serialize_pem(), true)?;
    Ok((Issuer::new(params, kp), true))
}

/// Writes (or reuses) the server CA and certificate and `tenant`'s CA, and writes a certificate
/// for each of `devices` (CN = device id, issued by the tenant CA). See the module docs for the
/// layout.
pub fn generate_demo(dir: &Path, tenant: &str, devices: &[&str]) -> Result<DemoCerts, CertsError> {
    check_name(tenant)?;
    for d in devices {
        check_name(d)?;
    }
    let tdir = dir.join(tenant);
    fs::create_dir_all(&tdir).map_err(io(&tdir))?;

    let server_ca = dir.join("server-ca.pem");
    let (server_issuer, new_ca) = ca(
        &server_ca,
        &dir.join("server-ca-key.pem"),
        "Vaka demo server CA",
    )?;
    let server_cert = dir.join("server.pem");
    let server_key = dir.join("server-key.pem");
    if new_ca || !server_cert.exists() || !server_key.exists() {
        let kp = KeyPair::generate()?;
        let mut p = CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])?;
        p.distinguished_name.push(DnType::CommonName, "localhost");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let c = p.signed_by(&kp, &server_issuer)?;
        write(&server_cert, &c.pem(), false)?;
        write(&server_key, &kp.serialize_pem(), true)?;
    }

    let tenant_ca = tdir.join("ca.pem");
    let (tenant_issuer, _) = ca(
        &tenant_ca,
        &tdir.join("ca-key.pem"),
        &format!("Vaka demo CA {tenant}"),
    )?;
    let mut out = Vec::with_capacity(devices.len());
    for d in devices {
        let kp = KeyPair::generate()?;
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, *d);
        p.distinguished_name.push(DnType::OrganizationName, tenant);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let c = p.signed_by(&kp, &tenant_issuer)?;
        let cert = tdir.join(format!("{d}.pem"));
        let key = tdir.join(format!("{d}-key.pem"));
        write(&cert, &c.pem(), false)?;
        write(&key, &kp.serialize_pem(), true)?;
        out.push(DeviceFiles {
            device: d.to_string(),
            cert,
            key,
        });
    }
    Ok(DemoCerts {
        server_ca,
        server_cert,
        server_key,
        tenant: tenant.to_string(),
        tenant_ca,
        devices: out,
    })
}

/// Writes `<dir>/<tenant>/crl.pem`: a revocation list signed by the tenant's demo CA (made by
/// [`generate_demo`]) that revokes the certificates of `devices` (`<dir>/<tenant>/<id>.pem`).
/// For tests and demos; a real tenant's PKI issues its own lists (`quic.tenant_crls`).
pub fn revoke_demo(dir: &Path, tenant: &str, devices: &[&str]) -> Result<PathBuf, CertsError> {
    check_name(tenant)?;
    let tdir = dir.join(tenant);
    let (issuer, _) = ca(&tdir.join("ca.pem"), &tdir.join("ca-key.pem"), "unused")?;
    let mut revoked = Vec::with_capacity(devices.len());
    for d in devices {
        check_name(d)?;
        let path = tdir.join(format!("{d}.pem"));
        let unreadable = |e: String| CertsError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        };
        let der = CertificateDer::from_pem_file(&path).map_err(|e| unreadable(e.to_string()))?;
        let (_, cert) =
            x509_parser::parse_x509_certificate(&der).map_err(|e| unreadable(e.to_string()))?;
        revoked.push(rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from_slice(cert.raw_serial()),
            revocation_time: rcgen::date_time_ymd(2026, 1, 1),
            reason_code: Some(rcgen::RevocationReason::KeyCompromise),
            invalidity_date: None,
        });
    }
    let crl = rcgen::CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2026, 1, 1),
        next_update: rcgen::date_time_ymd(4000, 1, 1),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)?;
    let out = tdir.join("crl.pem");
    write(&out, &crl.pem()?, false)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_layout_and_reuses_cas() {
        let dir = tempfile::tempdir().unwrap();
        let a = generate_demo(dir.path(), "t1", &["d1", "gw"]).unwrap();
        for p in [&a.server_ca, &a.server_cert, &a.server_key, &a.tenant_ca] {
            assert!(p.exists(), "{}", p.display());
        }
        assert_eq!(a.devices.len(), 2);
        let ca1 = fs::read(&a.tenant_ca).unwrap();
        let srv1 = fs::read(&a.server_cert).unwrap();
        let b = generate_demo(dir.path(), "t1", &["d2"]).unwrap();
        assert_eq!(fs::read(&b.tenant_ca).unwrap(), ca1, "tenant CA reused");
        assert_eq!(
            fs::read(&b.server_cert).unwrap(),
            srv1,
            "server cert reused"
        );
        let c = generate_demo(dir.path(), "t2", &[]).unwrap();
        assert_ne!(fs::read(&c.tenant_ca).unwrap(), ca1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&a.devices[0].key)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(generate_demo(dir.path(), "../x", &[]).is_err());
        assert!(generate_demo(dir.path(), "t", &["a/b"]).is_err());
    }
}
