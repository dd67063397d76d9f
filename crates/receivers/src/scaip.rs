//! SCAIP forwarding: the alarm goes on to another alarm receiver as a SCAIP `<mrq>` in a SIP
//! MESSAGE over UDP, TCP or TLS, as a gateway device would (digest auth with the receiver record's
//! credentials), built with `vaka-scaip`'s sans-I/O parts. The far `<mrs>` snu 0 is the receipt
//! and hands the alarm over (`handed_over`: the far centre handles it from there); snu 4 (HOLD)
//! sends the same `<mrq>` again every 5 s for up to 3 min; snu 5/6 refuse the alarm (escalated at
//! once); silence counts as unreachable. Reachability is a SIP OPTIONS the far side answers.
use futures::future::BoxFuture;
use futures::FutureExt;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;
use vaka_core::alarm::{AlarmInput, Notice};
use vaka_core::CentreId;
use vaka_scaip::auth::{expected_response, Credential};
use vaka_scaip::scaip::{is_valid_cid, GeoPos, Lge};
use vaka_scaip::{Authorization, Challenge, Method, Mrq, Mrs, NewRequest, SipMessage, Snu};

use crate::session::{Delivery, Far, Handled};
use crate::sip_conn::{Conn, Transport};

/// Waits for an answer to one transmission, doubled per retransmission (RFC 3261 T1).
const T1: Duration = Duration::from_millis(500);
const TRANSMISSIONS: u32 = 4;
/// How long the far side may take to send its `<mrs>` after its 200.
const MRS_WITHIN: Duration = Duration::from_secs(10);
/// After a HOLD (snu 4) the same `<mrq>` goes again this much later (SCAIP: 5-20 s) ...
const HOLD_RESEND: Duration = Duration::from_secs(5);
/// ... until the far side takes or refuses it, for at most this long (SCAIP: 3-30 min); then
/// the alarm goes on along the chain.
const HOLD_WINDOW: Duration = Duration::from_secs(180);

/// What the far receiver gets as `<cid>`.
#[derive(Clone, Debug)]
pub(crate) enum Cid {
    /// The same id for every alarm (the record's `cid`, else its `username`).
    Fixed(String),
    /// Each alarm's own device id (devices listed behind this gateway at the far side).
    PerDevice,
}

/// One forwarding session's SIP state; one alarm at a time goes through it.
pub(crate) struct Forward {
    state: tokio::sync::Mutex<Sip>,
}

struct Sip {
    centre: CentreId,
    uri: String,
    username: String,
    password: String,
    cid: Cid,
    sock: Option<Conn>,
    transport: Transport,
    challenge: Option<Challenge>,
    nc: u32,
    cseq: u32,
    seq: u64,
}

impl Forward {
    pub(crate) fn new(
        centre: CentreId,
        uri: String,
        username: String,
        password: String,
        cid: Cid,
        transport: Transport,
    ) -> Forward {
        let state = Sip {
            centre,
            cid,
            uri,
            username,
            password,
            sock: None,
            transport,
            challenge: None,
            nc: 0,
            cseq: 0,
            seq: rand::random::<u32>().into(),
        };
        Forward {
            state: tokio::sync::Mutex::new(state),
        }
    }
}

impl Sip {
    /// The far side's host (the name its TLS certificate carries) and address, from
    /// `sip:user@host:port` (5060, or 5061 over TLS, when the port is absent).
    async fn far(&self) -> Result<(String, SocketAddr), String> {
        let hostport = self
            .uri
            .split_once('@')
            .map(|(_, h)| h.split(';').next().unwrap_or(h))
            .ok_or("receiver.uri has no host")?;
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() && !hostport.ends_with(']') => {
                (h.to_owned(), p.to_owned())
            }
            _ => {
                let port = match self.transport {
                    Transport::Tls(_) => "5061",
                    _ => "5060",
                };
                (hostport.to_owned(), port.to_owned())
            }
        };
        let target = format!("{host}:{port}");
        let found = tokio::net::lookup_host(target.as_str())
            .await
            .map_err(|e| format!("{target}: {e}"))?
            .next();
        let addr = found.ok_or_else(|| format!("{target}: no address"))?;
        Ok((host, addr))
    }

    async fn socket(&mut self) -> Result<&mut Conn, String> {
        if self.sock.is_none() {
            let (host, far) = self.far().await?;
            self.sock = Some(Conn::open(far, &host, &self.transport).await?);
        }
        Ok(self.sock.as_mut().expect("open"))
    }

    fn next_id(&mut self) -> String {
        self.seq += 1;
        format!("{:x}{:x}", self.seq, rand::random::<u32>())
    }

    fn request(
        &mut self,
        method: Method,
        call_id: &str,
        xml: Option<&str>,
    ) -> Result<SipMessage, String> {
        self.cseq += 1;
        let is_message = matches!(method, Method::Message);
        let conn = self.sock.as_ref().ok_or("no connection")?;
        let local = conn.local_addr()?;
        let transport = conn.transport();
        let branch = self.next_id();
        let req = NewRequest {
            method,
            request_uri: &self.uri,
            transport,
            sent_by: &local.to_string(),
            branch: &branch,
            from_uri: &format!("sip:{}@{}", self.username, local.ip()),
            from_tag: "vakafwd",
            to_uri: &self.uri,
            call_id,
            cseq: self.cseq,
            ..NewRequest::default()
        };
        let mut m = match xml {
            Some(x) => req.scaip_message(x),
            None => req.build(None),
        }
        .map_err(|e| e.to_string())?;
        m.push_header("Contact", &format!("<sip:{}@{local}>", self.username))
            .map_err(|e| e.to_string())?;
        if let (Some(c), true) = (self.challenge.clone(), is_message) {
            self.nc += 1;
            let auth = self.authorization(&c);
            m.push_header("Authorization", &auth.to_header_value())
                .map_err(|e| e.to_string())?;
        }
        Ok(m)
    }

    fn authorization(&self, c: &Challenge) -> Authorization {
        let mut auth = Authorization {
            username: self.username.clone(),
            realm: c.realm.clone(),
            nonce: c.nonce.clone(),
            uri: self.uri.clone(),
            response: String::new(),
            algorithm: c.algorithm,
            cnonce: c.qop_auth.then(|| format!("{:08x}", rand::random::<u32>())),
            qop: c.qop_auth.then(|| "auth".to_owned()),
            nc: c.qop_auth.then_some(self.nc),
            opaque: c.opaque.clone(),
        };
        auth.response = expected_response(&auth, "MESSAGE", Credential::Password(&self.password))
            .unwrap_or_default();
        auth
    }

    /// Sends `m` until a final response to it arrives: retransmitted over UDP (T1 doubling),
    /// once over TCP or TLS (waiting as long as the UDP schedule would). A broken connection is
    /// dropped, to be opened again for the next request.
    async fn transact(&mut self, m: &SipMessage) -> Result<SipMessage, String> {
        let r = self.transact_on(m).await;
        if r.is_err() {
            self.sock = None;
        }
        r
    }

    async fn transact_on(&mut self, m: &SipMessage) -> Result<SipMessage, String> {
        let bytes = m.to_bytes();
        let cseq = m.header("CSeq").unwrap_or("").to_owned();
        let conn = self.socket().await?;
        let stream = conn.is_stream();
        let mut wait = T1;
        for i in 0..TRANSMISSIONS {
            if i == 0 || !stream {
                conn.send(&bytes).await?;
            }
            let end = Instant::now() + wait;
            loop {
                match conn.recv_until(end).await? {
                    None => break,
                    Some(r) if !r.is_request() && r.header("CSeq").unwrap_or("") == cseq => {
                        if r.status().is_some_and(|s| s >= 200) {
                            return Ok(r);
                        }
                    }
                    Some(_) => {} // a stray message or an earlier transaction's answer
                }
            }
            wait *= 2;
        }
        Err(format!(
            "no answer from {} ({TRANSMISSIONS} transmissions)",
            self.uri
        ))
    }

    /// Sends the alarm; the far `<mrs>` snu.
    async fn forward(&mut self, xml: &str, reference: &str) -> Result<Snu, String> {
        self.socket().await?;
        let call_id = format!("{}@vaka", self.next_id());
        let mut answered = None;
        for _ in 0..2 {
            let m = self.request(Method::Message, &call_id, Some(xml))?;
            let r = self.transact(&m).await?;
            match r.status() {
                Some(401) | Some(407) => {
                    let h = r.www_authenticate().ok_or("401 without a challenge")?;
                    self.challenge =
                        Some(Challenge::parse(h).map_err(|e| format!("challenge: {e}"))?);
                }
                Some(200) => {
                    answered = Some(());
                    break;
                }
                other => return Err(format!("the receiver answered SIP {other:?}")),
            }
        }
        answered.ok_or("the receiver refused our credentials")?;
        let conn = self.sock.as_mut().ok_or("no connection")?;
        let end = Instant::now() + MRS_WITHIN;
        loop {
            let m = conn
                .recv_until(end)
                .await?
                .ok_or("no <mrs> from the receiver in time")?;
            if !m.is_request() {
                continue;
            }
            let ok = SipMessage::response(&m, 200, "OK", "vakafwd");
            let _ = conn.send(&ok.to_bytes()).await;
            let Some(mrs) = m.body_str().and_then(|b| Mrs::parse(b).ok()) else {
                continue;
            };
            if mrs.reference == reference {
                return Ok(mrs.snu);
            }
        }
    }
}

/// The far receiver's snu 0: it has the alarm and handles it from here, as an alarm centre
/// takes a gateway's alarm. Here the alarm is receipted, accepted and closed as handed over, so
/// no deadline of this engine sends it to a second centre, and the device's next alarm is a
/// new one (not a repeat of one left open here). Each step is in the audit.
fn handed_over(centre: &CentreId) -> Vec<AlarmInput> {
    vec![
        AlarmInput::Receipt {
            centre: centre.clone(),
        },
        AlarmInput::Accept {
            centre: centre.clone(),
            operator: format!("{centre} (SCAIP receiver)"),
        },
        AlarmInput::Close {
            centre: centre.clone(),
            outcome: "handed over: the SCAIP receiver answered snu 0 and handles the alarm".into(),
        },
    ]
}

/// The alarm as the far receiver's `<mrq>`: our controller id (or the alarm's device's), its
/// own reference (the alarm id in hex, so a resend is recognised there), code and priority, the
/// device and what happened as text, the position.
pub(crate) fn mrq(d: &Delivery, cid: &Cid) -> (String, String) {
    let a = &d.json.alarm;
    let cid = match cid {
        Cid::Fixed(c) => c.as_str(),
        Cid::PerDevice => a.device.as_str(),
    };
    let reference = format!("{:x}", a.id);
    let stc = match a.code.len() == 4 && a.code.bytes().all(|b| b.is_ascii_digit()) {
        true => a.code.clone(),
        false => "0010".to_owned(),
    };
    let dty = match a.device_type.len() == 4 && a.device_type.bytes().all(|b| b.is_ascii_digit()) {
        true => a.device_type.clone(),
        false => "0003".to_owned(),
    };
    let m = Mrq {
        reference: reference.clone(),
        cid: cid.to_owned(),
        dty,
        stc: Some(stc),
        pri: Some(a.priority.min(9)),
        dte: Some(
            format!("{}/{}", a.tenant, a.device)
                .chars()
                .take(64)
                .collect(),
        ),
        stt: Some(crate::text::what(a).chars().take(64).collect()),
        lge: a.position.as_ref().map(|p| Lge {
            geo: Some(GeoPos {
                lat: p.lat,
                lon: p.lon,
            }),
            tim_ms: Some(p.time_ms),
            ..Lge::default()
        }),
        ..Mrq::default()
    };
    (m.to_xml(), reference)
}

impl Far for Forward {
    fn deliver<'a>(&'a self, d: &'a Delivery) -> BoxFuture<'a, Handled> {
        async move {
            let mut sip = self.state.lock().await;
            if !matches!(d.notice, Notice::Offer { .. }) {
                // SCAIP carries no update of an alarm the far side already has.
                return Handled::Done(Vec::new());
            }
            if matches!(sip.cid, Cid::PerDevice) && !is_valid_cid(&d.json.alarm.device) {
                return Handled::Refused(format!(
                    "device id {} cannot be a SCAIP <cid> (1-32 digits)",
                    d.json.alarm.device
                ));
            }
            let (xml, reference) = mrq(d, &sip.cid);
            let hold_ends = Instant::now() + HOLD_WINDOW;
            loop {
                match sip.forward(&xml, &reference).await {
                    Ok(Snu::Ok) => return Handled::Done(handed_over(&sip.centre)),
                    // Being processed: the same request again after a while (SCAIP §4.2).
                    Ok(Snu::Hold) if Instant::now() + HOLD_RESEND < hold_ends => {
                        metrics::counter!("vaka_receiver_holds_total", "receiver" => sip.centre.to_string())
                            .increment(1);
                        tokio::time::sleep(HOLD_RESEND).await;
                    }
                    Ok(Snu::Hold) => {
                        return Handled::Refused(format!(
                            "the receiver held the alarm (snu 4) for {} s without taking it",
                            HOLD_WINDOW.as_secs()
                        ))
                    }
                    Ok(other) => {
                        return Handled::Refused(format!(
                            "the receiver answered snu {}",
                            other.code()
                        ))
                    }
                    Err(e) => return Handled::Unreachable(e),
                }
            }
        }
        .boxed()
    }

    /// SIP OPTIONS: any final answer means the far side is there.
    fn probe(&self) -> BoxFuture<'_, Result<(), String>> {
        async move {
            let mut sip = self.state.lock().await;
            sip.socket().await?;
            let call_id = format!("{}@vaka", sip.next_id());
            let m = sip.request(Method::Options, &call_id, None)?;
            sip.transact(&m).await.map(|_| ())
        }
        .boxed()
    }
}

/// The TLS client configuration of SCAIP forwarding: the public roots, and `ca_file`'s
/// certificates when given (a private alarm centre's CA).
pub(crate) fn tls_client(
    ca_file: Option<&std::path::Path>,
) -> Result<std::sync::Arc<tokio_rustls::rustls::ClientConfig>, String> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let named =
            |e: &dyn std::fmt::Display| format!("receivers.scaip_ca_file {}: {e}", path.display());
        let mut added = 0;
        for c in CertificateDer::pem_file_iter(path).map_err(|e| named(&e))? {
            roots
                .add(c.map_err(|e| named(&e))?)
                .map_err(|e| named(&e))?;
            added += 1;
        }
        if added == 0 {
            return Err(named(&"holds no certificate"));
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS for SCAIP forwarding: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}
