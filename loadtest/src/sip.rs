//! The SCAIP fleet: devices that send `<mrq>` in SIP MESSAGE over UDP or TCP, as real social-alarm
//! devices do, written with the `vaka-scaip` codec.
//!
//! Per event a device sends a MESSAGE (`application/scaip+xml`, Call-ID `<ref>-<device>@vaka-load`).
//! The first one of a device carries no credentials and gets 401 with a digest challenge, which the
//! device keeps (nonce count increasing) for every later request; 401 `stale=true` makes it take the
//! new nonce and resend, 403 counts as `forbidden` (`forbidden_after_auth` once the device's
//! credentials were accepted: then it is not the password). After the 200 OK the server's `<mrs>` comes as a
//! MESSAGE of its own (same Call-ID), answered 200 every time it arrives; its `snu` decides: 0 acked,
//! 5 acked but `not_treated`, 4 HOLD (resend the same request, same ref, new branch, after
//! `hold_retry`), 6 `busy`, the others their error kind. Latency counts from the event's scheduled
//! time to the `<mrs>`.
//!
//! Over UDP the devices share a few sockets: a reader per socket hands every message to the device
//! the Call-ID names, and a device retransmits its MESSAGE on RFC 3261 timers (T1 doubling to T2)
//! until a final response, counting a `timeout` after `SipOptions::timeout` (Timer F). Over TCP each device has its own
//! connection (framing by Content-Length, a reader task per connection) and reconnects when it
//! breaks. Like the QUIC fleet, the dispatcher queues events to device tasks and never waits.
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use vaka_scaip::auth::authorize;
use vaka_scaip::scaip::{is_valid_reference, GeoPos, Lge, Mrq, Mrs, Mty, Snu};
use vaka_scaip::sip::{find_message, Frame, Method, NewRequest, SipMessage};
use vaka_scaip::Challenge;

use crate::fleet::Fleet;
use crate::queues::{DeviceQueues, GiveUp, Queued};
use crate::quic::Job;
use crate::record::Recorder;
use crate::scenario::{Kind, Planned};

/// RFC 3261 T1 (first retransmission) and T2 (longest interval) for non-INVITE requests.
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
/// Largest SIP message read from a connection or socket.
const MAX_MESSAGE: usize = 65_536;
/// Unanswered 401s for one request before it counts as `unauthorized`.
const MAX_AUTH_TRIES: u8 = 3;
/// SCAIP info code for telemetry (090-099 are vendor codes).
pub const TELEMETRY_ICO: &str = "090";
/// SCAIP status codes for technical events (SS 91100 Annex C).
pub const STC_BATTERY_LOW: &str = "0016";
pub const STC_RESTORAL: &str = "0094";

#[derive(Clone, Debug)]
pub struct SipOptions {
    pub server: SocketAddr,
    /// TCP (one connection per device) instead of UDP (shared sockets).
    pub tcp: bool,
    /// UDP sockets the devices share.
    pub sockets: usize,
    /// TCP connections being set up at once.
    pub connect_parallel: usize,
    /// Wait after `<mrs>` snu 4 (HOLD) before resending the same request.
    pub hold_retry: Duration,
    /// Timer F: no final response to a MESSAGE within this is a `timeout`; no `<mrs>` this long
    /// after the 200 OK is `no_mrs`.
    pub timeout: Duration,
    /// The Request-URI's user part (the server's `sip.accept_users`).
    pub request_user: String,
}

/// Checks the first `n` devices of `fleet` can speak SCAIP: a password (digest), an id that is a
/// SCAIP `cid` (digits) and a device type that is a `dty` (1-4 digits).
pub fn check_devices(fleet: &Fleet, n: usize) -> Result<(), String> {
    let devices = &fleet.devices[..n.min(fleet.devices.len())];
    let fix = "write a fleet with `vaka-load fleet-config` (digit ids, type, password)";
    let no_password = devices.iter().filter(|d| d.password.is_none()).count();
    if let Some(d) = devices.iter().find(|d| d.password.is_none()) {
        return Err(format!(
            "SIP needs a digest password for every device: {no_password} of the {n} devices of \
             tenant {:?} have none (e.g. {:?}); give them `password` or {fix}",
            fleet.tenant, d.id
        ));
    }
    if let Some(d) = devices
        .iter()
        .find(|d| !(1..=32).contains(&d.id.len()) || !d.id.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "SIP: device id {:?} cannot be a SCAIP cid (1-32 digits); {fix}",
            d.id
        ));
    }
    if let Some(d) = devices.iter().find(|d| !valid_dty(&d.device_type)) {
        return Err(format!(
            "SIP: device {:?} has type {:?}, not a SCAIP device type (1-4 digits, e.g. \"0003\")",
            d.id, d.device_type
        ));
    }
    Ok(())
}

fn valid_dty(s: &str) -> bool {
    (1..=4).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// A status code of 3 or 4 digits as SCAIP writes it (4 digits).
fn stc(code: &str) -> Option<String> {
    ((3..=4).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{code:0>4}"))
}

/// The `stc` of a technical event's code: SCAIP has no names, only numbers.
pub fn technical_stc(code: &str, restoral: bool) -> Option<String> {
    if restoral {
        return Some(STC_RESTORAL.into());
    }
    match code {
        "BATLOW" => Some(STC_BATTERY_LOW.into()),
        other => stc(other),
    }
}

/// Degrees rounded to 1e-6 (about 0.1 m), so that `geo` stays short.
fn micro_degrees(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// The `<mrq>` a SCAIP device `cid` of type `dty` sends for a planned event.
pub fn to_mrq(p: &Planned, cid: &str, dty: &str) -> Result<Mrq, String> {
    if !is_valid_reference(&p.key) {
        return Err(format!("key {:?} is not a SCAIP ref", p.key));
    }
    let mut m = Mrq {
        reference: p.key.clone(),
        cid: cid.into(),
        dty: format!("{dty:0>4}"),
        ..Mrq::default()
    };
    match &p.kind {
        Kind::Alarm { code, priority } => {
            m.mty = Mty::Message;
            m.stc = Some(stc(code).ok_or_else(|| format!("alarm code {code:?} is no stc"))?);
            m.pri = Some(
                u8::try_from(*priority)
                    .ok()
                    .filter(|p| *p <= 9)
                    .ok_or_else(|| format!("priority {priority} is not 0-9"))?,
            );
        }
        Kind::Technical { code, restoral } => {
            m.mty = Mty::Message;
            m.stc = Some(
                technical_stc(code, *restoral)
                    .ok_or_else(|| format!("technical code {code:?} has no SCAIP stc"))?,
            );
        }
        Kind::Heartbeat => m.mty = Mty::Heartbeat,
        Kind::Position {
            time_ms, lat, lon, ..
        } => {
            m.mty = Mty::Info;
            m.lge = Some(Lge {
                geo: Some(GeoPos {
                    lat: micro_degrees(*lat),
                    lon: micro_degrees(*lon),
                }),
                tim_ms: Some(*time_ms),
                gga: None,
                rejected: Vec::new(),
            });
        }
        Kind::Telemetry { name, value } => {
            m.mty = Mty::Info;
            m.ico = Some(TELEMETRY_ICO.into());
            m.ite = Some(format!("{name}={value:.2}"));
        }
    }
    Ok(m)
}

/// The Call-ID of an event: its ref and the device's index, so that a reader shared by many
/// devices knows whose a message is.
pub fn call_id(reference: &str, device: usize) -> String {
    format!("{reference}-{device}@vaka-load")
}

/// The (ref, device index) a Call-ID of [`call_id`] names.
pub fn parse_call_id(id: &str) -> Option<(&str, usize)> {
    let (local, host) = id.split_once('@')?;
    if host != "vaka-load" {
        return None;
    }
    let (reference, device) = local.rsplit_once('-')?;
    let device = device.parse().ok().filter(|_| !device.starts_with('+'))?;
    is_valid_reference(reference).then_some((reference, device))
}

/// What an `<mrs>` status means for the event it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Stored (`not_treated`: but no centre could act, snu 5).
    Acked { not_treated: bool },
    /// snu 4: resend the same request later.
    Hold,
    /// Not stored: the error kind.
    Failed(&'static str),
}

pub fn verdict(snu: Snu) -> Verdict {
    match snu {
        Snu::Ok => Verdict::Acked { not_treated: false },
        Snu::NotTreated => Verdict::Acked { not_treated: true },
        Snu::Hold => Verdict::Hold,
        Snu::Busy => Verdict::Failed("busy"),
        Snu::TooLong => Verdict::Failed("too_long"),
        Snu::InvalidFormat => Verdict::Failed("invalid_format"),
        Snu::WrongData => Verdict::Failed("wrong_data"),
        Snu::MandatoryMissing => Verdict::Failed("mandatory_missing"),
        Snu::ReferenceMissing => Verdict::Failed("reference_missing"),
        Snu::Undefined => Verdict::Failed("undefined"),
    }
}

/// The error kind of a final SIP response other than 2xx and 401.
fn response_error_kind(code: u16) -> String {
    match code {
        403 => "forbidden".into(),
        404 => "not_found".into(),
        503 => "unavailable".into(),
        c => format!("sip_{c}"),
    }
}

fn branch_hash(branch: Option<&str>) -> u64 {
    let mut h = DefaultHasher::new();
    branch.hash(&mut h);
    h.finish()
}

/// What a device task is handed: boxed, so that a device's queue stays small.
enum Input {
    Job(Box<Job>),
    /// A message for this device, from `SocketAddr` (UDP) or its connection.
    Sip(Box<(SipMessage, SocketAddr)>),
    /// The TCP connection of this generation ended.
    Closed(u32),
    /// Nothing more will be queued: finish what is pending.
    End,
}

/// Settings every device shares.
struct Common {
    server: SocketAddr,
    request_uri: String,
    hold_retry: Duration,
    timeout: Duration,
    rec: Arc<Recorder>,
}

/// Aborts the task when dropped (a TCP reader outlives nothing it serves).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How a device reaches the server.
enum Wire {
    Udp {
        sock: Arc<UdpSocket>,
        local: Arc<str>,
    },
    Tcp {
        /// `None` while disconnected.
        conn: Option<TcpConn>,
        generation: u32,
        /// The device's own queue, for the readers of its connections.
        me: mpsc::UnboundedSender<Input>,
    },
}

struct TcpConn {
    writer: OwnedWriteHalf,
    local: String,
    _reader: AbortOnDrop,
}

impl Wire {
    fn transport(&self) -> &'static str {
        match self {
            Wire::Udp { .. } => "UDP",
            Wire::Tcp { .. } => "TCP",
        }
    }

    fn reliable(&self) -> bool {
        matches!(self, Wire::Tcp { .. })
    }
}

/// Our MESSAGE is out and has had no final response yet.
struct Calling {
    /// The request as sent, for retransmissions (UDP only; empty over TCP).
    bytes: Vec<u8>,
    next: Option<Instant>,
    interval: Duration,
    give_up: Instant,
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
            Phase::Calling(c) => c.next.map_or(c.give_up, |n| n.min(c.give_up)),
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

struct Device {
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

impl Queued for Input {
    fn from_job(job: Job) -> Self {
        Input::Job(Box::new(job))
    }

    fn into_job(self) -> Option<Job> {
        match self {
            Input::Job(job) => Some(*job),
            _ => None,
        }
    }

    /// A TCP device holds a sender to its own queue (for its connection's reader), and the UDP
    /// readers hold one to every queue: the queues never close while the devices run.
    fn end() -> Option<Self> {
        Some(Input::End)
    }
}

pub struct SipFleet {
    /// Over TCP, a device that could not connect has no queue.
    queues: DeviceQueues<Input>,
    /// UDP socket readers, stopped at the end.
    readers: Vec<AbortOnDrop>,
}

/// The local address a socket uses to reach `server` (so that Via and Contact name an address
/// the server can send to, not 0.0.0.0).
fn local_ip_towards(server: SocketAddr) -> std::io::Result<IpAddr> {
    let any: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(any)?;
    s.connect(server)?;
    Ok(s.local_addr()?.ip())
}

fn bind_udp(ip: IpAddr) -> std::io::Result<UdpSocket> {
    let addr = SocketAddr::new(ip, 0);
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Many devices share a socket: bursts of answers must not overflow it.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// 200 OK (405 for anything but MESSAGE) to a request of the server.
fn answer(req: &SipMessage) -> Vec<u8> {
    let tag = format!("{:08x}", rand::random::<u32>());
    let (code, reason) = if *req.method() == Method::Message {
        (200, "OK")
    } else {
        (405, "Method Not Allowed")
    };
    SipMessage::response(req, code, reason, &tag).to_bytes()
}

/// Asks the server OPTIONS over UDP (no credentials needed) so that a server that is not there
/// is reported before the load, not as thousands of timeouts.
async fn probe_udp(sock: &UdpSocket, server: SocketAddr, uri: &str) -> Result<(), String> {
    let local = sock.local_addr().map_err(|e| e.to_string())?.to_string();
    let call = format!("probe{:08x}@vaka-load", rand::random::<u32>());
    let req = NewRequest {
        method: Method::Options,
        request_uri: uri,
        transport: "UDP",
        sent_by: &local,
        branch: &format!("z9hG4bK{:016x}", rand::random::<u64>()),
        from_uri: &format!("sip:vaka-load@{local}"),
        from_tag: "probe",
        to_uri: uri,
        call_id: &call,
        cseq: 1,
        ..NewRequest::default()
    }
    .build(None)
    .map_err(|e| format!("SIP OPTIONS: {e}"))?
    .to_bytes();
    let mut buf = vec![0u8; MAX_MESSAGE];
    for wait in [500, 1000, 2000] {
        let _ = sock.send_to(&req, server).await;
        let until = Instant::now() + Duration::from_millis(wait);
        while Instant::now() < until {
            let Ok(r) = tokio::time::timeout_at(until, sock.recv_from(&mut buf)).await else {
                break;
            };
            let Ok((n, _)) = r else {
                tokio::task::yield_now().await;
                continue;
            };
            if SipMessage::parse(&buf[..n]).is_ok_and(|m| !m.is_request() && m.call_id() == call) {
                return Ok(());
            }
        }
    }
    Err(format!(
        "no SIP answer from {server} over UDP within 3.5 s: is the server running with \
         [sip] udp = true on that address?"
    ))
}

/// Reads one shared UDP socket and hands each message to its device (by Call-ID). Requests of
/// devices that have ended are answered here, so that the server stops retransmitting.
async fn udp_reader(
    sock: Arc<UdpSocket>,
    queues: Arc<Vec<mpsc::UnboundedSender<Input>>>,
    rec: Arc<Recorder>,
) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            // e.g. ICMP unreachable from an earlier send
            tokio::task::yield_now().await;
            continue;
        };
        let Ok(msg) = SipMessage::parse(&buf[..n]) else {
            rec.error_kind("malformed_sip", 1);
            continue;
        };
        let Some(q) = parse_call_id(msg.call_id()).and_then(|(_, d)| queues.get(d)) else {
            continue; // not one of ours (a late probe answer)
        };
        if let Err(mpsc::error::SendError(Input::Sip(b))) =
            q.send(Input::Sip(Box::new((msg, from))))
        {
            if b.0.is_request() {
                let _ = sock.send_to(&answer(&b.0), from).await;
            }
        }
    }
}

/// Reads one device's TCP connection: Content-Length frames to the device; the end of the
/// connection as `Closed(generation)`.
async fn tcp_reader(
    rd: OwnedReadHalf,
    me: mpsc::UnboundedSender<Input>,
    peer: SocketAddr,
    generation: u32,
    rec: Arc<Recorder>,
) {
    // Empty while idle: thousands of quiet connections hold no buffers.
    let mut buf: Vec<u8> = Vec::new();
    loop {
        if rd.readable().await.is_err() {
            break;
        }
        buf.reserve(4096);
        match rd.try_read_buf(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        }
        loop {
            match find_message(&buf, MAX_MESSAGE) {
                Ok(Frame::Message(n)) => {
                    match SipMessage::parse(&buf[..n]) {
                        Ok(m) => {
                            if me.send(Input::Sip(Box::new((m, peer)))).is_err() {
                                return;
                            }
                        }
                        Err(_) => rec.error_kind("malformed_sip", 1),
                    }
                    buf.drain(..n);
                }
                Ok(Frame::KeepAlive(n)) => {
                    buf.drain(..n);
                }
                Ok(Frame::Incomplete) => break,
                Err(_) => {
                    rec.error_kind("malformed_sip", 1);
                    let _ = me.send(Input::Closed(generation));
                    return;
                }
            }
        }
        if buf.is_empty() {
            buf = Vec::new();
        }
    }
    let _ = me.send(Input::Closed(generation));
}

/// Connects a device to the server over TCP, with its reader.
async fn connect_tcp(
    server: SocketAddr,
    me: &mpsc::UnboundedSender<Input>,
    generation: u32,
    rec: &Arc<Recorder>,
) -> std::io::Result<TcpConn> {
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(server))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr()?.to_string();
    let (rd, writer) = stream.into_split();
    let reader = tokio::spawn(tcp_reader(rd, me.clone(), server, generation, rec.clone()));
    Ok(TcpConn {
        writer,
        local,
        _reader: AbortOnDrop(reader),
    })
}

impl SipFleet {
    /// Sets up the first `n` devices of `fleet` (checked with [`check_devices`]): over UDP the
    /// shared sockets (after an OPTIONS probe of the server), over TCP one connection per device
    /// (`connected(k)` as they come up; devices that cannot connect are counted as `connect`
    /// errors, and the run goes on without them unless none connected).
    pub async fn connect(
        fleet: &Fleet,
        n: usize,
        opts: &SipOptions,
        recorder: Arc<Recorder>,
        connected: impl Fn(usize),
    ) -> Result<SipFleet, String> {
        check_devices(fleet, n)?;
        let devices = &fleet.devices[..n];
        let common = Arc::new(Common {
            server: opts.server,
            request_uri: format!("sip:{}@{}", opts.request_user, opts.server),
            hold_retry: opts.hold_retry,
            timeout: opts.timeout,
            rec: recorder.clone(),
        });
        let names = devices.iter().map(|d| d.id.clone()).collect();
        let mut queues = DeviceQueues::new(names, recorder.clone());
        let stop = queues.stop_signal();
        let device = |i: usize, wire: Wire| Device {
            index: i,
            name: devices[i].id.clone(),
            password: devices[i].password.clone().unwrap_or_default(),
            dty: devices[i].device_type.clone(),
            common: common.clone(),
            wire,
            challenge: None,
            nc: 0,
            cseq: 0,
            authenticated: false,
            pending: Vec::new(),
        };
        let mut readers = Vec::new();
        if !opts.tcp {
            let ip = local_ip_towards(opts.server)
                .map_err(|e| format!("no route to {}: {e}", opts.server))?;
            let socks = (0..opts.sockets.max(1))
                .map(|_| bind_udp(ip).map(Arc::new))
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(|e| format!("SIP/UDP socket: {e}"))?;
            probe_udp(&socks[0], opts.server, &common.request_uri).await?;
            let mut senders = Vec::with_capacity(n);
            let mut receivers = Vec::with_capacity(n);
            for _ in 0..n {
                let (tx, rx) = mpsc::unbounded_channel();
                senders.push(tx);
                receivers.push(rx);
            }
            let locals: Vec<Arc<str>> = socks
                .iter()
                .map(|s| s.local_addr().map(|a| Arc::from(a.to_string())))
                .collect::<std::io::Result<_>>()
                .map_err(|e| format!("SIP/UDP socket: {e}"))?;
            for (i, rx) in receivers.into_iter().enumerate() {
                let k = i % socks.len();
                let wire = Wire::Udp {
                    sock: socks[k].clone(),
                    local: locals[k].clone(),
                };
                let task = tokio::spawn(device(i, wire).run(rx, stop.clone()));
                queues.start(i, senders[i].clone(), task);
            }
            let senders = Arc::new(senders);
            for s in &socks {
                readers.push(AbortOnDrop(tokio::spawn(udp_reader(
                    s.clone(),
                    senders.clone(),
                    recorder.clone(),
                ))));
            }
            connected(n);
        } else {
            let server = opts.server;
            queues
                .connect_each(
                    opts.connect_parallel,
                    GiveUp::Never,
                    |_, name| {
                        // The device's queue exists before its connection: the reader feeds it.
                        let (tx, rx) = mpsc::unbounded_channel();
                        let rec = recorder.clone();
                        async move {
                            let conn = connect_tcp(server, &tx, 0, &rec)
                                .await
                                .map_err(|e| format!("device {name}: SIP/TCP to {server}: {e}"))?;
                            Ok((tx, rx, conn))
                        }
                    },
                    |i, _, (tx, rx, conn)| {
                        let wire = Wire::Tcp {
                            conn: Some(conn),
                            generation: 0,
                            me: tx.clone(),
                        };
                        (tx, tokio::spawn(device(i, wire).run(rx, stop.clone())))
                    },
                    connected,
                )
                .await?;
        }
        Ok(SipFleet { queues, readers })
    }

    /// Hands a due event to its device's task; never waits.
    pub fn send(&self, job: Job) {
        self.queues.send(job);
    }

    /// Stops sending and waits for the `<mrs>` still due, at most until `deadline`; events still
    /// unanswered then are counted as `unanswered`. Closes every socket and connection.
    pub async fn finish(self, deadline: Instant) {
        self.queues.finish(deadline).await;
        drop(self.readers); // the UDP readers last: device tasks get responses until they end
    }
}

impl Device {
    async fn run(
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

    /// The local address for Via and Contact; over TCP connects first if needed.
    async fn ready(&mut self) -> Result<String, std::io::Error> {
        match &mut self.wire {
            Wire::Udp { local, .. } => Ok(local.to_string()),
            Wire::Tcp {
                conn,
                generation,
                me,
            } => {
                if conn.is_none() {
                    *generation += 1;
                    // Boxed: a reconnect is rare, and its future would otherwise be part of
                    // every device task.
                    *conn = Some(
                        Box::pin(connect_tcp(
                            self.common.server,
                            me,
                            *generation,
                            &self.common.rec,
                        ))
                        .await?,
                    );
                }
                Ok(conn.as_ref().map(|c| c.local.clone()).unwrap_or_default())
            }
        }
    }

    /// Sends bytes to the server; false if the connection broke (TCP).
    async fn put(&mut self, bytes: &[u8], to: SocketAddr) -> bool {
        match &mut self.wire {
            Wire::Udp { sock, .. } => {
                // A lost datagram is recovered by retransmission like any other loss.
                let _ = sock.send_to(bytes, to).await;
                true
            }
            Wire::Tcp { conn, .. } => match conn {
                Some(c) => {
                    if c.writer.write_all(bytes).await.is_ok() {
                        true
                    } else {
                        *conn = None;
                        false
                    }
                }
                None => false,
            },
        }
    }

    /// Sends pending `i` as a new transaction (new branch and CSeq; credentials if a challenge
    /// is known).
    async fn transmit(&mut self, i: usize) {
        let local = match self.ready().await {
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
            next: (!reliable).then_some(now + T1),
            interval: T1,
            give_up: now + self.common.timeout,
        });
        if !self.put(&bytes, self.common.server).await {
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
        let contact = match self.wire {
            Wire::Udp { .. } => format!("<sip:{}@{local}>", self.name),
            Wire::Tcp { .. } => format!("<sip:{}@{local};transport=tcp>", self.name),
        };
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
            100..=199 => {
                // Proceeding: keep retransmitting, but every T2.
                if calling.next.is_some() {
                    calling.interval = T2;
                    calling.next = Some(now + T2);
                }
            }
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
        if !self.put(&answer(&m), from).await {
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
                Phase::Calling(c) if now >= c.give_up => {
                    self.fail(i, "timeout");
                    continue;
                }
                Phase::Calling(c) => {
                    c.interval = (c.interval * 2).min(T2);
                    c.next = Some(now + c.interval);
                    let bytes = std::mem::take(&mut c.bytes);
                    let server = self.common.server;
                    self.put(&bytes, server).await;
                    if let Phase::Calling(c) = &mut self.pending[i].phase {
                        c.bytes = bytes;
                    }
                }
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
        if let Wire::Tcp { conn, .. } = &mut self.wire {
            *conn = None;
        }
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
        if matches!(&self.wire, Wire::Tcp { generation: g, conn: Some(_), .. } if *g == generation)
        {
            self.connection_lost();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaka_core::{DeviceKey, EventKind};
    use vaka_ingest::sip::convert;

    fn planned(kind: Kind) -> Planned {
        Planned {
            device: 3,
            key: "00000512a".into(),
            kind,
        }
    }

    /// Every planned kind, as the engine's SIP front reads it.
    #[test]
    fn every_kind_becomes_an_mrq_the_engine_reads_as_that_kind() {
        let cases = [
            (
                Kind::Alarm {
                    code: "0010",
                    priority: 5,
                },
                "alarm",
            ),
            (
                Kind::Technical {
                    code: "BATLOW",
                    restoral: false,
                },
                "battery",
            ),
            (
                Kind::Technical {
                    code: "BATLOW",
                    restoral: true,
                },
                "restoral",
            ),
            (Kind::Heartbeat, "heartbeat"),
            (
                Kind::Position {
                    time_ms: 1_700_000_123_456,
                    lat: 59.336_111_23,
                    lon: 18.072_778_9,
                    accuracy_m: 8.0,
                },
                "position",
            ),
            (
                Kind::Telemetry {
                    name: "temp",
                    value: 21.456,
                },
                "telemetry",
            ),
        ];
        for (kind, what) in cases {
            let xml = to_mrq(&planned(kind), "90000003", "51").unwrap().to_xml();
            let mrq = Mrq::parse(&xml).unwrap_or_else(|e| panic!("{what}: {e}: {xml}"));
            assert_eq!(
                (mrq.reference.as_str(), mrq.cid.as_str(), mrq.dty.as_str()),
                ("00000512a", "90000003", "0051")
            );
            let e = convert::to_event(
                &mrq,
                DeviceKey::new("t", "90000003"),
                1_700_000_200_000,
                xml.clone().into_bytes(),
            );
            assert_eq!(e.key, "00000512a", "{what}");
            match (what, &e.kind) {
                ("alarm", EventKind::Alarm(a)) => {
                    assert_eq!((a.code.as_str(), a.priority), ("0010", 5))
                }
                ("battery", EventKind::Technical { code, restoral }) => {
                    assert_eq!((code.as_str(), *restoral), ("0016", false))
                }
                ("restoral", EventKind::Technical { restoral, .. }) => assert!(*restoral),
                ("heartbeat", EventKind::Heartbeat) => {}
                ("position", EventKind::Position) => {
                    let f = e.fix.as_ref().unwrap();
                    assert_eq!((f.lat, f.lon), (59.336111, 18.072779));
                    assert_eq!(f.time_ms, 1_700_000_123_456, "tim keeps milliseconds");
                }
                ("telemetry", EventKind::Telemetry { name, .. }) => {
                    assert_eq!(name, "scaip.info.090");
                    assert_eq!(mrq.ite.as_deref(), Some("temp=21.46"));
                }
                (w, k) => panic!("{w}: {k:?}"),
            }
        }
    }

    #[test]
    fn what_scaip_cannot_say_is_refused() {
        let bad = |kind| to_mrq(&planned(kind), "1", "3").unwrap_err();
        assert!(bad(Kind::Alarm {
            code: "fall",
            priority: 5
        })
        .contains("stc"));
        assert!(bad(Kind::Alarm {
            code: "0010",
            priority: 10
        })
        .contains("0-9"));
        assert!(bad(Kind::Technical {
            code: "MAINS",
            restoral: false
        })
        .contains("MAINS"));
        let mut p = planned(Kind::Heartbeat);
        p.key = "not-alnum".into();
        assert!(to_mrq(&p, "1", "3").unwrap_err().contains("ref"));
        assert_eq!(technical_stc("016", false).as_deref(), Some("0016"));
    }

    #[test]
    fn call_ids_name_the_event_and_its_device() {
        let id = call_id("0000051a", 12_345);
        assert_eq!(id, "0000051a-12345@vaka-load");
        assert_eq!(parse_call_id(&id), Some(("0000051a", 12_345)));
        for other in [
            "0000051a-1@elsewhere",
            "0000051a@vaka-load",
            "0000051a-x@vaka-load",
            "0000051a-+1@vaka-load",
            "bad-ref-1@vaka-load",
            "-1@vaka-load",
            "probe1234@vaka-load",
        ] {
            assert_eq!(parse_call_id(other), None, "{other}");
        }
    }

    #[test]
    fn mrs_statuses_decide_the_event() {
        assert_eq!(verdict(Snu::Ok), Verdict::Acked { not_treated: false });
        assert_eq!(
            verdict(Snu::NotTreated),
            Verdict::Acked { not_treated: true }
        );
        assert_eq!(verdict(Snu::Hold), Verdict::Hold);
        assert_eq!(verdict(Snu::Busy), Verdict::Failed("busy"));
        for (snu, kind) in [
            (Snu::InvalidFormat, "invalid_format"),
            (Snu::WrongData, "wrong_data"),
            (Snu::MandatoryMissing, "mandatory_missing"),
            (Snu::ReferenceMissing, "reference_missing"),
        ] {
            assert_eq!(verdict(snu), Verdict::Failed(kind));
        }
        assert_eq!(response_error_kind(403), "forbidden");
        assert_eq!(response_error_kind(500), "sip_500");
    }

    fn fleet(ids: &[&str], password: Option<&str>, ty: &str) -> Fleet {
        Fleet {
            tenant: "t".into(),
            devices: ids
                .iter()
                .map(|id| crate::fleet::Device {
                    id: id.to_string(),
                    device_type: ty.into(),
                    password: password.map(String::from),
                })
                .collect(),
            ..Fleet::default()
        }
    }

    #[test]
    fn devices_that_cannot_speak_scaip_are_named() {
        assert!(check_devices(&fleet(&["100001", "100002"], Some("pw"), "0003"), 2).is_ok());
        let e = check_devices(&fleet(&["100001", "100002"], None, "0003"), 2).unwrap_err();
        assert!(e.contains("password") && e.contains("2 of the 2"), "{e}");
        let e = check_devices(&fleet(&["d1"], Some("pw"), "0003"), 1).unwrap_err();
        assert!(e.contains("cid"), "{e}");
        let e = check_devices(&fleet(&["1"], Some("pw"), "tracker"), 1).unwrap_err();
        assert!(e.contains("device type"), "{e}");
    }

    /// A scripted SIP server on a UDP socket: what it receives, and how to answer.
    struct Fake {
        sock: UdpSocket,
    }

    impl Fake {
        async fn new() -> Fake {
            Fake {
                sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            }
        }
        fn addr(&self) -> SocketAddr {
            self.sock.local_addr().unwrap()
        }
        async fn recv(&self) -> (SipMessage, SocketAddr) {
            let mut buf = vec![0u8; MAX_MESSAGE];
            let (n, from) =
                tokio::time::timeout(Duration::from_secs(5), self.sock.recv_from(&mut buf))
                    .await
                    .expect("the device sent nothing")
                    .unwrap();
            (SipMessage::parse(&buf[..n]).unwrap(), from)
        }
        async fn silent(&self, ms: u64) -> bool {
            let mut buf = vec![0u8; MAX_MESSAGE];
            tokio::time::timeout(Duration::from_millis(ms), self.sock.recv_from(&mut buf))
                .await
                .is_err()
        }
        async fn reply(
            &self,
            req: &SipMessage,
            to: SocketAddr,
            code: u16,
            extra: Option<(&str, &str)>,
        ) {
            let mut r = SipMessage::response(req, code, "X", "srv");
            if let Some((h, v)) = extra {
                r.push_header(h, v).unwrap();
            }
            self.sock.send_to(&r.to_bytes(), to).await.unwrap();
        }
        /// The `<mrs>` for `req` as the engine sends it: a MESSAGE on the request's Call-ID.
        fn mrs(&self, req: &SipMessage, branch: &str, snu: Snu) -> Vec<u8> {
            let reference = Mrq::parse(req.body_str().unwrap()).unwrap().reference;
            let contact = req
                .header("Contact")
                .unwrap()
                .trim_matches(['<', '>'])
                .to_string();
            NewRequest {
                request_uri: &contact,
                transport: "UDP",
                sent_by: &self.addr().to_string(),
                branch,
                from_uri: "sip:alarm@vaka.test",
                from_tag: "srv",
                to_uri: &req.from().uri,
                call_id: req.call_id(),
                cseq: 7,
                ..NewRequest::default()
            }
            .scaip_message(&Mrs::new(reference, snu).to_xml())
            .unwrap()
            .to_bytes()
        }
    }

    fn options(server: SocketAddr, timeout_ms: u64) -> SipOptions {
        SipOptions {
            server,
            tcp: false,
            sockets: 1,
            connect_parallel: 1,
            hold_retry: Duration::from_millis(100),
            timeout: Duration::from_millis(timeout_ms),
            request_user: "alarm".into(),
        }
    }

    fn alarm_job(key: &str) -> Job {
        Job {
            planned: Planned {
                device: 0,
                key: key.into(),
                kind: Kind::Alarm {
                    code: "0010",
                    priority: 5,
                },
            },
            at: Instant::now(),
            path: crate::record::Path::EndsAtAck,
        }
    }

    fn nc_of(m: &SipMessage) -> Option<u32> {
        vaka_scaip::Authorization::parse(m.authorization()?)
            .ok()?
            .nc
    }

    /// 401 -> credentials (checked) -> 200 -> `<mrs>` HOLD (sent twice: one HOLD) -> the same
    /// request again after the hold delay, nc 2 -> 200 -> `<mrs>` OK: acked once. A 403 after
    /// that is `forbidden_after_auth`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn challenge_then_hold_then_the_resend_is_acked() {
        let fake = Fake::new().await;
        let rec = Arc::new(Recorder::new(Instant::now()));
        let script = async {
            let (probe, from) = fake.recv().await;
            assert_eq!(*probe.method(), Method::Options);
            fake.reply(&probe, from, 200, None).await;
            let (first, from) = fake.recv().await;
            assert!(first.authorization().is_none() && first.is_scaip());
            let challenge = Challenge {
                realm: "vaka.test".into(),
                nonce: "n1".into(),
                opaque: None,
                algorithm: vaka_scaip::DigestAlgorithm::Md5,
                qop_auth: true,
                stale: false,
            };
            let wa = challenge.to_header_value();
            fake.reply(&first, from, 401, Some(("WWW-Authenticate", &wa)))
                .await;
            let (second, from) = fake.recv().await;
            let auth = vaka_scaip::Authorization::parse(second.authorization().unwrap()).unwrap();
            assert_eq!((auth.username.as_str(), auth.nc), ("100001", Some(1)));
            assert_eq!(
                vaka_scaip::auth::check_response(
                    &auth,
                    "MESSAGE",
                    vaka_scaip::auth::Credential::Password("pw")
                ),
                Ok(true)
            );
            assert_eq!(second.call_id(), first.call_id());
            assert_ne!(second.top_via().branch(), first.top_via().branch());
            fake.reply(&second, from, 200, None).await;
            let hold = fake.mrs(&second, "z9hG4bKhold", Snu::Hold);
            for _ in 0..2 {
                fake.sock.send_to(&hold, from).await.unwrap();
                let (ok, _) = fake.recv().await;
                assert_eq!(ok.status(), Some(200), "every <mrs> arrival is answered");
            }
            let (third, from) = fake.recv().await;
            assert_eq!(third.body(), second.body(), "the same request");
            assert_ne!(third.top_via().branch(), second.top_via().branch());
            assert_eq!(nc_of(&third), Some(2));
            fake.reply(&third, from, 200, None).await;
            fake.sock
                .send_to(&fake.mrs(&third, "z9hG4bKok", Snu::Ok), from)
                .await
                .unwrap();
            assert_eq!(fake.recv().await.0.status(), Some(200));
            assert!(
                fake.silent(400).await,
                "no second resend for a repeated HOLD"
            );
            let (next, from) = fake.recv().await;
            assert_eq!(nc_of(&next), Some(3));
            fake.reply(&next, from, 403, None).await;
        };
        let device = async {
            let f = fleet(&["100001"], Some("pw"), "0003");
            let sip = SipFleet::connect(&f, 1, &options(fake.addr(), 5_000), rec.clone(), |_| {})
                .await
                .unwrap();
            sip.send(alarm_job("k1"));
            tokio::time::sleep(Duration::from_millis(1_000)).await;
            sip.send(alarm_job("k2"));
            sip.finish(Instant::now() + Duration::from_secs(5)).await;
        };
        tokio::join!(script, device);
        let m = rec.finish();
        assert_eq!(
            (m.counts.sent, m.counts.acked),
            (2, 1),
            "{:?}",
            m.counts.errors
        );
        assert_eq!(
            m.counts.errors.get("forbidden_after_auth"),
            Some(&1),
            "{:?}",
            m.counts.errors
        );
    }

    /// No answer: retransmitted at T1, then 2*T1, until the timeout; 403: `forbidden`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn silence_is_retransmitted_then_a_timeout_and_403_is_forbidden() {
        let fake = Fake::new().await;
        let rec = Arc::new(Recorder::new(Instant::now()));
        let script = async {
            let (probe, from) = fake.recv().await;
            fake.reply(&probe, from, 200, None).await;
            let t0 = Instant::now();
            let (first, _) = fake.recv().await;
            let mut at = Vec::new();
            while let Ok(Ok((n, _))) = tokio::time::timeout(
                Duration::from_millis(1_200),
                fake.sock.recv_from(&mut vec![0u8; MAX_MESSAGE]),
            )
            .await
            {
                assert!(n > 0);
                at.push(t0.elapsed().as_millis());
            }
            // Sent at 0, again at 500 and 1500 ms; the timeout (1800 ms) ends it.
            assert_eq!(at.len(), 2, "{at:?}");
            assert!(
                (400..900).contains(&at[0]) && (1300..1900).contains(&at[1]),
                "{at:?}"
            );
            let _ = first;
            let (second, from) = fake.recv().await;
            fake.reply(&second, from, 403, None).await;
        };
        let device = async {
            let f = fleet(&["100001"], Some("pw"), "0003");
            let sip = SipFleet::connect(&f, 1, &options(fake.addr(), 1_800), rec.clone(), |_| {})
                .await
                .unwrap();
            sip.send(alarm_job("k1"));
            tokio::time::sleep(Duration::from_millis(3_400)).await;
            sip.send(alarm_job("k2"));
            sip.finish(Instant::now() + Duration::from_secs(5)).await;
        };
        tokio::join!(script, device);
        let m = rec.finish();
        assert_eq!(m.counts.acked, 0);
        assert_eq!(
            m.counts.errors.get("timeout"),
            Some(&1),
            "{:?}",
            m.counts.errors
        );
        assert_eq!(
            m.counts.errors.get("forbidden"),
            Some(&1),
            "{:?}",
            m.counts.errors
        );
    }

    #[tokio::test]
    async fn no_server_is_reported_before_any_load() {
        let quiet = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let rec = Arc::new(Recorder::new(Instant::now()));
        let f = fleet(&["100001"], Some("pw"), "0003");
        let e = SipFleet::connect(
            &f,
            1,
            &options(quiet.local_addr().unwrap(), 1_000),
            rec,
            |_| {},
        )
        .await
        .err()
        .unwrap();
        assert!(e.contains("no SIP answer"), "{e}");
    }
}
