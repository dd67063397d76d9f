//! One received SIP message: digest authentication, the SIP response, and for a SCAIP MESSAGE
//! the start of its answer (see [`super::answer`]).
//!
//! A request that does not authenticate costs no state (invariant 13): it is answered
//! statelessly (a retransmission just gets a fresh 401; nonces are stateless HMAC), within its
//! source's budget ([`super::strangers`]), and never with more bytes than it had. Only an
//! authenticated request gets a server transaction (retransmission memory, `max_transactions`).
//!
//! Everything here is synchronous and short: a request is answered (and an authenticated one's
//! response stored for retransmissions) before the next datagram is read; the slow part,
//! waiting for the router, runs in a task of its own.
use std::net::SocketAddr;
use std::sync::Arc;

use vaka_scaip::auth::{Credential, DigestError, Expected, InvalidReason, WithoutQop};
use vaka_scaip::sip::{Method, SCAIP_CONTENT_TYPE};
use vaka_scaip::{AuthOutcome, Authorization, DigestAlgorithm, SipMessage, TxLookup};

use super::answer;
use super::link::Link;
use super::shared::{Account, Shared};

const ALLOW: &str = "MESSAGE, REGISTER, OPTIONS";

/// Headers a response may carry if it stays small enough.
type Headers = &'static [(&'static str, &'static str)];

/// What a request gets.
enum Reply {
    /// It did not authenticate: a response sent statelessly, with `optional` headers only if
    /// they fit (see [`answer_stranger`]).
    Stranger {
        response: Box<SipMessage>,
        optional: Headers,
    },
    /// The digest checked out.
    Authenticated(Account),
}

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
    if *msg.method() == Method::Ack {
        return false; // belongs to no non-INVITE transaction, never answered
    }
    msg.stamp_source(&peer.ip().to_string(), peer.port());
    let now = sh.now_ms();
    let target = response_target(&msg, peer);
    let credentials =
        msg.authorization().is_some() && matches!(msg.method(), Method::Message | Method::Register);
    {
        let mut st = sh.state();
        st.maintain(now, sh.issuer.lifetime_ms());
        if !credentials {
            // A stranger pays before anything is computed (no HMAC, no response built).
            if !st.strangers.allow(peer.ip(), now) {
                drop(st);
                sh.metrics.stranger_bytes_in.increment(bytes.len() as u64);
                sh.metrics.refused("rate");
                return false;
            }
        } else if let Some(stored) = st.transactions.lookup(&msg, now) {
            // A retransmission of an authenticated request: its response again (none while it
            // has none yet), never a second event, never a second nonce-count check.
            drop(st);
            sh.metrics.retransmissions.increment(1);
            if let Some(b) = stored {
                link.send(target, b);
            }
            return false;
        }
    }
    match respond(sh, &msg, now) {
        Reply::Stranger { response, optional } => {
            // A request with credentials that failed pays now (one without paid on arrival).
            let stranger = Stranger {
                peer,
                target,
                request_len: bytes.len(),
                charge: credentials,
            };
            answer_stranger(sh, link, &stranger, *response, optional);
            false
        }
        Reply::Authenticated(account) => {
            authenticated(sh, link, peer, target, msg, account, now);
            true
        }
    }
}

/// A message over `sip.max_message_bytes` (counted as an error of kind `too_large`): a request
/// whose header section (within `bytes`) can be read gets `513 Message Too Large` (RFC 3261
/// §21.5.14), so the device stops retransmitting it; anything else (a response, an ACK,
/// headers that do not parse) is dropped. Its body is never parsed and nothing is
/// authenticated, so the 513 is a stranger's response: paid from its source's budget and
/// never larger than `request_len`, the size the request has (or, on a stream, claims).
/// True if a 513 was sent.
pub(crate) fn too_large(
    sh: &Arc<Shared>,
    link: &Link,
    peer: SocketAddr,
    bytes: &[u8],
    request_len: usize,
) -> bool {
    sh.metrics.too_large.increment(1);
    let Ok(mut msg) = SipMessage::parse_head(bytes) else {
        tracing::debug!(%peer, size = request_len, "oversized SIP message dropped: no readable headers");
        return false;
    };
    if !msg.is_request() || *msg.method() == Method::Ack {
        return false;
    }
    tracing::debug!(%peer, size = request_len, limit = sh.cfg.max_message_bytes,
        "SIP request too large: 513");
    msg.stamp_source(&peer.ip().to_string(), peer.port());
    let stranger = Stranger {
        peer,
        target: response_target(&msg, peer),
        request_len,
        charge: true,
    };
    let response = stranger_response(&msg, 513, "Message Too Large");
    answer_stranger(sh, link, &stranger, response, &[])
}

/// A request shed at the socket because its lane was full: `503 Service Unavailable` with
/// `Retry-After` (busy), from its headers alone. Nothing is authenticated, so it is a
/// stranger's response: paid from its source's budget and never larger than the request. True
/// if sent.
pub(crate) fn busy(sh: &Arc<Shared>, link: &Link, peer: SocketAddr, bytes: &[u8]) -> bool {
    sh.metrics.bytes_received.increment(bytes.len() as u64);
    let Ok(mut msg) = SipMessage::parse_head(bytes) else {
        sh.metrics.malformed.increment(1);
        return false;
    };
    if !msg.is_request() || *msg.method() == Method::Ack {
        return false;
    }
    sh.metrics.refused("busy");
    msg.stamp_source(&peer.ip().to_string(), peer.port());
    let stranger = Stranger {
        peer,
        target: response_target(&msg, peer),
        request_len: bytes.len(),
        charge: true,
    };
    let response = stranger_response(&msg, 503, "Service Unavailable");
    answer_stranger(sh, link, &stranger, response, &[("Retry-After", "5")])
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

/// A response to an authenticated request.
fn response(req: &SipMessage, code: u16, reason: &str) -> SipMessage {
    let tag = format!("{:016x}", rand::random::<u64>());
    let mut r = SipMessage::response(req, code, reason, &tag);
    let _ = r.push_header("Server", "vaka");
    r
}

/// A response to a request that did not authenticate: nothing beyond what SIP requires (no
/// Server header, a short To tag), so that it stays smaller than the request.
fn stranger_response(req: &SipMessage, code: u16, reason: &str) -> SipMessage {
    let tag = format!("{:08x}", rand::random::<u32>());
    SipMessage::response(req, code, reason, &tag)
}

/// Who a stranger's response goes to, and what it may cost.
struct Stranger {
    peer: SocketAddr,
    target: SocketAddr,
    /// The request's size: the response may not be larger (no amplification).
    request_len: usize,
    charge: bool,
}

/// Sends a response to a request that did not authenticate: paid from its source's budget if
/// still due, with the `optional` headers only when the response then stays within the
/// request's size, and not at all when even the bare response would be larger than the
/// request (a forged source address must not make us a traffic amplifier). True if sent.
fn answer_stranger(
    sh: &Shared,
    link: &Link,
    s: &Stranger,
    mut response: SipMessage,
    optional: &[(&str, &str)],
) -> bool {
    sh.metrics.stranger_bytes_in.increment(s.request_len as u64);
    if s.charge && !sh.state().strangers.allow(s.peer.ip(), sh.now_ms()) {
        sh.metrics.refused("rate");
        return false;
    }
    let mut bytes = response.to_bytes();
    if !optional.is_empty() {
        for (name, value) in optional {
            let _ = response.push_header(name, value);
        }
        let full = response.to_bytes();
        if full.len() <= s.request_len {
            bytes = full;
        }
    }
    if bytes.len() > s.request_len {
        sh.metrics.refused("size");
        tracing::debug!(peer = %s.peer, request = s.request_len, response = bytes.len(),
            "response to an unauthenticated request not sent: larger than the request");
        return false;
    }
    sh.metrics.stranger_bytes_out.increment(bytes.len() as u64);
    link.send(s.target, bytes)
}

/// An authenticated request: a server transaction (its own budget, `max_transactions`), the
/// response, and for a SCAIP MESSAGE its answer.
fn authenticated(
    sh: &Arc<Shared>,
    link: &Link,
    peer: SocketAddr,
    target: SocketAddr,
    msg: SipMessage,
    account: Account,
    now: u64,
) {
    let lookup = sh.state().transactions.on_request(&msg, now);
    let key = match lookup {
        TxLookup::New(key) => key,
        TxLookup::Retransmission(stored) => {
            // A copy raced in on another connection and was handled first.
            sh.metrics.retransmissions.increment(1);
            if let Some(b) = stored {
                link.send(target, b);
            }
            return;
        }
        TxLookup::Ack => return,
        TxLookup::Full => {
            sh.metrics.transactions_full.increment(1);
            let mut r = response(&msg, 503, "Service Unavailable");
            let _ = r.push_header("Retry-After", "5");
            link.send(target, r.to_bytes());
            return;
        }
    };
    let (resp, start) = match msg.method() {
        Method::Register => (register(sh, &msg, &account, now), false),
        _ if !msg.is_scaip() => {
            let mut r = response(&msg, 415, "Unsupported Media Type");
            let _ = r.push_header("Accept", SCAIP_CONTENT_TYPE);
            (r, false)
        }
        _ => {
            sh.metrics.events_received.increment(1);
            (response(&msg, 200, "OK"), true)
        }
    };
    let code = resp.status().unwrap_or(500);
    let bytes = resp.to_bytes();
    sh.state()
        .transactions
        .respond(&key, code, bytes.clone(), link.reliable(), now);
    link.send(target, bytes);
    if start {
        answer::start(sh, account, msg, link.clone(), peer);
    }
}

/// What a new request gets.
fn respond(sh: &Shared, msg: &SipMessage, now: u64) -> Reply {
    let stranger = |response: SipMessage, optional: Headers| Reply::Stranger {
        response: Box::new(response),
        optional,
    };
    match msg.method() {
        Method::Options => stranger(
            stranger_response(msg, 200, "OK"),
            &[("Allow", ALLOW), ("Accept", SCAIP_CONTENT_TYPE)],
        ),
        Method::Message | Method::Register => {
            if !user_accepted(sh, msg) {
                return stranger(stranger_response(msg, 404, "Not Found"), &[]);
            }
            authenticate(sh, msg, now)
        }
        _ => stranger(
            stranger_response(msg, 405, "Method Not Allowed"),
            &[("Allow", ALLOW)],
        ),
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

/// A 401 with a new nonce.
fn challenge(sh: &Shared, msg: &SipMessage, now: u64, stale: bool) -> Reply {
    sh.metrics.auth_challenged.increment(1);
    let c = sh
        .issuer
        .challenge(&sh.cfg.realm, sh.algorithm, now, rand::random(), stale);
    let mut r = stranger_response(msg, 401, "Unauthorized");
    let _ = r.push_header("WWW-Authenticate", &c.to_header_value());
    Reply::Stranger {
        response: Box::new(r),
        optional: &[],
    }
}

/// What this account's credentials without qop are worth.
fn without_qop(sh: &Shared, account: &Account) -> WithoutQop {
    if account.single_use_nonce {
        WithoutQop::Once
    } else if sh.cfg.require_qop {
        WithoutQop::Refused
    } else {
        WithoutQop::Reusable
    }
}

/// Digest check (never Basic): no credentials -> 401 with a challenge; valid -> the account;
/// expired nonce or replayed nonce count -> 401 `stale=true`; a digest `uri` other than the
/// Request-URI -> 400; anything else (another algorithm than the configured one, qop missing,
/// wrong password, ...) -> 403. Every refusal is counted by reason.
fn authenticate(sh: &Shared, msg: &SipMessage, now: u64) -> Reply {
    let Some(header) = msg.authorization() else {
        return challenge(sh, msg, now, false);
    };
    let refuse = |code: u16, phrase: &str, why: &'static str| {
        sh.metrics.auth_failed.increment(1);
        sh.metrics.refused(why);
        tracing::debug!(reason = why, "SIP authentication refused");
        Reply::Stranger {
            response: Box::new(stranger_response(msg, code, phrase)),
            optional: &[],
        }
    };
    let auth = match Authorization::parse(header) {
        Ok(a) => a,
        // Basic or another scheme: challenge for Digest instead.
        Err(DigestError::NotDigest) => return challenge(sh, msg, now, false),
        // MD5-sess, SHA-512-256, ...: only the configured algorithm is accepted.
        Err(DigestError::UnsupportedAlgorithm) => return refuse(403, "Forbidden", "algorithm"),
        Err(_) => return refuse(400, "Malformed Authorization", "malformed"),
    };
    // Read per request: a device added, changed or removed counts from its next request.
    let dir = sh.directory.load();
    let Some((device, credential)) = dir.sip_account(&auth.username) else {
        return refuse(403, "Forbidden", "unknown_user");
    };
    if credential.realm != sh.cfg.realm {
        // HA1 values are bound to the realm they were made for; `sip.realm` changed since.
        return refuse(403, "Forbidden", "realm_changed");
    }
    let ha1 = match sh.algorithm {
        DigestAlgorithm::Md5 => &credential.ha1_md5,
        DigestAlgorithm::Sha256 => &credential.ha1_sha256,
    };
    let account = Account {
        username: auth.username.clone(),
        device: device.key.clone(),
        single_use_nonce: credential.single_use_nonce,
    };
    let expected = Expected {
        method: msg.method().as_str(),
        request_uri: msg.request_uri().unwrap_or(""),
        realm: &sh.cfg.realm,
        algorithm: sh.algorithm,
        without_qop: without_qop(sh, &account),
    };
    let outcome = sh.issuer.verify(
        &auth,
        &expected,
        Credential::Ha1(ha1),
        now,
        &mut sh.state().nonces,
    );
    match outcome {
        AuthOutcome::Ok => Reply::Authenticated(account),
        // The right password on an old or unknown nonce (a restart): a new challenge. Still a
        // stranger's response (a captured old header proves nothing), paid like one: a
        // source's burst covers every device behind it coming back after a restart.
        AuthOutcome::Stale => challenge(sh, msg, now, true),
        // Right password, nonce count (or single-use nonce) already used: a captured request
        // replayed, or (over UDP) a device's own retransmission overtaken by its next request
        // after the first copy was lost, or a single-use device's next request. Never
        // accepted; a fresh challenge lets the real device go on, where a 403 would refuse
        // its alarm.
        AuthOutcome::Invalid(InvalidReason::Replay) => {
            sh.metrics.auth_replayed.increment(1);
            sh.metrics.refused("replay");
            challenge(sh, msg, now, true)
        }
        AuthOutcome::Invalid(InvalidReason::UriMismatch) => {
            refuse(400, "Digest URI Mismatch", "uri_mismatch")
        }
        AuthOutcome::Invalid(reason) => refuse(403, "Forbidden", reason.label()),
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
