//! The centre API over TLS: a client certificate issued by the configured CA whose CN is a centre
//! id authenticates that centre without a token; a certificate naming no centre is refused; bearer
//! tokens keep working over TLS.
mod support;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::*;
use vaka_centre::console::{self, ClientTls};
use vaka_centre::TlsFiles;
use vaka_router::Clock;
use vaka_store::{Backend, MemBackend};

struct Pki {
    ca: PathBuf,
    server: (PathBuf, PathBuf),
}

fn write_pair(
    dir: &Path,
    name: &str,
    cert: &rcgen::Certificate,
    key: &KeyPair,
) -> (PathBuf, PathBuf) {
    let c = dir.join(format!("{name}.pem"));
    let k = dir.join(format!("{name}-key.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

/// One CA issues the server's certificate and the centres' client certificates.
fn pki(dir: &Path, clients: &[&str]) -> Pki {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, "test CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = p.self_signed(&ca_key).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    let issuer = Issuer::new(p, ca_key);

    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "localhost");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = write_pair(dir, "server", &p.signed_by(&key, &issuer).unwrap(), &key);

    for cn in clients {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, *cn);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        write_pair(dir, cn, &p.signed_by(&key, &issuer).unwrap(), &key);
    }
    Pki { ca, server }
}

async fn open(url: &str, token: Option<&str>, tls: ClientTls<'_>) -> Result<Centre, tonic::Status> {
    let mut client = console::connect(url, token, tls).await.unwrap();
    Centre::open(&mut client, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_cn_names_the_centre() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path(), &["cc", "stranger"]);
    let tls = TlsFiles {
        cert: pki.server.0.clone(),
        key: pki.server.1.clone(),
        client_ca: Some(pki.ca.clone()),
    };
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let w = World::start_with(backend, Clock::new(), test_config(), Some(&tls)).await;
    let url = format!("https://127.0.0.1:{}", w.addr.port());
    let cert = |cn: &str| {
        (
            dir.path().join(format!("{cn}.pem")),
            dir.path().join(format!("{cn}-key.pem")),
        )
    };

    let (c, k) = cert("cc");
    let mut cc = open(
        &url,
        None,
        ClientTls {
            ca: Some(&pki.ca),
            cert: Some(&c),
            key: Some(&k),
        },
    )
    .await
    .unwrap();
    assert_eq!(cc.welcome.centre_id, "cc");
    eventually("cc reachable", || w.is_reachable("cc")).await;
    let (id, _) = w.raise("c", "d1", "r1").await;
    assert_eq!(cc.offer().await.alarm.unwrap().alarm_id, id.0);

    // A certificate from the right CA that names no centre.
    let (c, k) = cert("stranger");
    let e = open(
        &url,
        None,
        ClientTls {
            ca: Some(&pki.ca),
            cert: Some(&c),
            key: Some(&k),
        },
    )
    .await
    .err()
    .unwrap();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");

    // A token over TLS, no client certificate.
    let tls_only = ClientTls {
        ca: Some(&pki.ca),
        ..Default::default()
    };
    let cb = open(&url, Some(token("cb").as_str()), tls_only.clone())
        .await
        .unwrap();
    assert_eq!(cb.welcome.centre_id, "cb");
    // Neither: refused.
    let e = open(&url, None, tls_only).await.err().unwrap();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    w.shutdown().await;
}
