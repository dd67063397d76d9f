//! What every listener, dialogue and answer task shares: the front's settings and handles
//! (`Shared`), its protocol tables behind one lock (`State`), its metric handles (`Metrics`),
//! and the identity a request authenticated as (`Account`). Defined apart from the code that
//! starts the tasks so that every part imports it and none imports the server.
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use metrics::{Counter, Gauge};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vaka_core::DeviceKey;
use vaka_router::{Clock, LiveDirectory, Router};
use vaka_scaip::triage::Triage;
use vaka_scaip::{DigestAlgorithm, NonceCounter, NonceIssuer, ServerTransactions};

use super::registrar::Registrar;
use super::strangers::Strangers;
use super::SipConfig;

/// The device a request authenticated as: digest `username` (the device id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub username: String,
    pub device: DeviceKey,
    /// The device cannot do `qop=auth`: its credentials without qop are accepted once per nonce
    /// (directory `sip.single_use_nonce`); otherwise `sip.require_qop` decides.
    pub single_use_nonce: bool,
}

/// Mutable protocol state, behind one short-held lock (every hold is a table operation or one
/// digest computation, never I/O).
pub(crate) struct State {
    /// Authenticated requests only: a stranger's request is answered without an entry.
    pub transactions: ServerTransactions,
    /// The unauthenticated budget per source (invariant 13).
    pub strangers: Strangers,
    pub nonces: NonceCounter,
    pub registrar: Registrar,
    /// Our outstanding `<mrs>` MESSAGEs by Via branch: where their responses go.
    pub outgoing: HashMap<String, mpsc::Sender<u16>>,
    /// The `hbi` each device last confirmed receiving, so it is sent only when it changes.
    pub hbi_told: HashMap<DeviceKey, u16>,
    pub cseq: u32,
    last_purge_ms: u64,
    last_registrar_purge_ms: u64,
}

impl State {
    pub fn new(cfg: &SipConfig) -> State {
        State {
            transactions: ServerTransactions::new(cfg.max_transactions),
            strangers: Strangers::new(
                cfg.unauthenticated_rate,
                cfg.unauthenticated_burst,
                cfg.unauthenticated_sources,
            ),
            nonces: NonceCounter::new(cfg.max_nonces),
            registrar: Registrar::default(),
            outgoing: HashMap::new(),
            hbi_told: HashMap::new(),
            cseq: 0,
            last_purge_ms: 0,
            last_registrar_purge_ms: 0,
        }
    }

    /// Expires old entries now and then (cheap when nothing is due).
    pub fn maintain(&mut self, now_ms: u64, nonce_lifetime_ms: u64) {
        if now_ms.saturating_sub(self.last_purge_ms) >= 1_000 {
            self.last_purge_ms = now_ms;
            self.transactions.purge_expired(now_ms);
            self.nonces.purge_expired(now_ms, nonce_lifetime_ms);
        }
        if now_ms.saturating_sub(self.last_registrar_purge_ms) >= 60_000 {
            self.last_registrar_purge_ms = now_ms;
            self.registrar.purge(now_ms);
        }
    }
}

/// What every listener and answer task shares.
pub(crate) struct Shared {
    pub cfg: SipConfig,
    pub algorithm: DigestAlgorithm,
    pub issuer: NonceIssuer,
    pub router: Arc<Router>,
    /// Devices and their digest credentials, read per request (changes apply at once).
    pub directory: LiveDirectory,
    pub clock: Clock,
    /// Taken through [`Shared::state`].
    pub state: Mutex<State>,
    /// SCAIP requests being answered (invariant 6).
    pub pending: Arc<Semaphore>,
    /// Heartbeats and info being answered: at most half of `pending`. An answer holds its place
    /// until the device confirms its `<mrs>` (up to 32 s over UDP), so without this a flood of
    /// telemetry from slow devices took every place and alarms were told busy (invariant 9).
    pub telemetry_pending: Arc<Semaphore>,
    /// TCP + TLS connections.
    pub connections: Arc<Semaphore>,
    /// The share of `connections` open to peers that have not authenticated a request yet
    /// (half): a flood of strangers cannot take every slot from the devices (invariant 13).
    pub unauthenticated: Arc<Semaphore>,
    /// Cancelled first at shutdown: listeners stop reading.
    pub intake: CancellationToken,
    /// Cancelled last: every task ends.
    pub token: CancellationToken,
    pub tracker: TaskTracker,
    /// Answers whose `<mrs>` has not been sent yet.
    pub unsent: AtomicUsize,
    /// Answers still deciding (parsing the `<mrq>`, waiting for the router): the work in
    /// flight that the UDP telemetry lane waits for (`udp_lanes`).
    pub deciding: AtomicUsize,
    /// Of those, the ones that go first (alarms, resets: all but heartbeats and info): while
    /// any is deciding, the UDP telemetry lane is not taken at all (`udp_lanes`), so no
    /// heartbeat's digest, transaction or commit competes with an alarm for a core.
    pub first_deciding: AtomicUsize,
    pub metrics: Metrics,
}

impl Shared {
    /// A place among the answers underway for a request in `lane`, or `None`: busy.
    /// Telemetry also needs one of the telemetry's places, so alarms always find half of
    /// `max_pending` free of it.
    pub fn admit(&self, lane: Triage) -> Option<Admitted> {
        let telemetry = match lane {
            Triage::Telemetry => Some(self.telemetry_pending.clone().try_acquire_owned().ok()?),
            Triage::First => None,
        };
        let pending = self.pending.clone().try_acquire_owned().ok()?;
        Some(Admitted {
            _pending: pending,
            _telemetry: telemetry,
        })
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the tables inconsistent in a way that
        // matters more than refusing all traffic would; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms().max(0) as u64
    }
}

/// Metric handles, registered once. Names follow Vector's component spec with `stage="sip"`.
pub(crate) struct Metrics {
    /// SCAIP requests (`<mrq>` bodies) received in authenticated MESSAGEs.
    pub events_received: Counter,
    pub bytes_received: Counter,
    /// Events handed to the router.
    pub events_sent: Counter,
    /// Alarm-lane events (what is offered to people) taken in: the dashboard's alarms/s.
    pub alarms_received: Counter,
    pub bytes_sent: Counter,
    pub discarded_invalid: Counter,
    pub discarded_busy: Counter,
    pub discarded_forbidden: Counter,
    pub malformed: Counter,
    pub framing: Counter,
    pub too_large: Counter,
    pub auth_challenged: Counter,
    pub auth_failed: Counter,
    /// Nonce counts seen again (answered with a fresh challenge).
    pub auth_replayed: Counter,
    pub handshake: Counter,
    pub send_failed: Counter,
    pub mrs_timeout: Counter,
    pub mrs_refused: Counter,
    pub stray_response: Counter,
    pub transactions_full: Counter,
    pub retransmissions: Counter,
    /// Bytes of requests that did not authenticate, and of the responses sent to them (no
    /// amplification: out never exceeds in, per request).
    pub stranger_bytes_in: Counter,
    pub stranger_bytes_out: Counter,
    pub registrations: Gauge,
    pub connections_active: Gauge,
    pub connections_accepted: Counter,
    pub connections_refused: Counter,
    pub header_timeout: Counter,
    /// UDP datagrams shed at the socket because their lane was full (answered 503 when their
    /// source's budget allows), per lane; and those dropped because the refusal queue was full.
    pub udp_shed_first: Counter,
    pub udp_shed_strangers: Counter,
    pub udp_shed_telemetry: Counter,
    pub udp_dropped: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let s = "stage";
        let q = "sip";
        let discarded = |r: &'static str| metrics::counter!("vaka_events_discarded_total", s => q, "reason" => r);
        let error = |k: &'static str| metrics::counter!("vaka_errors_total", s => q, "kind" => k);
        Self {
            events_received: metrics::counter!("vaka_events_received_total", s => q),
            bytes_received: metrics::counter!("vaka_bytes_received_total", s => q),
            events_sent: metrics::counter!("vaka_events_sent_total", s => q),
            alarms_received: metrics::counter!("vaka_alarms_received_total", "protocol" => q),
            bytes_sent: metrics::counter!("vaka_bytes_sent_total", s => q),
            discarded_invalid: discarded("invalid"),
            discarded_busy: discarded("busy"),
            discarded_forbidden: discarded("forbidden"),
            malformed: error("malformed_sip"),
            framing: error("framing"),
            too_large: error("too_large"),
            auth_challenged: metrics::counter!("vaka_sip_auth_total", "result" => "challenged"),
            auth_failed: error("auth_failed"),
            auth_replayed: metrics::counter!("vaka_sip_auth_total", "result" => "replayed"),
            handshake: error("handshake"),
            send_failed: error("send_failed"),
            mrs_timeout: error("mrs_timeout"),
            mrs_refused: error("mrs_refused"),
            stray_response: error("stray_response"),
            transactions_full: error("transactions_full"),
            retransmissions: metrics::counter!("vaka_sip_retransmissions_total", s => q),
            stranger_bytes_in: metrics::counter!("vaka_sip_unauthenticated_bytes_total", "direction" => "in"),
            stranger_bytes_out: metrics::counter!("vaka_sip_unauthenticated_bytes_total", "direction" => "out"),
            registrations: metrics::gauge!("vaka_sip_registrations"),
            connections_active: metrics::gauge!("vaka_connections_active", s => q),
            connections_accepted: metrics::counter!("vaka_connections_total", s => q, "result" => "accepted"),
            connections_refused: metrics::counter!("vaka_connections_total", s => q, "result" => "refused"),
            header_timeout: error("header_timeout"),
            udp_shed_first: metrics::counter!("vaka_events_discarded_total", s => q, "reason" => "udp_lane_full", "lane" => "first"),
            udp_shed_strangers: metrics::counter!("vaka_events_discarded_total", s => q, "reason" => "udp_lane_full", "lane" => "strangers"),
            udp_shed_telemetry: metrics::counter!("vaka_events_discarded_total", s => q, "reason" => "udp_lane_full", "lane" => "telemetry"),
            udp_dropped: discarded("udp_refusals_full"),
        }
    }

    /// A request refused or left unanswered, by why: `rate` (its source's unauthenticated
    /// budget is spent), `size` (the response would be larger than the request), or the digest
    /// check that failed (`algorithm`, `uri_mismatch`, `qop_required`, `replay`, ...).
    pub fn refused(&self, reason: &'static str) {
        metrics::counter!("vaka_sip_refused_total", "reason" => reason).increment(1);
    }

    /// One `<mrs>` sent, by its `snu`.
    pub fn reply(&self, snu: u8) {
        metrics::counter!("vaka_replies_total", "stage" => "sip", "snu" => snu.to_string())
            .increment(1);
    }
}

/// Counts an answer until its `<mrs>` has been sent once (shutdown waits for these).
pub(crate) struct Unsent(Option<Arc<Shared>>);

impl Unsent {
    pub fn new(sh: &Arc<Shared>) -> Unsent {
        sh.unsent.fetch_add(1, Ordering::AcqRel);
        Unsent(Some(sh.clone()))
    }

    pub fn done(&mut self) {
        if let Some(sh) = self.0.take() {
            sh.unsent.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Counts an answer while it decides (and, if it goes first, among those that go first).
pub(crate) struct Deciding(Arc<Shared>, Triage);

impl Deciding {
    pub fn new(sh: &Arc<Shared>, lane: Triage) -> Deciding {
        sh.deciding.fetch_add(1, Ordering::AcqRel);
        if lane == Triage::First {
            sh.first_deciding.fetch_add(1, Ordering::AcqRel);
        }
        Deciding(sh.clone(), lane)
    }
}

impl Drop for Deciding {
    fn drop(&mut self) {
        self.0.deciding.fetch_sub(1, Ordering::AcqRel);
        if self.1 == Triage::First {
            self.0.first_deciding.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// An answer's place among those underway, given back when dropped.
pub(crate) struct Admitted {
    _pending: OwnedSemaphorePermit,
    _telemetry: Option<OwnedSemaphorePermit>,
}

impl Drop for Unsent {
    fn drop(&mut self) {
        self.done();
    }
}
