//! One DC-09 message, from its bytes to the bytes of its answer (or none).
use std::net::SocketAddr;
use std::time::Duration;

use vaka_core::Lane;
use vaka_dc09::Reply::Duh;
use vaka_dc09::{ack, duh, nak, DecodeError, Frame, Header, Key, Timestamp};

use super::convert;
use super::shared::Shared;

/// What to send back.
pub(crate) struct Answer {
    pub bytes: Vec<u8>,
    /// An error answer (NAK, DUH) to a message not shown to come from a known account: over
    /// UDP sent only when no larger than the datagram.
    pub unproven: bool,
}

fn error_kind(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::BadFrame(_) => "bad_frame",
        DecodeError::BadCrc { .. } => "bad_crc",
        DecodeError::BadLength { .. } => "bad_length",
        DecodeError::UnknownToken(_) => "unknown_token",
        DecodeError::BadData { .. } => "bad_data",
        DecodeError::NoKey => "no_key",
        DecodeError::DecryptFailed(_) => "decrypt_failed",
        DecodeError::MissingTimestamp => "missing_timestamp",
        DecodeError::StaleTimestamp { .. } => "stale_timestamp",
    }
}

/// Takes one frame (LF to CR) from `peer`; `None`: answer nothing.
pub(crate) async fn receive(sh: &Shared, bytes: &[u8], peer: SocketAddr) -> Option<Answer> {
    sh.metrics.frames(bytes.len());
    let now_ms = sh.now_ms();
    // NAK (with our time, so the panel corrects its clock) or DUH echoing what header there is.
    let refuse = |kind: &'static str, reply: vaka_dc09::Reply, header: Option<&Header>| {
        sh.metrics.error(kind);
        tracing::debug!(%peer, kind, "DC-09 message refused");
        let bytes = if reply == vaka_dc09::Reply::Nak {
            sh.metrics.reply("NAK", kind);
            nak(Timestamp::from_unix_ms(now_ms))
        } else {
            sh.metrics.reply("DUH", kind);
            duh(header)
        };
        Some(Answer {
            bytes,
            unproven: true,
        })
    };
    let frame = match Frame::parse(bytes) {
        Ok(f) => f,
        Err(e) => return refuse(error_kind(&e), e.reply(), None),
    };
    let header = frame.header.clone();
    let (device, key) = {
        let dir = sh.directory.load();
        let Some((device, cred)) = dir.dc09_account(header.account.as_str()) else {
            return refuse("unknown_account", Duh, Some(&header));
        };
        // Checked when written; a key that still does not parse refuses the account's messages.
        let key = match cred.key.as_deref().map(Key::parse) {
            None => None,
            Some(Ok(k)) => Some(k),
            Some(Err(_)) => return refuse("bad_key", Duh, Some(&header)),
        };
        (device.key.clone(), key)
    };
    if key.is_some() && !header.encrypted {
        // A plain message for an account with a key could come from anyone.
        return refuse("plain_refused", Duh, Some(&header));
    }
    let msg = match frame.open(key.as_ref(), now_ms, &sh.cfg.window()) {
        Ok(m) => m,
        Err(e) => return refuse(error_kind(&e), e.reply(), Some(&header)),
    };
    let events = convert::to_events(&msg, &device, now_ms as i64, bytes);
    sh.metrics.events(events.len());
    let submitted: Vec<_> = events
        .into_iter()
        .map(|e| {
            if e.lane() == Lane::Alarm {
                sh.metrics.alarms_received.increment(1);
            }
            (e.lane(), sh.router.submit(e))
        })
        .collect();
    let wait = Duration::from_millis(sh.cfg.answer_within_ms);
    let mut results: Vec<(Lane, _)> = Vec::with_capacity(submitted.len());
    let deadline = tokio::time::Instant::now() + wait;
    for (lane, reply) in submitted {
        match tokio::time::timeout_at(deadline, reply).await {
            Ok(r) => results.push((lane, r)),
            Err(_) => {
                sh.metrics.error("answer_timeout");
                return None;
            }
        }
    }
    let bytes = match convert::answer(&results) {
        Ok(()) => {
            let now = Timestamp::from_unix_ms(sh.now_ms());
            let pad: [u8; 16] = rand::random();
            match ack(&msg.header, key.as_ref(), now, &pad) {
                Ok(b) => {
                    sh.metrics.reply("ACK", "stored");
                    b
                }
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "DC-09 ACK not writable");
                    sh.metrics.reply("DUH", "ack_unwritable");
                    duh(Some(&msg.header))
                }
            }
        }
        Err(why) => {
            sh.metrics.reply("DUH", why);
            duh(Some(&msg.header))
        }
    };
    Some(Answer {
        bytes,
        unproven: false,
    })
}
