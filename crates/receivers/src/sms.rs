//! SMS through an HTTP gateway: a form POST (`from`, `to`, `message`: the common Swedish
//! gateways' style) or a JSON one, with HTTP basic credentials. Blocking ureq on the blocking
//! pool, bounded by `request_timeout_ms`.
use base64::Engine as _;
use std::sync::Arc;

use crate::config::{ReceiversConfig, SmsConfig};

#[derive(Clone)]
pub(crate) struct Gateway {
    cfg: Arc<SmsConfig>,
    agent: ureq::Agent,
}

impl Gateway {
    pub(crate) fn new(s: &SmsConfig, cfg: &ReceiversConfig) -> Gateway {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(cfg.request_timeout()))
            .user_agent("vaka-sms")
            .build()
            .into();
        Gateway {
            cfg: Arc::new(s.clone()),
            agent,
        }
    }

    pub(crate) fn template(&self) -> &str {
        &self.cfg.template
    }

    fn auth(&self) -> Option<String> {
        let (u, p) = (self.cfg.username.as_ref()?, self.cfg.password.as_ref()?);
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        Some(format!("Basic {b}"))
    }

    /// Sends `message` to `to`; a 2xx answer means the gateway took it.
    pub(crate) async fn send(&self, to: &str, message: &str) -> Result<(), String> {
        let (g, to, message) = (self.clone(), to.to_owned(), message.to_owned());
        tokio::task::spawn_blocking(move || {
            let mut req = g.agent.post(&g.cfg.url);
            if let Some(a) = g.auth() {
                req = req.header("Authorization", &a);
            }
            let from = g.cfg.from.as_str();
            let r = match g.cfg.style.as_str() {
                "json" => req.send_json(serde_json::json!({
                    "from": from, "to": to, "message": message,
                })),
                _ => req.send_form([("from", from), ("to", &to), ("message", &message)]),
            };
            match r {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("gateway answered HTTP {}", r.status().as_u16())),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
        .unwrap_or_else(|e| Err(format!("request task: {e}")))
    }

    /// Whether the gateway answers at all (any HTTP status to a GET).
    pub(crate) async fn probe(&self) -> Result<(), String> {
        let g = self.clone();
        tokio::task::spawn_blocking(move || {
            g.agent
                .get(&g.cfg.url)
                .call()
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("request task: {e}")))
    }
}
