//! One received SIP message: transaction lookup, digest authentication, the SIP response, and
//! for a SCAIP MESSAGE the start of its answer (see [`super::answer`]).
//!
//! Everything here is synchronous and short: a request is answered (and its response stored
//! for retransmissions) before the next datagram is read; the slow part, waiting for the
//! router, runs in a task of its own.
use std::net::SocketAddr;
use std::sync::Arc;

use vaka_scaip::auth::{Credential, DigestError, InvalidReason};
use vaka_scaip::sip::{Method, SCAIP_CONTENT_TYPE};
use vaka_scaip::{AuthOutcome, Authorization, SipMessage, TxLookup};

use super::answer;
use super::server::{Account, Shared};
use super::transport::Link;

const ALLOW: &str = "MESSAGE, REGISTER, OPTIONS";

/// Handles one message from `peer` on `link`; true if it was a request that authenticated
/// (a connection that has sent one leaves the unauthenticated share, invariant 13).
pub(crate) fn handle(sh: &Arc<Shared>, link: &Link, peer: SocketAddr, bytes: &[u8]) -> bool {
    sh.metrics.bytes_received.increment(bytes.len() as u64);
    let mut msg = match SipMessage::parse(bytes) {
        Ok(m) => m,
        Err(e) => {
            // Without Via/From/To/Call-ID/CSeq there is nothing a response could be built on.
            sh.metrics.malformed.increment(1);
            tracing::debug!(%peer, error = %e, "unparseable SIP message dropped");
            return false;
        }
    };
    if !msg.is_request() {
        answer::on_response(sh, &msg);
        return false;
    }
    msg.stamp_source(&peer.ip().to_string(), peer.port());
    let now = sh.now_ms();
    let key = {
        let mut st = sh.state();
        st.maintain(now, sh.issuer.lifetime_ms());
        match st.transactions.on_request(&msg, now) {
            TxLookup::New(key) => key,
            TxLookup::Retransmission(stored) => {
                drop(st);
                sh.metrics.retransmissions.increment(1);
                if let Some(bytes) = stored {
                    link.send(sh, response_target(&msg, peer), bytes);
                }
                return false;
            }
            TxLookup::Ack => return false,
            TxLookup::Full => {
                drop(st);
                sh.metrics.transactions_full.increment(1);
                let mut r = response(&msg, 503, "Service Unavailable");
                let _ = r.push_header("Retry-After", "5");
                link.send(sh, response_target(&msg, peer), r.to_bytes());
                return false;
            }
        }
    };
    let (resp, account) = respond(sh, &msg, now);
    let code = resp.status().unwrap_or(500);
    let bytes = resp.to_bytes();
    sh.state()
        .transactions
        .respond(&key, code, bytes.clone(), link.reliable(), now);
    link.send(sh, response_target(&msg, peer), bytes);
    // OPTIONS is answered 200 without credentials; MESSAGE and REGISTER only after digest.
    let authenticated = code == 200 && *msg.method() != Method::Options;
    if let Some(account) = account {
        answer::start(sh, account, msg, link.clone(), peer);
    }
    authenticated
}

/// Where responses to `msg` go: the top Via's `received`/`rport` (stamped on receipt), else
/// the packet's source.
fn response_target(msg: &SipMessage, peer: SocketAddr) -> SocketAddr {
    let (host, port) = msg.top_via().response_target();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => peer,
    }
}

fn response(req: &SipMessage, code: u16, reason: &str) -> SipMessage {
    let tag = format!("{:016x}", rand::random::<u64>());
    let mut r = SipMessage::response(req, code, reason, &tag);
    let _ = r.push_header("Server", "vaka");
    r
}

/// The response to a new request, and for an accepted SCAIP MESSAGE the account that sent it
/// (the caller then starts its answer).
fn respond(sh: &Shared, msg: &SipMessage, now: u64) -> (SipMessage, Option<Account>) {
    match msg.method() {
        Method::Options => {
            let mut r = response(msg, 200, "OK");
            let _ = r.push_header("Allow", ALLOW);
            let _ = r.push_header("Accept", SCAIP_CONTENT_TYPE);
            (r, None)
        }
        Method::Message | Method::Register => {
            if !user_accepted(sh, msg) {
                return (response(msg, 404, "Not Found"), None);
            }
            let account = match authenticate(sh, msg, now) {
                Ok(a) => a,
                Err(r) => return (*r, None),
            };
            if *msg.method() == Method::Register {
                return (register(sh, msg, &account, now), None);
            }
            if !msg.is_scaip() {
                let mut r = response(msg, 415, "Unsupported Media Type");
                let _ = r.push_header("Accept", SCAIP_CONTENT_TYPE);
                return (r, None);
            }
            sh.metrics.events_received.increment(1);
            (response(msg, 200, "OK"), Some(account))
        }
        _ => {
            let mut r = response(msg, 405, "Method Not Allowed");
            let _ = r.push_header("Allow", ALLOW);
            (r, None)
        }
    }
}

/// `sip.accept_users`: the Request-URI's user part must be listed (when the list is not empty).
fn user_accepted(sh: &Shared, msg: &SipMessage) -> bool {
    let users = &sh.cfg.accept_users;
    users.is_empty()
        || msg
            .request_uri()
            .and_then(vaka_scaip::sip::uri_user)
            .is_some_and(|u| users.iter().any(|a| a == u))
}

fn challenge(sh: &Shared, msg: &SipMessage, now: u64, stale: bool) -> SipMessage {
    sh.metrics.auth_challenged.increment(1);
    let c = sh
        .issuer
        .challenge(&sh.cfg.realm, sh.algorithm, now, rand::random(), stale);
    let mut r = response(msg, 401, "Unauthorized");
    let _ = r.push_header("WWW-Authenticate", &c.to_header_value());
    r
}

/// Digest check (never Basic): no credentials -> 401 with a challenge; valid -> the account;
/// expired nonce or replayed nonce count -> 401 `stale=true`; anything else -> 403.
fn authenticate(sh: &Shared, msg: &SipMessage, now: u64) -> Result<Account, Box<SipMessage>> {
    let Some(header) = msg.authorization() else {
        return Err(Box::new(challenge(sh, msg, now, false)));
    };
    let forbidden = |why: &str| {
        sh.metrics.auth_failed.increment(1);
        tracing::debug!(reason = why, "SIP authentication refused");
        response(msg, 403, "Forbidden")
    };
    let auth = match Authorization::parse(header) {
        Ok(a) => a,
        // Basic or another scheme: challenge for Digest instead.
        Err(DigestError::NotDigest) => return Err(Box::new(challenge(sh, msg, now, false))),
        Err(_) => {
            sh.metrics.auth_failed.increment(1);
            return Err(Box::new(response(msg, 400, "Malformed Authorization")));
        }
    };
    let Some(account) = sh.accounts.get(&auth.username) else {
        return Err(Box::new(forbidden("unknown user")));
    };
    let outcome = sh.issuer.verify(
        &auth,
        msg.method().as_str(),
        &sh.cfg.realm,
        Credential::Password(&account.password),
        now,
        &mut sh.state().nonces,
    );
    match outcome {
        AuthOutcome::Ok => Ok(account.clone()),
        AuthOutcome::Stale => Err(Box::new(challenge(sh, msg, now, true))),
        // Right password, nonce count already used: a captured request replayed, or (over UDP)
        // a device's own retransmission overtaken by its next request after the first copy was
        // lost. Never accepted; a fresh challenge lets the real device go on, where a 403 would
        // refuse its alarm.
        AuthOutcome::Invalid(InvalidReason::Replay) => {
            sh.metrics.auth_replayed.increment(1);
            Err(Box::new(challenge(sh, msg, now, true)))
        }
        AuthOutcome::Invalid(reason) => Err(Box::new(forbidden(&format!("{reason:?}")))),
    }
}

/// REGISTER: binds the account to its (first) Contact; `Expires`/`expires=` 0 or `Contact: *`
/// removes it. The granted lifetime is capped by `sip.max_expires_secs`.
fn register(sh: &Shared, msg: &SipMessage, account: &Account, now: u64) -> SipMessage {
    let contacts = match msg.contacts() {
        Ok(c) => c,
        Err(_) => return response(msg, 400, "Malformed Contact"),
    };
    let header_expires = msg.expires();
    let mut st = sh.state();
    let mut r = response(msg, 200, "OK");
    match contacts.first() {
        None => {
            // A query: report the current binding.
            if let Some(b) = st.registrar.lookup(&account.username, now) {
                let left = b.expires_at_ms.saturating_sub(now).div_ceil(1000);
                let _ = r.push_header("Contact", &format!("<{}>;expires={left}", b.uri));
            }
        }
        Some(c) if c.uri == "*" => {
            if header_expires != Some(0) {
                return response(msg, 400, "Wildcard Contact Needs Expires 0");
            }
            st.registrar.unbind(&account.username);
        }
        Some(c) => {
            let asked = c.expires().or(header_expires).unwrap_or(3600);
            let granted = asked.min(sh.cfg.max_expires_secs);
            st.registrar.bind(&account.username, &c.uri, granted, now);
            if granted > 0 {
                let _ = r.push_header("Contact", &format!("<{}>;expires={granted}", c.uri));
            }
            let _ = r.push_header("Expires", &granted.to_string());
        }
    }
    sh.metrics.registrations.set(st.registrar.len() as f64);
    r
}
