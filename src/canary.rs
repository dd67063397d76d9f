//! End-to-end canary alarms. For every tenant whose directory record names a canary device, the
//! engine plays that device: on schedule it sends a test alarm through its own SCAIP front over
//! UDP (digest authentication with the device's HA1, the `<mrq>`, the `<mrs>` answered), so the
//! alarm takes the whole path (front -> store -> router -> centre stream); it then waits for a
//! centre's machine receipt within the tenant's receipt deadline and cancels the alarm (a SCAIP
//! reset, by the same path). A canary that does not come back is counted, logged at error, turns
//! the tenant red on the dashboard and fires the `VakaCanaryFailed` alert (config/alerts.yml).
//!
//! Metrics: `vaka_canary_ok{tenant}` (1 last run came back, 0 not), `vaka_canary_seconds{tenant}`
//! (message sent to receipt, last run), `vaka_canary_runs_total{tenant,result}`.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use vaka_admin::control::Control;
use vaka_core::directory::CanaryRecord;
use vaka_core::{DeviceKey, UnixMillis};
use vaka_scaip::auth::{expected_response, Credential};
use vaka_scaip::{Authorization, Challenge, DigestAlgorithm, Mrs, NewRequest, SipMessage, Snu};

/// How long one SIP answer may take on loopback before the run counts as failed.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// Beyond the tenant's receipt deadline, the receipt may take this much longer (the deadline
/// runs from the offer, which follows the durable write).
const RECEIPT_SLACK_MS: i64 = 2_000;

/// Starts the canaries of every tenant that has one, through the SIP front at `sip_udp`.
pub fn spawn(control: Arc<Control>, sip_udp: Option<SocketAddr>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut next: HashMap<String, Instant> = HashMap::new();
        let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            running.retain(|_, h| !h.is_finished());
            let dir = control.live().load();
            for tenant in dir.tenants.values() {
                let Some(canary) = tenant.canary.clone() else {
                    continue;
                };
                let id = tenant.id.0.clone();
                let every = Duration::from_secs(u64::from(canary.every_secs));
                // The first run waits one period: at start-up the centres are still
                // reconnecting, and a canary then would cry wolf.
                let at = *next
                    .entry(id.clone())
                    .or_insert_with(|| Instant::now() + every);
                if Instant::now() < at || running.contains_key(&id) {
                    continue;
                }
                next.insert(id.clone(), Instant::now() + every);
                let control = control.clone();
                let tenant_id = id.clone();
                running.insert(
                    id,
                    tokio::spawn(async move {
                        run_and_report(&control, sip_udp, &tenant_id, &canary).await
                    }),
                );
            }
        }
    })
}

async fn run_and_report(
    control: &Control,
    sip_udp: Option<SocketAddr>,
    tenant: &str,
    canary: &CanaryRecord,
) {
    let labels = [("tenant", tenant.to_string())];
    match run(control, sip_udp, tenant, canary).await {
        Ok(took) => {
            metrics::gauge!("vaka_canary_ok", &labels).set(1.0);
            metrics::gauge!("vaka_canary_seconds", &labels).set(took.as_secs_f64());
            metrics::counter!("vaka_canary_runs_total", "tenant" => tenant.to_string(), "result" => "ok")
                .increment(1);
            tracing::debug!(tenant, ms = took.as_millis() as u64, "canary came back");
        }
        Err(why) => {
            metrics::gauge!("vaka_canary_ok", &labels).set(0.0);
            metrics::counter!("vaka_canary_runs_total", "tenant" => tenant.to_string(), "result" => "failed")
                .increment(1);
            tracing::error!(tenant, device = %canary.device, %why, "canary failed: the alarm path of this tenant is broken");
        }
    }
}

/// One canary alarm: sent, stored, offered, receipted by a centre, then cancelled. `Ok` with the
/// time from sending to the receipt.
async fn run(
    control: &Control,
    sip_udp: Option<SocketAddr>,
    tenant: &str,
    canary: &CanaryRecord,
) -> Result<Duration, String> {
    let server = sip_udp.ok_or("SIP over UDP is off: the canary has no front to go through")?;
    // The front listens on every address or one: the canary comes from loopback either way.
    let server = if server.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], server.port()))
    } else {
        server
    };
    let key = DeviceKey::new(tenant, &canary.device);
    let (credential, device_type, receipt_ms) = {
        let dir = control.live().load();
        let d = dir
            .device(&key)
            .ok_or_else(|| format!("canary device {key} is not in the directory"))?;
        let sip = d
            .sip
            .clone()
            .ok_or_else(|| format!("canary device {key} has no SIP credentials"))?;
        (sip, d.device_type.clone(), dir.deadlines(&key).receipt_ms)
    };
    let mut device = SipDevice::new(server, &canary.device, credential).await?;
    let started = Instant::now();
    // A SCAIP ref is 1-16 letters or digits: "c" and the time in ms (14).
    let reference = format!("c{}", control.now_ms());
    let alarm = mrq(
        &reference,
        &canary.device,
        &device_type,
        "<mty>ME</mty><stc>0010</stc><pri>1</pri>",
    );
    match device.exchange(&alarm).await? {
        Snu::Ok => {}
        other => return Err(format!("the front answered the canary alarm {other:?}")),
    }
    let until = control.now_ms() + receipt_ms + RECEIPT_SLACK_MS;
    let receipted = wait_for_receipt(control, &key, &reference, until).await;
    // Cancel it whatever happened, so the next canary opens an alarm of its own.
    let reset = mrq(&reference, &canary.device, &device_type, "<mty>RE</mty>");
    let cancelled = device.exchange(&reset).await;
    let took = started.elapsed();
    receipted?;
    cancelled.map_err(|e| format!("the canary's reset failed: {e}"))?;
    Ok(took)
}

/// Waits until the canary alarm (by its reference) has a centre's receipt, or `until`.
async fn wait_for_receipt(
    control: &Control,
    key: &DeviceKey,
    reference: &str,
    until: UnixMillis,
) -> Result<(), String> {
    loop {
        let open = {
            let store = control.store().clone();
            let key = key.clone();
            tokio::task::spawn_blocking(move || store.open_alarms_of(&key))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("the store cannot be read: {e}"))?
        };
        match open.iter().find(|a| a.reference == reference) {
            Some(a) if a.stages.receipted_ms.is_some() => return Ok(()),
            Some(a) if control.now_ms() >= until => {
                return Err(format!(
                    "no centre receipted canary alarm {} in time (it is {})",
                    a.id,
                    a.state.name()
                ))
            }
            None if control.now_ms() >= until => {
                return Err("the canary alarm is not among the open alarms".into())
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn mrq(reference: &str, device: &str, device_type: &str, rest: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><mrq><ref>{reference}</ref><cid>{device}</cid>\
         <dty>{device_type}</dty>{rest}</mrq>"
    )
}

/// The canary's side of SCAIP over UDP: MESSAGE, challenge, credentials from the HA1, `<mrs>`.
struct SipDevice {
    sock: UdpSocket,
    server: SocketAddr,
    user: String,
    credential: vaka_core::directory::SipCredential,
    challenge: Option<Challenge>,
    nc: u32,
    cseq: u32,
}

impl SipDevice {
    async fn new(
        server: SocketAddr,
        user: &str,
        credential: vaka_core::directory::SipCredential,
    ) -> Result<SipDevice, String> {
        let sock = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("canary socket: {e}"))?;
        Ok(SipDevice {
            sock,
            server,
            user: user.to_owned(),
            credential,
            challenge: None,
            nc: 0,
            cseq: 0,
        })
    }

    /// Sends `xml` (authenticating first if asked), answers the `<mrs>` and returns its snu.
    async fn exchange(&mut self, xml: &str) -> Result<Snu, String> {
        let call_id = format!("canary-{}-{}", self.user, rand_suffix());
        for _ in 0..2 {
            let m = self.message(&call_id, xml)?;
            self.send(&m).await?;
            let answer = self.recv().await?;
            match answer.status() {
                Some(401) => {
                    let header = answer.www_authenticate().ok_or("401 without a challenge")?;
                    self.challenge =
                        Some(Challenge::parse(header).map_err(|e| format!("bad challenge: {e}"))?);
                }
                Some(200) => return self.mrs().await,
                other => return Err(format!("the front answered {other:?}")),
            }
        }
        Err("the front refused the canary's credentials".into())
    }

    fn message(&mut self, call_id: &str, xml: &str) -> Result<SipMessage, String> {
        self.cseq += 1;
        let local = self.sock.local_addr().map_err(|e| e.to_string())?;
        let uri = format!("sip:alarm@{}", self.server);
        let mut m = NewRequest {
            request_uri: &uri,
            transport: "UDP",
            sent_by: &local.to_string(),
            branch: &format!("canary{}x{}", self.cseq, rand_suffix()),
            from_uri: &format!("sip:{}@{}", self.user, local.ip()),
            from_tag: "canary",
            to_uri: &uri,
            call_id,
            cseq: self.cseq,
            ..NewRequest::default()
        }
        .scaip_message(xml)
        .map_err(|e| e.to_string())?;
        m.push_header("Contact", &format!("<sip:{}@{local}>", self.user))
            .map_err(|e| e.to_string())?;
        if let Some(c) = &self.challenge {
            self.nc += 1;
            let header = self.authorization(c, &uri).to_header_value();
            m.push_header("Authorization", &header)
                .map_err(|e| e.to_string())?;
        }
        Ok(m)
    }

    /// Credentials for `challenge` from the device's HA1 (the engine never holds the password).
    fn authorization(&self, challenge: &Challenge, uri: &str) -> Authorization {
        let ha1 = match challenge.algorithm {
            DigestAlgorithm::Md5 => &self.credential.ha1_md5,
            _ => &self.credential.ha1_sha256,
        };
        let mut auth = Authorization {
            username: self.user.clone(),
            realm: challenge.realm.clone(),
            nonce: challenge.nonce.clone(),
            uri: uri.to_owned(),
            response: String::new(),
            algorithm: challenge.algorithm,
            cnonce: challenge.qop_auth.then(rand_suffix),
            qop: challenge.qop_auth.then(|| "auth".to_owned()),
            nc: challenge.qop_auth.then_some(self.nc),
            opaque: challenge.opaque.clone(),
        };
        auth.response =
            expected_response(&auth, "MESSAGE", Credential::Ha1(ha1)).unwrap_or_default();
        auth
    }

    async fn send(&self, m: &SipMessage) -> Result<(), String> {
        self.sock
            .send_to(&m.to_bytes(), self.server)
            .await
            .map(|_| ())
            .map_err(|e| format!("send to the SIP front: {e}"))
    }

    async fn recv(&self) -> Result<SipMessage, String> {
        let mut buf = vec![0u8; 65_536];
        let (n, _) = tokio::time::timeout(ANSWER_WITHIN, self.sock.recv_from(&mut buf))
            .await
            .map_err(|_| format!("no answer from the SIP front within {ANSWER_WITHIN:?}"))?
            .map_err(|e| e.to_string())?;
        SipMessage::parse(&buf[..n]).map_err(|e| format!("unreadable answer: {e}"))
    }

    /// The `<mrs>` MESSAGE that follows the 200: answered 200, its snu returned.
    async fn mrs(&self) -> Result<Snu, String> {
        loop {
            let m = self.recv().await?;
            if !m.is_request() {
                continue; // a retransmitted final answer
            }
            let ok = SipMessage::response(&m, 200, "OK", "canary");
            self.send(&ok).await?;
            let body = m.body_str().ok_or("an <mrs> without a body")?;
            let mrs = Mrs::parse(body).map_err(|e| format!("unreadable <mrs>: {e}"))?;
            return Ok(mrs.snu);
        }
    }
}

fn rand_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{nanos:08x}")
}
