//! E-mail through the configured relay (lettre, tokio): STARTTLS required, plain SMTP only to
//! a relay on loopback (checked in `config`). One transport per receiver, each send bounded by
//! `request_timeout_ms`.
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::SinglePart;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{ReceiversConfig, SmtpConfig};

pub(crate) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl Mailer {
    pub(crate) fn new(s: &SmtpConfig, cfg: &ReceiversConfig) -> Result<Mailer, String> {
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host);
        if s.starttls {
            // STARTTLS required (never falls back to plain), rustls with the public roots and
            // the configured CA.
            let mut tls = TlsParameters::builder(s.host.clone());
            if let Some(path) = &s.ca_file {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("receivers.smtp.ca_file {}: {e}", path.display()))?;
                let ca = Certificate::from_pem(&pem)
                    .map_err(|e| format!("receivers.smtp.ca_file {}: {e}", path.display()))?;
                tls = tls.add_root_certificate(ca);
            }
            let tls = tls
                .build_rustls()
                .map_err(|e| format!("receivers.smtp.host: {e}"))?;
            b = b.tls(Tls::Required(tls));
        }
        b = b.port(s.port).timeout(Some(cfg.request_timeout()));
        if let (Some(u), Some(p)) = (&s.username, &s.password) {
            b = b.credentials(Credentials::new(u.clone(), p.clone()));
        }
        let from = s
            .from
            .parse()
            .map_err(|e| format!("receivers.smtp.from: {e}"))?;
        Ok(Mailer {
            transport: b.build(),
            from,
        })
    }

    pub(crate) async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), String> {
        let msg = Message::builder()
            .from(self.from.clone())
            .to(to.parse().map_err(|e| format!("address {to}: {e}"))?)
            .subject(subject)
            // Quoted-printable always: readable, and the link survives any relay as text.
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .header(ContentTransferEncoding::QuotedPrintable)
                    .body(body),
            )
            .map_err(|e| e.to_string())?;
        self.transport
            .send(msg)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Whether the relay answers (connects, greets, NOOP).
    pub(crate) async fn probe(&self) -> Result<(), String> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err("the relay did not answer NOOP".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}
