//! `[receivers]`: how the engine reaches receivers that do not connect themselves. Every key
//! has a default; `validate` names the key of each problem.
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiversConfig {
    /// One webhook or gateway request may take this long.
    pub request_timeout_ms: u64,
    /// Tries of one webhook delivery before the receiver counts as unreachable and the alarm
    /// is refused (escalated).
    pub attempts: u32,
    /// Wait before the first retry; doubled for each next one.
    pub backoff_ms: u64,
    /// How often an unreachable receiver's far side is tried again.
    pub probe_secs: u64,
    /// Where people open responder links (`<public_base_url>/r/<token>`), e.g.
    /// "https://vaka.example.org"; absent: e-mail and SMS receivers cannot run.
    pub public_base_url: Option<String>,
    /// How long a responder link works.
    pub link_secs: u64,
    /// Link openings allowed per source address and minute (rate limit).
    pub link_opens_per_min: u32,
    pub smtp: Option<SmtpConfig>,
    pub sms: Option<SmsConfig>,
    /// A CA (PEM) that SCAIP receivers reached over TLS may chain to besides the public roots
    /// (an alarm centre's private CA); read at start.
    pub scaip_ca_file: Option<std::path::PathBuf>,
}

impl Default for ReceiversConfig {
    fn default() -> Self {
        ReceiversConfig {
            request_timeout_ms: 5000,
            attempts: 4,
            backoff_ms: 250,
            probe_secs: 10,
            public_base_url: None,
            link_secs: 24 * 3600,
            link_opens_per_min: 30,
            smtp: None,
            sms: None,
            scaip_ca_file: None,
        }
    }
}

/// `[receivers.smtp]`: the relay e-mail goes through (STARTTLS required unless on loopback).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "smtp_port")]
    pub port: u16,
    /// false only for a relay on loopback (tests, a local MTA).
    #[serde(default = "yes")]
    pub starttls: bool,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// The sender, "Vaka <alarm@example.org>".
    pub from: String,
    /// A CA (PEM) the relay's certificate may chain to besides the public roots (a private
    /// relay); read at start.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

/// `[receivers.sms]`: an HTTP SMS gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    pub url: String,
    /// "form": `application/x-www-form-urlencoded` `from`, `to`, `message` (the common Swedish
    /// gateways' style); "json": `{"from","to","message"}`.
    #[serde(default = "form")]
    pub style: String,
    /// HTTP basic credentials.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default = "sender")]
    pub from: String,
    /// The message; `{what}`, `{device}`, `{tenant}`, `{when}`, `{link}` are replaced.
    #[serde(default = "template")]
    pub template: String,
}

fn smtp_port() -> u16 {
    587
}
fn yes() -> bool {
    true
}
fn form() -> String {
    "form".into()
}
fn sender() -> String {
    "Vaka".into()
}
fn template() -> String {
    crate::text::DEFAULT_SMS_TEMPLATE.into()
}

impl ReceiversConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Every problem as `(key, reason)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let mut bad = |k: &str, why: &str| p.push((format!("receivers.{k}"), why.to_owned()));
        if !(100..=120_000).contains(&self.request_timeout_ms) {
            bad("request_timeout_ms", "between 100 and 120000");
        }
        if !(1..=20).contains(&self.attempts) {
            bad("attempts", "between 1 and 20");
        }
        if self.backoff_ms > 60_000 {
            bad("backoff_ms", "at most 60000");
        }
        if !(1..=3600).contains(&self.probe_secs) {
            bad("probe_secs", "between 1 and 3600");
        }
        if !(60..=7 * 24 * 3600).contains(&self.link_secs) {
            bad("link_secs", "between 60 and 604800 (a week)");
        }
        if self.link_opens_per_min == 0 {
            bad("link_opens_per_min", "must be greater than 0");
        }
        if let Some(u) = &self.public_base_url {
            if !(u.starts_with("https://") || u.starts_with("http://")) || u.ends_with('/') {
                bad(
                    "public_base_url",
                    "must be an http(s):// URL without a trailing /",
                );
            }
        }
        if let Some(s) = &self.smtp {
            if s.host.is_empty() {
                bad("smtp.host", "must not be empty");
            }
            if !s.starttls && !is_loopback(&s.host) {
                bad(
                    "smtp.starttls",
                    "may be false only for a relay on loopback (127.0.0.1, ::1, localhost)",
                );
            }
            if s.username.is_some() != s.password.is_some() {
                bad("smtp.username", "username and password go together");
            }
            if s.ca_file.is_some() && !s.starttls {
                bad("smtp.ca_file", "is for STARTTLS: set starttls = true");
            }
            if s.from.parse::<lettre::message::Mailbox>().is_err() {
                bad(
                    "smtp.from",
                    "must be an address (\"Name <a@b.c>\" or a@b.c)",
                );
            }
        }
        if let Some(s) = &self.sms {
            if !(s.url.starts_with("https://") || s.url.starts_with("http://")) {
                bad("sms.url", "must be an http(s):// URL");
            }
            if !matches!(s.style.as_str(), "form" | "json") {
                bad("sms.style", "must be \"form\" or \"json\"");
            }
            if s.username.is_some() != s.password.is_some() {
                bad("sms.username", "username and password go together");
            }
            if !s.template.contains("{link}") {
                bad("sms.template", "must contain {link}");
            }
        }
        p
    }
}

pub(crate) fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}
