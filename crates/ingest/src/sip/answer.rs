//! The SCAIP answer to an accepted MESSAGE: parse the `<mrq>`, hand the event to the router,
//! wait for it to be durable (or answer HOLD), then send `<mrs>` as our own MESSAGE.
//!
//! The `<mrs>` goes to the address of the device's registered contact (bound by an
//! authenticated REGISTER), else to the request's source address: never to an address a
//! Contact header names, which would let one request aim our messages (and their
//! retransmissions) at a third party. Its Request-URI is still the registered contact, else the
//! request's Contact, else `sip:user@source`, as the device expects. Over TCP/TLS it goes back
//! on the connection the request came in on (a device behind NAT is reachable no other way).
//! It reuses the request's Call-ID with a new From tag and our own CSeq, and over UDP is
//! retransmitted on RFC 3261 timers until a final response.
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;
use vaka_core::{DeviceId, DeviceKey, Lane};
use vaka_scaip::scaip::{EventClass, Mrq, Mrs, Snu};
use vaka_scaip::sip::{uri_user, NewRequest};
use vaka_scaip::transaction::RetransmitAction;
use vaka_scaip::{ClientRetransmit, SipMessage};

use super::convert::{hbi_minutes, snu_for, to_event};
use super::link::Link;
use super::shared::{Account, Deciding, Shared, Unsent};

/// Longest `ste` we send (SCAIP status texts are short).
const MAX_STE: usize = 64;

/// Starts answering `msg` (already answered 200 OK) from `account`.
pub(crate) fn start(
    sh: &Arc<Shared>,
    account: Account,
    msg: SipMessage,
    link: Link,
    peer: SocketAddr,
) {
    let lane = vaka_scaip::triage::body_triage(msg.body());
    let unsent = Unsent::new(sh);
    let deciding = Deciding::new(sh, lane);
    let permit = sh.admit(lane);
    let sh2 = sh.clone();
    sh.tracker.spawn(async move {
        // The permit is held until the `<mrs>` transaction ends, so it bounds those too.
        let (mrs, hbi_for) = match &permit {
            Some(_) => decide(&sh2, &account, &msg).await,
            None => {
                // Too many answers underway (invariant 6): busy, nothing stored.
                sh2.metrics.discarded_busy.increment(1);
                let reference = msg
                    .body_str()
                    .and_then(|b| Mrq::parse(b).ok())
                    .map(|m| m.reference)
                    .unwrap_or_default();
                let mut m = Mrs::new(reference, Snu::Busy);
                m.ste = Some("busy, not stored".into());
                (m, None)
            }
        };
        drop(deciding);
        deliver(&sh2, &account, &msg, link, peer, mrs, hbi_for, unsent).await;
        drop(permit);
    });
}

/// The `<mrs>` for a request, and (for a heartbeat answered with `hbi`) the device and value
/// to remember once the device confirms receipt.
async fn decide(
    sh: &Shared,
    account: &Account,
    msg: &SipMessage,
) -> (Mrs, Option<(DeviceKey, u16)>) {
    let refuse = |reference: &str, snu: Snu, ste: String| {
        sh.metrics.discarded_invalid.increment(1);
        let mut m = Mrs::new(reference, snu);
        m.ste = Some(truncate(ste));
        (m, None)
    };
    let Some(body) = msg.body_str() else {
        return refuse("", Snu::InvalidFormat, "body is not UTF-8".into());
    };
    let mrq = match Mrq::parse(body) {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(user = %account.username, error = %e, "SCAIP request refused");
            return refuse(
                e.reference().unwrap_or(""),
                e.kind().snu(),
                e.detail().into(),
            );
        }
    };
    if let Some(lge) = &mrq.lge {
        if !lge.rejected.is_empty() {
            tracing::info!(device = %account.device, dropped = ?lge.rejected, "malformed position dropped, message kept");
        }
    }
    let device = DeviceKey {
        tenant: account.device.tenant.clone(),
        device: DeviceId::new(&mrq.cid),
    };
    if !sh.directory.load().may_send_as(&account.device, &device) {
        sh.metrics.discarded_forbidden.increment(1);
        let mut m = Mrs::new(&mrq.reference, Snu::WrongData);
        m.ste = Some(truncate(format!(
            "cid {} may not be sent by account {}",
            mrq.cid, account.username
        )));
        return (m, None);
    }
    let event = to_event(
        &mrq,
        device.clone(),
        sh.clock.now_ms(),
        body.as_bytes().to_vec(),
    );
    let lane = event.lane();
    sh.metrics.events_sent.increment(1);
    if lane == Lane::Alarm {
        sh.metrics.alarms_received.increment(1);
    }
    let reply = tokio::time::timeout(sh.cfg.hold_after(), sh.router.submit(event)).await;
    let mut mrs = Mrs::new(&mrq.reference, Snu::Ok);
    let Ok(reply) = reply else {
        // Not durable yet: HOLD. The device resends the same request; the router answers the
        // resend from its idempotency entry once the original is durable.
        mrs.snu = Snu::Hold;
        return (mrs, None);
    };
    let (snu, ste) = snu_for(&reply, lane);
    if snu == Snu::Busy {
        sh.metrics.discarded_busy.increment(1);
    }
    mrs.snu = snu;
    mrs.ste = ste.map(truncate);
    let mut hbi_for = None;
    if mrq.class() == EventClass::Heartbeat && mrq.heartbeat_adjustable() && lane == Lane::Telemetry
    {
        let secs = sh
            .directory
            .load()
            .device(&device)
            .and_then(|d| d.heartbeat_secs);
        if let Some(hbi) = secs.map(hbi_minutes) {
            if sh.state().hbi_told.get(&device) != Some(&hbi) {
                mrs.hbi = Some(hbi);
                hbi_for = Some((device, hbi));
            }
        }
    }
    (mrs, hbi_for)
}

/// The device took `hbi` (minutes): supervise it with that interval from now on. It can differ
/// from the configured seconds, which `hbi` rounds up to whole minutes.
async fn supervise_with(sh: &Shared, device: &DeviceKey, hbi: u16) {
    let secs = u32::from(hbi) * 60;
    let configured = sh
        .directory
        .load()
        .device(device)
        .and_then(|d| d.heartbeat_secs);
    if configured == Some(secs) {
        return;
    }
    if let Err(e) = sh.router.heartbeat_interval(device, secs).await {
        // The configured interval stays in force; the next heartbeat answers hbi again.
        sh.state().hbi_told.remove(device);
        tracing::warn!(%device, secs, error = %e, "cannot record the heartbeat interval told to the device");
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_STE {
        let mut end = MAX_STE;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Removes an outgoing transaction's entry however its task ends.
struct Outgoing<'a> {
    sh: &'a Shared,
    branch: String,
}

impl Drop for Outgoing<'_> {
    fn drop(&mut self) {
        self.sh.state().outgoing.remove(&self.branch);
    }
}

/// Sends `mrs` and follows its client transaction to the end.
#[allow(clippy::too_many_arguments)]
async fn deliver(
    sh: &Shared,
    account: &Account,
    req: &SipMessage,
    link: Link,
    peer: SocketAddr,
    mrs: Mrs,
    hbi_for: Option<(DeviceKey, u16)>,
    mut unsent: Unsent,
) {
    let now = sh.now_ms();
    let registered = sh
        .state()
        .registrar
        .lookup(&account.username, now)
        .map(|b| b.uri);
    let contact = req
        .contacts()
        .ok()
        .and_then(|c| c.into_iter().find(|c| c.uri != "*"))
        .map(|c| c.uri);
    let user = req.from().user().unwrap_or(&account.username).to_owned();
    let request_uri = registered
        .clone()
        .or(contact)
        .unwrap_or_else(|| format!("sip:{user}@{peer}"));
    let sent_by = sent_by(sh, &link, peer);
    let branch = format!("z9hG4bK{:016x}", rand::random::<u64>());
    let from_tag = format!("{:016x}", rand::random::<u64>());
    let cseq = {
        let mut st = sh.state();
        st.cseq = st.cseq % (1 << 30) + 1;
        st.cseq
    };
    let built = NewRequest {
        request_uri: &request_uri,
        transport: link.transport(),
        sent_by: &sent_by,
        branch: &branch,
        from_uri: &req.to().uri,
        from_tag: &from_tag,
        to_uri: &req.from().uri,
        call_id: req.call_id(),
        cseq,
        ..NewRequest::default()
    }
    .scaip_message_bytes(&mrs.to_xml());
    let bytes = match built {
        Ok(b) => b,
        Err(e) => {
            sh.metrics.send_failed.increment(1);
            tracing::warn!(user = %account.username, error = %e, "cannot build the <mrs> MESSAGE");
            return;
        }
    };
    // Over UDP: to the registered contact's address when it has one we can use, else the
    // source (never the request's Contact: no aiming at third parties).
    let to = match (link.reliable(), &registered) {
        (false, Some(uri)) => uri_addr(uri).await.unwrap_or(peer),
        _ => peer,
    };
    let (tx, mut rx) = mpsc::channel::<u16>(4);
    sh.state().outgoing.insert(branch.clone(), tx);
    let _entry = Outgoing {
        sh,
        branch: branch.clone(),
    };
    sh.metrics.reply(mrs.snu.code());
    link.send(to, bytes.clone());
    unsent.done();
    let mut timers = ClientRetransmit::new(now, link.reliable());
    loop {
        let at = sh.clock.instant_at(timers.deadline() as i64);
        tokio::select! {
            _ = sh.token.cancelled() => return,
            code = rx.recv() => match code {
                Some(c) if c < 200 => timers.on_provisional(sh.now_ms()),
                Some(c) if c < 300 => {
                    if let Some((device, hbi)) = hbi_for {
                        sh.state().hbi_told.insert(device.clone(), hbi);
                        supervise_with(sh, &device, hbi).await;
                    }
                    return;
                }
                Some(c) => {
                    sh.metrics.mrs_refused.increment(1);
                    tracing::info!(user = %account.username, code = c, reference = %mrs.reference, "device refused the <mrs>");
                    return;
                }
                None => return,
            },
            _ = tokio::time::sleep_until(at) => match timers.poll(sh.now_ms()) {
                RetransmitAction::Retransmit => {
                    sh.metrics.retransmissions.increment(1);
                    link.send(to, bytes.clone());
                }
                RetransmitAction::GiveUp => {
                    sh.metrics.mrs_timeout.increment(1);
                    tracing::info!(user = %account.username, reference = %mrs.reference, "no response to the <mrs>; the device will resend");
                    return;
                }
                RetransmitAction::Wait { .. } => {}
            },
        }
    }
}

/// A response to one of our `<mrs>` MESSAGEs: hand its status to the waiting task.
pub(crate) fn on_response(sh: &Shared, msg: &SipMessage) {
    let code = msg.status().unwrap_or(0);
    let tx = msg
        .top_via()
        .branch()
        .and_then(|b| sh.state().outgoing.get(b).cloned());
    match tx {
        Some(tx) => {
            let _ = tx.try_send(code);
        }
        None => sh.metrics.stray_response.increment(1),
    }
}

/// Our Via sent-by: `sip.advertised_host`, else the local address of the link (for a socket
/// bound to a wildcard address, the local address the OS routes to the peer from).
fn sent_by(sh: &Shared, link: &Link, peer: SocketAddr) -> String {
    let local = link.local();
    let host = if !sh.cfg.advertised_host.is_empty() {
        sh.cfg.advertised_host.clone()
    } else if !local.ip().is_unspecified() {
        local.ip().to_string()
    } else {
        route_source(peer).map_or_else(|| local.ip().to_string(), |ip| ip.to_string())
    };
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    format!("{host}:{}", local.port())
}

fn route_source(peer: SocketAddr) -> Option<std::net::IpAddr> {
    let any: SocketAddr = if peer.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(any).ok()?;
    s.connect(peer).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

/// The address a `sip:`/`sips:` URI points at (`host[:port]`, default port 5060/5061).
async fn uri_addr(uri: &str) -> Option<SocketAddr> {
    let (host, port) = uri_host_port(uri)?;
    if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse() {
        return Some(SocketAddr::new(ip, port));
    }
    tokio::net::lookup_host(format!("{host}:{port}"))
        .await
        .ok()?
        .next()
}

pub(crate) fn uri_host_port(uri: &str) -> Option<(String, u16)> {
    let (scheme, rest) = uri.split_once(':')?;
    let default = if scheme.eq_ignore_ascii_case("sips") {
        5061
    } else if scheme.eq_ignore_ascii_case("sip") {
        5060
    } else {
        return None;
    };
    let rest = match rest.find('@') {
        Some(at) if uri_user(uri).is_some() => &rest[at + 1..],
        _ => rest,
    };
    let end = rest.find([';', '?']).unwrap_or(rest.len());
    let hostport = &rest[..end];
    let (host, port) = if let Some(v6_end) = hostport.strip_prefix('[').and_then(|h| h.find(']')) {
        let host = &hostport[..v6_end + 2];
        let port = hostport[v6_end + 2..].strip_prefix(':');
        (host, port)
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default,
    };
    Some((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_addresses() {
        let cases: &[(&str, Option<(&str, u16)>)] = &[
            ("sip:100001@127.0.0.1:5070", Some(("127.0.0.1", 5070))),
            ("sip:100001@127.0.0.1", Some(("127.0.0.1", 5060))),
            ("sips:dev@example.org", Some(("example.org", 5061))),
            (
                "sip:dev@10.0.0.1:5080;transport=tcp",
                Some(("10.0.0.1", 5080)),
            ),
            ("sip:[2001:db8::1]:5070", Some(("[2001:db8::1]", 5070))),
            ("sip:u@[::1]", Some(("[::1]", 5060))),
            ("sip:host.only", Some(("host.only", 5060))),
            ("tel:+4670", None),
            ("sip:u@h:notaport", None),
            ("sip:u@", None),
        ];
        for (uri, want) in cases {
            assert_eq!(
                uri_host_port(uri),
                want.map(|(h, p)| (h.to_owned(), p)),
                "{uri}"
            );
        }
    }

    #[test]
    fn status_text_is_bounded_on_a_char_boundary() {
        let s = truncate("å".repeat(100));
        assert!(s.len() <= MAX_STE && s.chars().all(|c| c == 'å'));
        assert_eq!(truncate("ok".into()), "ok");
    }
}
