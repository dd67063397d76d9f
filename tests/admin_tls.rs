//! The admin API over HTTPS with client certificates (`admin.tls_cert`, `tls_key`, `client_ca`):
//! a client with a certificate from the configured CA and a token is served; without the
//! certificate the TLS handshake fails; plain HTTP gets nothing; a certificate alone (no token)
//! is still 401.
#[path = "support/binary.rs"]
mod binary;

use binary::{free_tcp_port, vaka_bin};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

const TOKEN: &str = "tls-test-operator-token";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent(certs: &std::path::Path, client: bool) -> ureq::Agent {
    let ca = Certificate::from_pem(&std::fs::read(certs.join("server-ca.pem")).unwrap()).unwrap();
    let mut tls = TlsConfig::builder().root_certs(RootCerts::new_with_certs(&[ca]));
    if client {
        let cert =
            Certificate::from_pem(&std::fs::read(certs.join("t/client1.pem")).unwrap()).unwrap();
        let key =
            PrivateKey::from_pem(&std::fs::read(certs.join("t/client1-key.pem")).unwrap()).unwrap();
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&[cert], key)));
    }
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .tls_config(tls.build())
        .build()
        .into()
}

#[test]
fn https_with_client_certificates_serves_only_certified_clients_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    vaka_ingest::certs::generate_demo(&certs, "t", &["client1"]).unwrap();
    let http = free_tcp_port();
    let grpc = free_tcp_port();
    let config = dir.path().join("vaka.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = \"{data}\"\nlog_level = \"warn\"\n\
             [listen]\ngrpc = \"127.0.0.1:{grpc}\"\nhttp = \"127.0.0.1:{http}\"\n\
             [admin]\nbootstrap_token = \"{TOKEN}\"\ntls_cert = \"{c}/server.pem\"\n\
             tls_key = \"{c}/server-key.pem\"\nclient_ca = \"{c}/t/ca.pem\"\n\
             [[tenants]]\nid = \"t\"\n",
            data = dir.path().join("data").display(),
            c = certs.display()
        ),
    )
    .unwrap();
    let _engine = Killed(
        Command::new(vaka_bin())
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("https://localhost:{http}/api/v1/tenants");
    let with_cert = agent(&certs, true);
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        match with_cert
            .get(&url)
            .header("Authorization", format!("Bearer {TOKEN}"))
            .call()
        {
            Ok(mut r) if r.status() == 200 => break r.body_mut().read_to_string().unwrap(),
            other => {
                assert!(
                    Instant::now() < deadline,
                    "the admin API never served a certified client: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert!(answer.contains("\"id\":\"t\""), "{answer}");

    // A certificate without a token: still the token's 401.
    let r = with_cert.get(&url).call().unwrap();
    assert_eq!(r.status(), 401);

    // No client certificate: the handshake is refused, nothing is served.
    let without = agent(&certs, false);
    let refused = without
        .get(&url)
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call();
    assert!(
        refused.is_err(),
        "served without a client certificate: {refused:?}"
    );

    // Plain HTTP on the HTTPS port: no HTTP answer.
    let plain: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let r = plain
        .get(format!("http://127.0.0.1:{http}/api/v1/tenants"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call();
    assert!(
        r.as_ref().map_or(true, |r| r.status() != 200),
        "plain HTTP was served: {r:?}"
    );
}
