//! Receivers that are people (e-mail, SMS, responder: a relative, a team): each member of the
//! receiver gets their own link to the responder page by e-mail and/or SMS. The relay or gateway
//! answering means only that the receiver is reachable; the receipt is the person opening the
//! link, the accept their pressing Accept (`page`).
use futures::future::BoxFuture;
use futures::FutureExt;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use vaka_core::alarm::Notice;
use vaka_core::directory::MemberRecord;
use vaka_core::CentreId;

use crate::email::Mailer;
use crate::link::Link;
use crate::session::{Delivery, Far, Handled};
use crate::sms::Gateway;
use crate::text;

/// How links are made: the engine's key, where the page is, how long a link works.
pub(crate) struct Links {
    pub key: Vec<u8>,
    pub base: Option<String>,
    pub secs: u64,
}

impl Links {
    /// `<base>/r/<token>` for member `member` of `receiver` on `alarm`.
    pub(crate) fn url(&self, alarm: u64, receiver: &CentreId, member: u8) -> Option<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        let link = Link {
            alarm,
            receiver: receiver.to_string(),
            member,
            expires_s: u32::try_from(now + self.secs).unwrap_or(u32::MAX),
        };
        Some(format!(
            "{}/r/{}",
            self.base.as_ref()?,
            link.token(&self.key)
        ))
    }
}

pub(crate) struct People {
    pub centre: CentreId,
    pub members: Vec<MemberRecord>,
    pub links: Arc<Links>,
    pub mailer: Option<Arc<Mailer>>,
    pub sms: Option<Gateway>,
}

impl People {
    async fn tell(&self, d: &Delivery) -> Result<(), String> {
        let a = &d.json.alarm;
        let (mut sent, mut errors) = (0, Vec::new());
        for (i, m) in self.members.iter().enumerate().take(usize::from(u8::MAX)) {
            let Some(url) = self.links.url(a.id, &self.centre, i as u8) else {
                return Err("receivers.public_base_url is not set: no link to send".into());
            };
            // The e-mail and the SMS at once: neither waits for the other's far side.
            let mail = async {
                let (Some(to), Some(mailer)) = (&m.email, &self.mailer) else {
                    return None;
                };
                let started = Instant::now();
                let r = mailer
                    .send(
                        to,
                        &text::email_subject(a),
                        text::email_body(a, &m.name, &url),
                    )
                    .await;
                if r.is_ok() {
                    metrics::histogram!("vaka_receiver_send_seconds", "kind" => "email")
                        .record(started.elapsed().as_secs_f64());
                }
                Some(r.map_err(|e| format!("e-mail to {}: {e}", m.name)))
            };
            let sms = async {
                let (Some(to), Some(gw)) = (&m.phone, &self.sms) else {
                    return None;
                };
                let started = Instant::now();
                let r = gw.send(to, &text::render(gw.template(), a, &url)).await;
                if r.is_ok() {
                    metrics::histogram!("vaka_receiver_send_seconds", "kind" => "sms")
                        .record(started.elapsed().as_secs_f64());
                }
                Some(r.map_err(|e| format!("SMS to {}: {e}", m.name)))
            };
            let (mail, sms) = futures::join!(mail, sms);
            for r in [mail, sms].into_iter().flatten() {
                match r {
                    Ok(()) => sent += 1,
                    Err(e) => errors.push(e),
                }
            }
        }
        if !errors.is_empty() {
            tracing::warn!(receiver = %self.centre, alarm = a.id, errors = ?errors, "some messages not sent");
        }
        match (sent, errors.is_empty()) {
            (0, true) => Err(
                "no member can be reached: no relay or gateway configured for their addresses"
                    .into(),
            ),
            (0, false) => Err(errors.join("; ")),
            _ => Ok(()),
        }
    }
}

/// Alarms told at once (each a few messages through the relay and the gateway).
const CONCURRENCY: usize = 16;

impl Far for People {
    fn concurrency(&self) -> usize {
        CONCURRENCY
    }

    fn deliver<'a>(&'a self, d: &'a Delivery) -> BoxFuture<'a, Handled> {
        async move {
            match d.notice {
                // The people hear of updates on the page; only an offer sends messages.
                Notice::Update { .. } => Handled::Done(Vec::new()),
                Notice::Offer { .. } => match self.tell(d).await {
                    Ok(()) => Handled::Done(Vec::new()),
                    Err(e) => Handled::Unreachable(e),
                },
            }
        }
        .boxed()
    }

    /// Reachable while the page has a public address and the relay or gateway its members need
    /// answers.
    fn probe(&self) -> BoxFuture<'_, Result<(), String>> {
        async move {
            if self.links.base.is_none() {
                return Err("receivers.public_base_url is not set".into());
            }
            let wants_mail = self.members.iter().any(|m| m.email.is_some());
            let wants_sms = self.members.iter().any(|m| m.phone.is_some());
            let mut last = "no relay or gateway configured for the members".to_owned();
            if let (true, Some(m)) = (wants_mail, &self.mailer) {
                match m.probe().await {
                    Ok(()) => return Ok(()),
                    Err(e) => last = format!("SMTP relay: {e}"),
                }
            }
            if let (true, Some(g)) = (wants_sms, &self.sms) {
                match g.probe().await {
                    Ok(()) => return Ok(()),
                    Err(e) => last = format!("SMS gateway: {e}"),
                }
            }
            Err(last)
        }
        .boxed()
    }
}
