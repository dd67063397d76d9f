//! Webhook receiver: each notice is POSTed as JSON, signed (`X-Vaka-Signature: sha256=<hex>`,
//! HMAC-SHA256 over the body with the receiver's secret), with an idempotency key (alarm id and
//! notice) so a retry is recognisable; retried with exponential backoff. A 2xx answer to an
//! offer is the receipt. Accept and close come back through the admin API (a centre token) or
//! a signed callback (`callback`).
//!
//! The blocking HTTP client (ureq, already the CLI's) runs on the blocking pool, one request at a
//! time per receiver, each bounded by `request_timeout_ms`: a slow webhook holds up only itself.
use futures::future::BoxFuture;
use futures::FutureExt;
use std::sync::Arc;
use std::time::Duration;
use vaka_core::alarm::{AlarmInput, Notice};
use vaka_core::CentreId;

use crate::config::ReceiversConfig;
use crate::session::{Delivery, Far, Handled};
use crate::sign::signature;

pub(crate) struct Webhook {
    centre: CentreId,
    url: String,
    secret: Arc<str>,
    cfg: Arc<ReceiversConfig>,
    agent: ureq::Agent,
}

/// One POST's outcome: the status, or why there was none.
type Answer = Result<u16, String>;

impl Webhook {
    pub(crate) fn new(
        centre: CentreId,
        url: String,
        secret: String,
        cfg: Arc<ReceiversConfig>,
    ) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(cfg.request_timeout()))
            .user_agent("vaka-webhook")
            .build()
            .into();
        Webhook {
            centre,
            url,
            secret: secret.into(),
            cfg,
            agent,
        }
    }

    async fn post(&self, body: Vec<u8>, key: String) -> Answer {
        let (agent, url, secret) = (self.agent.clone(), self.url.clone(), self.secret.clone());
        let centre = self.centre.to_string();
        tokio::task::spawn_blocking(move || {
            let sig = signature(secret.as_bytes(), &body);
            agent
                .post(&url)
                .header("Content-Type", "application/json")
                .header("X-Vaka-Signature", &sig)
                .header("X-Vaka-Receiver", &centre)
                .header("Idempotency-Key", &key)
                .send(&body[..])
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("request task: {e}")))
    }
}

impl Far for Webhook {
    fn deliver<'a>(&'a self, d: &'a Delivery) -> BoxFuture<'a, Handled> {
        async move {
            let body = serde_json::to_vec(&d.json).expect("notice JSON");
            let key = format!("{}-{}", d.json.alarm.id, d.seq);
            let mut wait = Duration::from_millis(self.cfg.backoff_ms);
            let mut last = String::new();
            for attempt in 1..=self.cfg.attempts {
                match self.post(body.clone(), key.clone()).await {
                    Ok(s) if (200..300).contains(&s) => {
                        let inputs = match d.notice {
                            Notice::Offer { .. } => vec![AlarmInput::Receipt {
                                centre: self.centre.clone(),
                            }],
                            Notice::Update { .. } => Vec::new(),
                        };
                        return Handled::Done(inputs);
                    }
                    Ok(s) => last = format!("HTTP {s}"),
                    Err(e) => last = e,
                }
                metrics::counter!("vaka_receiver_retries_total", "receiver" => self.centre.to_string(), "kind" => "webhook")
                    .increment(1);
                if attempt < self.cfg.attempts {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
            }
            Handled::Unreachable(format!("{} attempts, last: {last}", self.cfg.attempts))
        }
        .boxed()
    }

    /// A signed `{"type":"ping"}`: any 2xx means the webhook is there.
    fn probe(&self) -> BoxFuture<'_, Result<(), String>> {
        async move {
            let body = br#"{"type":"ping"}"#.to_vec();
            match self.post(body, "ping".into()).await {
                Ok(s) if (200..300).contains(&s) => Ok(()),
                Ok(s) => Err(format!("HTTP {s}")),
                Err(e) => Err(e),
            }
        }
        .boxed()
    }
}
