//! One simulated device: its events underway and the SIP transactions that carry them. Per event
//! a MESSAGE with the `<mrq>`; a 401 is answered with credentials (the challenge is kept for
//! later requests), the 200 OK is followed by the server's `<mrs>` (a MESSAGE of its own,
//! answered 200 every time it arrives) whose `snu` settles the event, or puts it on HOLD to be
//! sent again. Resending and giving up are [`Retransmission`]'s; sockets are the [`Wire`]'s.
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use vaka_scaip::auth::authorize;
use vaka_scaip::scaip::Mrs;
use vaka_scaip::sip::{Method, NewRequest, SipMessage};
use vaka_scaip::Challenge;

use super::inbox::Input;
use super::mapping::{call_id, parse_call_id, response_error_kind, to_mrq, verdict, Verdict};
use super::retransmit::{Due, Retransmission};
use super::wire::{answer, Wire};
use crate::quic::Job;
use crate::record::Recorder;

/// Unanswered 401s for one request before it counts as `unauthorized`.
const MAX_AUTH_TRIES: u8 = 3;

/// A HOLD `<mrs>`'s Via branch, kept small: its retransmissions carry the same one.
fn branch_hash(branch: Option<&str>) -> u64 {
    let mut h = DefaultHasher::new();
    branch.hash(&mut h);
    h.finish()
}

/// Settings every device shares.
pub struct Common {
    pub server: SocketAddr,
    pub request_uri: String,
    /// Wait after `<mrs>` snu 4 (HOLD) before resending.
    pub hold_retry: Duration,
    /// The run's give-up for a final response (before Timer F) and the wait for the `<mrs>`.
    pub timeout: Duration,
    pub rec: Arc<Recorder>,
}

/// Our MESSAGE is out and has had no final response yet.
struct Calling {
    /// The request as sent, for retransmissions (UDP only; empty over TCP).
    bytes: Vec<u8>,
    timers: Retransmission,
}

enum Phase {
    Calling(Calling),
    /// 2xx in; the `<mrs>` is due by then.
    Answered {
        until: Instant,
    },
    /// snu 4: resend then.
    Held {
        at: Instant,
    },
}

impl Phase {
    fn deadline(&self) -> Instant {
        match self {
            Phase::Calling(c) => c.timers.deadline(),
            Phase::Answered { until } => *until,
            Phase::Held { at } => *at,
        }
    }
}

/// One event underway.
struct Pending {
    job: Box<Job>,
    call_id: String,
    body: String,
    /// The branch of the current transaction: responses to older ones are ignored.
    branch: String,
    phase: Phase,
    auth_tries: u8,
    /// The current transaction carries credentials.
    with_credentials: bool,
    /// HOLD `<mrs>` already acted on (by their Via branch): their retransmissions are not a
    /// second HOLD.
    holds_seen: Vec<u64>,
}

/// One simulated device, served by its own task ([`Device::run`]).
pub struct Device {
    index: usize,
    name: String,
    password: String,
    dty: String,
    common: Arc<Common>,
    wire: Wire,
    challenge: Option<Challenge>,
    nc: u32,
    cseq: u32,
    /// A request with credentials was accepted: the password is right, so a later 403 is
    /// something else (typically a retransmission whose original was lost, arriving after a
    /// later request: the server takes its nonce count for a replay).
    authenticated: bool,
    pending: Vec<Pending>,
}

impl Device {
    /// Device `index` of the fleet (its Call-IDs name it), reaching the server over `wire`.
    pub fn new(
        index: usize,
        device: &crate::fleet::Device,
        common: Arc<Common>,
        wire: Wire,
    ) -> Self {
        Device {
            index,
            name: device.id.clone(),
            password: device.password.clone().unwrap_or_default(),
            dty: device.device_type.clone(),
            common,
            wire,
            challenge: None,
            nc: 0,
            cseq: 0,
            authenticated: false,
            pending: Vec::new(),
        }
    }

    /// Serves the device's inbox until the fleet ends it (then waits for what is pending) or
    /// `stop` says the run is over; what is still pending then is `unanswered`.
    pub async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Input>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut ending = false;
        let mut open = true;
        loop {
            if ending && self.pending.is_empty() {
                break;
            }
            let next = self.pending.iter().map(|p| p.phase.deadline()).min();
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                // The handlers are boxed: their futures are far larger than the idle task, and
                // a fleet is mostly idle devices.
                input = rx.recv(), if open => match input {
                    Some(Input::Job(job)) => Box::pin(self.begin(job)).await,
                    Some(Input::Sip(b)) => {
                        let (msg, from) = *b;
                        if msg.is_request() {
                            Box::pin(self.on_request(msg, from)).await;
                        } else {
                            Box::pin(self.on_response(msg)).await;
                        }
                    }
                    Some(Input::Closed(generation)) => self.on_closed(generation),
                    Some(Input::End) => ending = true,
                    None => {
                        open = false;
                        ending = true;
                    }
                },
                _ = tokio::time::sleep_until(next.unwrap_or(far)), if next.is_some() => {
                    Box::pin(self.on_timer()).await;
                }
                _ = stop.changed() => break,
            }
        }
        let rec = &self.common.rec;
        for p in self.pending.drain(..) {
            rec.error(&self.name, &p.job.planned.key, "unanswered");
        }
        while let Ok(input) = rx.try_recv() {
            if let Input::Job(job) = input {
                rec.error(&self.name, &job.planned.key, "unanswered");
            }
        }
    }

    fn fail(&mut self, i: usize, kind: &str) {
        let p = self.pending.swap_remove(i);
        self.common.rec.error(&self.name, &p.job.planned.key, kind);
    }

    async fn begin(&mut self, job: Box<Job>) {
        let body = match to_mrq(&job.planned, &self.name, &self.dty) {
            Ok(m) => m.to_xml(),
            Err(e) => {
                tracing::warn!(device = %self.name, "cannot encode as SCAIP: {e}");
                self.common
                    .rec
                    .error(&self.name, &job.planned.key, "unencodable");
                return;
            }
        };
        let now = Instant::now();
        self.pending.push(Pending {
            call_id: call_id(&job.planned.key, self.index),
            job,
            body,
            branch: String::new(),
            phase: Phase::Held { at: now },
            auth_tries: 0,
            with_credentials: false,
            holds_seen: Vec::new(),
        });
        let i = self.pending.len() - 1;
        self.transmit(i).await;
    }

    /// Sends pending `i` as a new transaction (new branch and CSeq; credentials if a challenge
    /// is known).
    async fn transmit(&mut self, i: usize) {
        let local = match self.wire.ready(self.common.server, &self.common.rec).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(device = %self.name, "SIP/TCP connect: {e}");
                return self.fail(i, "connect");
            }
        };
        self.cseq = self.cseq % (1 << 30) + 1;
        let branch = format!("z9hG4bK{:016x}", rand::random::<u64>());
        let built = self.request(&local, i, &branch);
        let bytes = match built {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(device = %self.name, "cannot build the MESSAGE: {e}");
                return self.fail(i, "unencodable");
            }
        };
        let now = Instant::now();
        let reliable = self.wire.reliable();
        let p = &mut self.pending[i];
        p.branch = branch;
        p.with_credentials = self.challenge.is_some();
        p.phase = Phase::Calling(Calling {
            bytes: if reliable { Vec::new() } else { bytes.clone() },
            timers: Retransmission::new(now, reliable, self.common.timeout),
        });
        if !self.wire.send(&bytes, self.common.server).await {
            self.connection_lost();
        }
    }

    fn request(&mut self, local: &str, i: usize, branch: &str) -> Result<Vec<u8>, String> {
        let p = &self.pending[i];
        let uri = &self.common.request_uri;
        let mut m = NewRequest {
            request_uri: uri,
            transport: self.wire.transport(),
            sent_by: local,
            branch,
            from_uri: &format!("sip:{}@{local}", self.name),
            from_tag: &format!("{:08x}", rand::random::<u32>()),
            to_uri: uri,
            call_id: &p.call_id,
            cseq: self.cseq,
            ..NewRequest::default()
        }
        .scaip_message(&p.body)
        .map_err(|e| e.to_string())?;
        let contact = self.wire.contact(&self.name, local);
        m.push_header("Contact", &contact)
            .map_err(|e| e.to_string())?;
        m.push_header("User-Agent", "vaka-load")
            .map_err(|e| e.to_string())?;
        if let Some(c) = &self.challenge {
            self.nc += 1;
            let cnonce = format!("{:08x}", rand::random::<u32>());
            let a = authorize(
                c,
                "MESSAGE",
                uri,
                &self.name,
                &self.password,
                &cnonce,
                self.nc,
            );
            m.push_header("Authorization", &a.to_header_value())
                .map_err(|e| e.to_string())?;
        }
        Ok(m.to_bytes())
    }

    fn find_ref(&self, reference: &str) -> Option<usize> {
        self.pending
            .iter()
            .position(|p| p.job.planned.key == reference)
    }

    /// A response to one of our MESSAGEs.
    async fn on_response(&mut self, m: SipMessage) {
        let Some(i) = parse_call_id(m.call_id()).and_then(|(r, _)| self.find_ref(r)) else {
            return; // an event already settled
        };
        let p = &mut self.pending[i];
        if m.top_via().branch() != Some(p.branch.as_str()) || m.cseq().method != Method::Message {
            return; // a response to an earlier transaction of this event
        }
        let Phase::Calling(calling) = &mut p.phase else {
            return; // a retransmitted final response
        };
        let now = Instant::now();
        match m.status().unwrap_or(0) {
            100..=199 => calling.timers.on_provisional(now),
            200..=299 => {
                self.authenticated |= p.with_credentials;
                p.phase = Phase::Answered {
                    until: now + self.common.timeout,
                }
            }
            401 => {
                p.auth_tries += 1;
                let challenge = m.www_authenticate().and_then(|h| Challenge::parse(h).ok());
                let Some(c) = challenge else {
                    return self.fail(i, "bad_challenge");
                };
                if p.auth_tries > MAX_AUTH_TRIES {
                    return self.fail(i, "unauthorized");
                }
                // A new nonce (first challenge, stale, or a second request's own challenge):
                // its count starts again.
                if self.challenge.as_ref().map(|k| &k.nonce) != Some(&c.nonce) {
                    self.challenge = Some(c);
                    self.nc = 0;
                }
                self.transmit(i).await;
            }
            403 if self.authenticated => self.fail(i, "forbidden_after_auth"),
            code => self.fail(i, &response_error_kind(code)),
        }
    }

    /// A request of the server: the `<mrs>` (answered 200 every time it arrives).
    async fn on_request(&mut self, m: SipMessage, from: SocketAddr) {
        if !self.wire.send(&answer(&m), from).await {
            self.connection_lost();
        }
        if *m.method() != Method::Message {
            return;
        }
        let mrs = m.body_str().and_then(|b| Mrs::parse(b).ok());
        let i = match &mrs {
            Some(mrs) => self.find_ref(&mrs.reference),
            None => parse_call_id(m.call_id()).and_then(|(r, _)| self.find_ref(r)),
        };
        let Some(i) = i else {
            return; // a retransmission for an event already settled
        };
        let Some(mrs) = mrs else {
            return self.fail(i, "bad_mrs");
        };
        match verdict(mrs.snu) {
            Verdict::Acked { not_treated } => {
                let p = self.pending.swap_remove(i);
                let job = &p.job;
                self.common
                    .rec
                    .acked(&self.name, &job.planned.key, job.at, job.path, not_treated);
            }
            Verdict::Hold => {
                let h = branch_hash(m.top_via().branch());
                let p = &mut self.pending[i];
                if p.holds_seen.contains(&h) || matches!(p.phase, Phase::Held { .. }) {
                    return; // this HOLD again
                }
                p.holds_seen.push(h);
                p.phase = Phase::Held {
                    at: Instant::now() + self.common.hold_retry,
                };
            }
            Verdict::Failed(kind) => self.fail(i, kind),
        }
    }

    /// Retransmissions, timeouts and HOLD resends that are due.
    async fn on_timer(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].phase.deadline() > now {
                i += 1;
                continue;
            }
            match &mut self.pending[i].phase {
                Phase::Calling(c) => match c.timers.poll(now) {
                    Due::GiveUp => {
                        self.fail(i, "timeout");
                        continue;
                    }
                    Due::Resend => {
                        let bytes = std::mem::take(&mut c.bytes);
                        let server = self.common.server;
                        self.wire.send(&bytes, server).await;
                        if let Phase::Calling(c) = &mut self.pending[i].phase {
                            c.bytes = bytes;
                        }
                    }
                    // Not reached at the deadline checked above; nothing to do if it were.
                    Due::Wait { .. } => {}
                },
                Phase::Answered { .. } => {
                    self.fail(i, "no_mrs");
                    continue;
                }
                Phase::Held { .. } => {
                    let before = self.pending.len();
                    self.transmit(i).await;
                    if self.pending.len() < before {
                        continue; // it failed and was removed
                    }
                }
            }
            i += 1;
        }
    }

    /// The TCP connection broke: events waiting on it are lost with it (the server answers on
    /// the connection the request came in on); held ones are resent on a new connection.
    fn connection_lost(&mut self) {
        self.wire.disconnect();
        let mut i = 0;
        while i < self.pending.len() {
            if matches!(self.pending[i].phase, Phase::Held { .. }) {
                i += 1;
            } else {
                self.fail(i, "disconnected");
            }
        }
    }

    fn on_closed(&mut self, generation: u32) {
        if self.wire.is_current(generation) {
            self.connection_lost();
        }
    }
}
