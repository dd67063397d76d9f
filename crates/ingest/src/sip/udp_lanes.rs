//! SIP over UDP with the lanes starting at the socket (invariant 9). One thread only reads: it
//! takes each datagram off the kernel's queue, triages it by one cheap scan
//! (`vaka_scaip::triage`: heartbeats and info are telemetry, the rest goes first) and queues it
//! in its lane, so the kernel's queue does not overflow while parsing, digests and
//! transactions run elsewhere.
//!
//! A request without an `Authorization` header is a stranger's until challenged
//! (`vaka_scaip::triage::carries_credentials`, invariant 13): it waits in a lane of its own,
//! so a flood of them fills only that lane and authenticated devices' alarms are never refused
//! behind it; and it enters that lane only within its source's unauthenticated budget
//! (`sip.unauthenticated_rate`/`_burst`, in a table of the reader's own), so one source's flood
//! cannot fill it for another's first request.
//!
//! The first lane (alarms, resets) is handled by a task in the engine's runtime, and the
//! strangers' lane by the same task while the first is empty. The telemetry lane is handled on
//! a thread of lower priority (`crate::low_priority`), with every task its messages start
//! (digest, transaction, waiting for the router, the `<mrs>` and its retransmissions), so a
//! flood's work never queues ahead of an alarm's in the engine's runtime and, when the cores
//! are contested, the kernel runs the alarm first; and it takes telemetry only while nothing of
//! the first lane is deciding and few answers are ([`TELEMETRY_WHILE_DECIDING_BELOW`]).
//!
//! A full lane sheds at the reader: the datagram goes to a small refusal queue whose task (on
//! the same thread of lower priority) reads only its headers and answers `503 Service
//! Unavailable` (busy, RFC 3261 §21.5.4) as a stranger's response (its source's
//! unauthenticated budget, never larger than the request); a full refusal queue drops it,
//! counted. Nothing shed was acknowledged: the device resends or falls back.
//!
//! Memory held here is bounded by the configuration: at most `3 x sip.udp_queue +
//! REFUSALS` datagrams of at most `sip.max_message_bytes` each, plus the reader's one buffer
//! and its budget table (`sip.unauthenticated_sources` x 16 bytes).
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use vaka_scaip::triage::{carries_credentials, triage, Triage};

use super::dialogue;
use super::link::Link;
use super::shared::Shared;
use super::strangers::Strangers;
use crate::alarms_first::{LastAlarm, TELEMETRY_WHILE_ALARMS_FLOW};

/// Datagrams waiting to be refused; beyond it shed datagrams are dropped unanswered.
pub(crate) const REFUSALS: usize = 256;
/// The nice value of the thread that handles telemetry and answers what was shed.
const TELEMETRY_NICE: i32 = 10;

/// The largest UDP payload (IPv6 jumbograms aside).
const MAX_DATAGRAM: usize = 65_535;

struct Datagram {
    bytes: Vec<u8>,
    peer: SocketAddr,
}

enum Refusal {
    /// Its lane was full.
    Busy(Datagram),
    /// Over `sip.max_message_bytes` (its first bytes kept, and the size it had): 513.
    TooLarge(Datagram, usize),
}

/// Starts the reader, the lanes' handlers and the refuser for `sock`. An error (no thread, no
/// runtime, no second descriptor: resources exhausted) refuses the start rather than leaving
/// a front that never reads.
pub(crate) fn start(sh: &Arc<Shared>, sock: Arc<UdpSocket>) -> std::io::Result<()> {
    let local = sock.local_addr()?;
    // The reader gets a thread of its own with its own copy of the socket: as one task among
    // the engine's many (thousands of answers in flight under a flood) it was polled too
    // rarely to keep the kernel's queue from overflowing, and alarms were dropped there.
    let copy = std::net::UdpSocket::from(socket2::SockRef::from(sock.as_ref()).try_clone()?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let reader = {
        let _in = rt.enter();
        UdpSocket::from_std(copy)?
    };
    let link = Link::udp(sock, local, &sh.metrics);
    let depth = sh.cfg.udp_queue.max(1);
    let (first_tx, first_rx) = mpsc::channel(depth);
    let (strangers_tx, strangers_rx) = mpsc::channel(depth);
    let (telemetry_tx, telemetry_rx) = mpsc::channel(depth);
    let (refuse_tx, refuse_rx) = mpsc::channel(REFUSALS);
    let lanes = Lanes {
        first: first_tx,
        strangers: strangers_tx,
        telemetry: telemetry_tx,
        refuse: refuse_tx,
    };
    let sh2 = sh.clone();
    std::thread::Builder::new()
        .name("vaka-sip-udp".into())
        .spawn(move || rt.block_on(read(sh2, reader, lanes)))?;
    let first_seen = Arc::new(LastAlarm::new());
    sh.tracker.spawn(handle_first(
        sh.clone(),
        link.clone(),
        first_rx,
        strangers_rx,
        first_seen.clone(),
    ));
    // Telemetry and refusing a flood must not take the CPU from alarms: a thread at a lower
    // priority. Starved, the refusal queue fills and the rest is dropped unanswered (counted).
    let telemetry = sh.tracker.track_future(handle_telemetry(
        sh.clone(),
        link.clone(),
        telemetry_rx,
        first_seen,
    ));
    let refuser = sh.tracker.track_future(refuse(sh.clone(), link, refuse_rx));
    crate::low_priority::run("vaka-sip-telem", TELEMETRY_NICE, async move {
        tokio::join!(telemetry, refuser);
    })?;
    Ok(())
}

struct Lanes {
    first: mpsc::Sender<Datagram>,
    /// Requests without credentials, of any kind.
    strangers: mpsc::Sender<Datagram>,
    telemetry: mpsc::Sender<Datagram>,
    refuse: mpsc::Sender<Refusal>,
}

impl Lanes {
    fn shed(&self, sh: &Shared, r: Refusal) {
        if self.refuse.try_send(r).is_err() {
            sh.metrics.udp_dropped.increment(1);
        }
    }
}

/// Reads datagrams until intake stops, then closes its descriptor before its lanes: the
/// handler ends (and a shutdown returns) only once the port is free for a successor.
async fn read(sh: Arc<Shared>, sock: UdpSocket, lanes: Lanes) {
    read_until_stopped(&sh, &sock, &lanes).await;
    drop(sock);
    drop(lanes);
}

/// Each datagram is a whole message (RFC 3261 §18.3).
async fn read_until_stopped(sh: &Shared, sock: &UdpSocket, lanes: &Lanes) {
    // Room for the largest datagram, so an oversized one is seen whole (not truncated to the
    // limit) and its headers can be read to answer it 513.
    let mut buf = vec![0u8; MAX_DATAGRAM.max(sh.cfg.max_message_bytes + 1)];
    // A stranger's request enters its lane only within its source's budget, so one source's
    // flood cannot fill the lane where another's first request (a device without a nonce)
    // waits. The reader's own table of the same budget: no lock on the reader's path. The
    // dialogue's budget still pays for what is answered.
    let mut at_socket = Strangers::new(
        sh.cfg.unauthenticated_rate,
        sh.cfg.unauthenticated_burst,
        sh.cfg.unauthenticated_sources,
    );
    loop {
        let (n, peer) = tokio::select! {
            _ = sh.intake.cancelled() => return,
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                // ICMP port unreachable from an earlier send surfaces here on some systems.
                Err(e) => {
                    tracing::debug!(error = %e, "SIP/UDP receive error");
                    continue;
                }
            },
        };
        let bytes = &buf[..n];
        if n > sh.cfg.max_message_bytes {
            sh.metrics.bytes_received.increment(n as u64);
            // Its head is within the limit or it gets no answer anyway.
            let d = Datagram {
                bytes: bytes[..sh.cfg.max_message_bytes].to_vec(),
                peer,
            };
            lanes.shed(sh, Refusal::TooLarge(d, n));
            continue;
        }
        if bytes.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            continue; // keep-alive
        }
        let (lane, shed) = if !carries_credentials(bytes) {
            if !at_socket.allow(peer.ip(), sh.now_ms()) {
                sh.metrics.bytes_received.increment(n as u64);
                sh.metrics.stranger_bytes_in.increment(n as u64);
                sh.metrics.refused("rate");
                continue;
            }
            (&lanes.strangers, &sh.metrics.udp_shed_strangers)
        } else {
            match triage(bytes) {
                Triage::First => (&lanes.first, &sh.metrics.udp_shed_first),
                Triage::Telemetry => (&lanes.telemetry, &sh.metrics.udp_shed_telemetry),
            }
        };
        let d = Datagram {
            bytes: bytes.to_vec(),
            peer,
        };
        if let Err(mpsc::error::TrySendError::Full(d)) = lane.try_send(d) {
            shed.increment(1);
            lanes.shed(sh, Refusal::Busy(d));
        }
    }
}

/// SCAIP answers (any lane) still deciding (`<mrq>` parse, router, commit) above which the
/// telemetry lane is left to wait: every telemetry message taken costs a digest, a
/// transaction, a task and a commit, and a backlog of those delays an alarm's own answer
/// behind them. While fewer are deciding, telemetry is taken; beyond, its lane fills and the
/// reader answers the rest 503, unparsed. Answers waiting only for the device to confirm its
/// `<mrs>` do not count: they cost a timer, not work (and a slow device must not stop the
/// others' telemetry).
pub(crate) const TELEMETRY_WHILE_DECIDING_BELOW: usize = 256;

/// Handles the first lane (alarms, resets), and strangers' requests while it is empty, until
/// the reader has stopped and both lanes are empty. Only the first lane counts as alarms
/// flowing (the telemetry lane's room): a stranger is challenged before its alarm is one.
async fn handle_first(
    sh: Arc<Shared>,
    link: Link,
    mut first: mpsc::Receiver<Datagram>,
    mut strangers: mpsc::Receiver<Datagram>,
    seen: Arc<LastAlarm>,
) {
    let mut strangers_open = true;
    loop {
        let (d, stranger) = tokio::select! {
            biased;
            d = first.recv() => (d, false),
            d = strangers.recv(), if strangers_open => (d, true),
        };
        match d {
            Some(d) => {
                if !stranger {
                    seen.touch();
                }
                dialogue::handle(&sh, &link, d.peer, &d.bytes);
            }
            None if stranger => strangers_open = false,
            None => {
                // The reader has stopped: what strangers left is still answered.
                while let Some(d) = strangers.recv().await {
                    dialogue::handle(&sh, &link, d.peer, &d.bytes);
                }
                return;
            }
        }
    }
}

/// Handles the telemetry lane, on the thread of lower priority, while there is room (see
/// [`TELEMETRY_WHILE_DECIDING_BELOW`]): at most one datagram is held out of its lane waiting.
/// Once the lane is closed and empty, keeps the thread's runtime (the answers started here)
/// until the front's tasks are told to end.
async fn handle_telemetry(
    sh: Arc<Shared>,
    link: Link,
    mut telemetry: mpsc::Receiver<Datagram>,
    first: Arc<LastAlarm>,
) {
    let load = |n: &std::sync::atomic::AtomicUsize| n.load(Ordering::Acquire);
    let room = || {
        let window = if first.flowing_until().is_some() {
            TELEMETRY_WHILE_ALARMS_FLOW
        } else {
            TELEMETRY_WHILE_DECIDING_BELOW
        };
        load(&sh.first_deciding) == 0 && load(&sh.deciding) < window
    };
    while let Some(d) = telemetry.recv().await {
        // Answers end without waking us: look again soon.
        while !room() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        dialogue::handle(&sh, &link, d.peer, &d.bytes);
    }
    sh.token.cancelled().await;
}

/// Answers what was shed, reading only headers.
async fn refuse(sh: Arc<Shared>, link: Link, mut rx: mpsc::Receiver<Refusal>) {
    while let Some(r) = rx.recv().await {
        match r {
            Refusal::Busy(d) => {
                dialogue::busy(&sh, &link, d.peer, &d.bytes);
            }
            Refusal::TooLarge(d, size) => {
                dialogue::too_large(&sh, &link, d.peer, &d.bytes, size);
            }
        }
    }
}
