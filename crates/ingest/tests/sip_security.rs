//! Invariant 13 and replay-proof digests at the SCAIP front (issue 16), over real sockets:
//! a flood of unauthenticated MESSAGEs keeps no state and costs authenticated devices nothing,
//! and fills only the strangers' lane at the socket;
//! one source gets its unauthenticated budget and no more; a captured Authorization replayed
//! with another body is refused (with qop, and for a device with single-use nonces); an answer
//! in another algorithm than the configured one, or for another Request-URI, is refused; no
//! response to an unauthenticated request is larger than the request; the `<mrs>` never goes
//! to a Contact a request names.
mod sip_support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sip_support::*;
use tokio::net::{TcpStream, UdpSocket};
use vaka_scaip::auth::authorize;
use vaka_scaip::scaip::{Mrs, Snu};
use vaka_scaip::{Challenge, DigestAlgorithm, SipMessage};

const ALARM: &str = "<stc>0010</stc><pri>5</pri>";

/// An unauthenticated MESSAGE as an attacker (or a booting device) sends it.
fn stranger_message(server: SocketAddr, local: SocketAddr, n: u64) -> Vec<u8> {
    let body = mrq(&format!("X{n}"), TRIGGER, ALARM);
    format!(
        "MESSAGE sip:alarm@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKflood{n}\r\n\
Max-Forwards: 70\r\nFrom: <sip:{TRIGGER}@{local}>;tag=f{n}\r\nTo: <sip:alarm@{server}>\r\n\
Call-ID: flood-{n}@{local}\r\nCSeq: 1 MESSAGE\r\nContact: <sip:{TRIGGER}@{local}>\r\n\
Content-Type: application/scaip+xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One alarm of an authenticated UDP device, retransmitted every 500 ms until answered as a
/// real UDP device does (RFC 3261 Timer E): the final status and the `<mrs>`.
async fn udp_alarm(dev: &mut UdpDevice, call_id: &str, body: &str) -> (u16, Option<Mrs>) {
    let m = dev.message(call_id, body);
    let bytes = m.to_bytes();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut status = None;
    let mut buf = vec![0u8; 65_536];
    dev.sock.send_to(&bytes, dev.server).await.unwrap();
    while Instant::now() < deadline {
        let got = tokio::time::timeout(Duration::from_millis(500), dev.sock.recv_from(&mut buf));
        let Ok(Ok((n, _))) = got.await else {
            if status.is_none() {
                dev.sock.send_to(&bytes, dev.server).await.unwrap();
            }
            continue;
        };
        let r = SipMessage::parse(&buf[..n]).unwrap();
        if r.is_request() {
            let ok = SipMessage::response(&r, 200, "OK", "dev");
            dev.sock.send_to(&ok.to_bytes(), dev.server).await.unwrap();
            if r.call_id() == call_id {
                let mrs = Mrs::parse(r.body_str().unwrap()).unwrap();
                return (status.unwrap_or(200), Some(mrs));
            }
        } else if r.call_id() == call_id && r.status() >= Some(200) {
            status = r.status();
            if status != Some(200) {
                return (status.unwrap(), None);
            }
        }
    }
    (status.unwrap_or(0), None)
}

/// A device without a nonce: its request without credentials, retransmitted every 500 ms as a
/// real UDP device does (the engine's socket queue may drop a datagram under a flood), until
/// it is answered; the challenge is kept. The status of that answer (401 expected).
async fn udp_challenge(dev: &mut UdpDevice, call_id: &str, body: &str) -> u16 {
    let bytes = dev.message(call_id, body).to_bytes();
    let mut buf = vec![0u8; 65_536];
    for _ in 0..40 {
        dev.sock.send_to(&bytes, dev.server).await.unwrap();
        let got = tokio::time::timeout(Duration::from_millis(500), dev.sock.recv_from(&mut buf));
        if let Ok(Ok((n, _))) = got.await {
            let r = SipMessage::parse(&buf[..n]).unwrap();
            if r.call_id() == call_id {
                if let Some(c) = r.www_authenticate() {
                    dev.challenge = Some(Challenge::parse(c).unwrap());
                }
                return r.status().unwrap_or(0);
            }
        }
    }
    0
}

/// Unauthenticated MESSAGEs from a socket on `ip` until halted: `per_tick` every 10 ms, or as
/// fast as the socket sends; the answers that come back counted, all and those that start
/// with `counted`, and the bytes both ways.
struct Blast {
    stop: Arc<AtomicBool>,
    sender: tokio::task::JoinHandle<u64>,
    reader: tokio::task::JoinHandle<()>,
    counts: Arc<BlastCounts>,
}

#[derive(Default)]
struct BlastCounts {
    answers: AtomicU64,
    matching: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_answered: AtomicU64,
}

/// What a blast sent and got back.
struct Blasted {
    sent: u64,
    answers: u64,
    matching: u64,
    bytes_sent: u64,
    bytes_answered: u64,
}

impl Blast {
    async fn start(
        ip: &str,
        server: SocketAddr,
        per_tick: Option<usize>,
        counted: &'static [u8],
    ) -> Blast {
        let sock = Arc::new(UdpSocket::bind(format!("{ip}:0")).await.unwrap());
        let counts = Arc::new(BlastCounts::default());
        let reader = {
            let (sock, counts) = (sock.clone(), counts.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while let Ok((n, _)) = sock.recv_from(&mut buf).await {
                    counts.answers.fetch_add(1, Ordering::Relaxed);
                    counts.bytes_answered.fetch_add(n as u64, Ordering::Relaxed);
                    if buf[..n].starts_with(counted) {
                        counts.matching.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        let stop = Arc::new(AtomicBool::new(false));
        let sender = {
            let (stop, counts) = (stop.clone(), counts.clone());
            tokio::spawn(async move {
                let local = sock.local_addr().unwrap();
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    if per_tick.is_some() {
                        tick.tick().await;
                    }
                    for _ in 0..per_tick.unwrap_or(64) {
                        n += 1;
                        let m = stranger_message(server, local, n);
                        let _ = sock.send_to(&m, server).await;
                        counts
                            .bytes_sent
                            .fetch_add(m.len() as u64, Ordering::Relaxed);
                    }
                    tokio::task::yield_now().await;
                }
                n
            })
        };
        Blast {
            stop,
            sender,
            reader,
            counts,
        }
    }

    fn halt(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Halts it and waits for late answers.
    async fn finish(self) -> Blasted {
        self.halt();
        let sent = self.sender.await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.reader.abort();
        let c = &self.counts;
        Blasted {
            sent,
            answers: c.answers.load(Ordering::Relaxed),
            matching: c.matching.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            bytes_answered: c.bytes_answered.load(Ordering::Relaxed),
        }
    }
}

/// Resident set size of this process (the engine runs in it), from /proc.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The flood of issue 16: 10,000 unauthenticated MESSAGEs a second over UDP for 3 s from four
/// sockets (two addresses) while devices alarm over UDP and TCP. The flood is let through the
/// per-source budget here (rate and burst raised), so that what is shown is that challenges
/// keep no state: with a transaction per challenge the table (1,000 here) would fill within
/// 0.1 s and the devices would get 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unauthenticated_messages_keeps_no_state_and_every_device_alarm_is_answered() {
    const MAX_TRANSACTIONS: usize = 1_000;
    let env = Env::start_with(|c, _| {
        c.max_transactions = MAX_TRANSACTIONS;
        c.unauthenticated_rate = 1_000_000;
        c.unauthenticated_burst = 1_000_000;
        c.hold_after_ms = 5_000;
    })
    .await;
    let server = env.udp();
    // Devices hold their nonces from before the flood, as devices in service do.
    let mut udp_devices = Vec::new();
    for id in [TRIGGER, TRACKER, GATEWAY] {
        let mut dev = UdpDevice::new(server, id, PASSWORD).await;
        let mrs = dev
            .exchange(&format!("pre-{id}"), &mrq(&format!("P{id}"), id, ALARM))
            .await;
        assert_eq!(mrs.snu, Snu::Ok);
        udp_devices.push(dev);
    }
    let mut tcp = StreamDevice {
        io: TcpStream::connect(env.tcp()).await.unwrap(),
        buf: Vec::new(),
        transport: "TCP",
    };
    let first = tcp.message(1, &mrq("T0", TRIGGER, ALARM), None);
    tcp.send(&first).await;
    let tcp_challenge = Challenge::parse(tcp.recv().await.www_authenticate().unwrap()).unwrap();
    assert_eq!(
        tcp.answered(2, &mrq("T0", TRIGGER, ALARM), &tcp_challenge)
            .await
            .snu,
        Snu::Ok
    );
    let rss_before = rss_kib();

    // The flood: 4 sockets x 2,500 a second, 25 every 10 ms each, while the devices alarm.
    let mut flood = Vec::new();
    for ip in ["127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.2"] {
        flood.push(Blast::start(ip, server, Some(25), b"SIP/2.0 401").await);
    }

    // Meanwhile every device alarms, one after the other, and the table is watched.
    let started = Instant::now();
    let mut answered = 0;
    let mut alarms = 0;
    let mut most_transactions = 0;
    let mut seq = 0;
    while started.elapsed() < Duration::from_millis(2_800) {
        seq += 1;
        for dev in udp_devices.iter_mut() {
            let id = dev.user.clone();
            let reference = format!("F{seq}");
            alarms += 1;
            let (status, mrs) =
                udp_alarm(dev, &format!("f-{id}-{seq}"), &mrq(&reference, &id, ALARM)).await;
            assert_eq!(status, 200, "device {id} alarm {seq}: never a 503");
            let mrs = mrs.expect("the <mrs> came");
            assert_eq!(
                (mrs.snu, mrs.reference.as_str()),
                (Snu::Ok, reference.as_str())
            );
            answered += 1;
            most_transactions = most_transactions.max(env.server.transactions());
        }
        alarms += 1;
        let body = mrq(&format!("TF{seq}"), TRIGGER, ALARM);
        let mrs = tcp.answered(2 + seq, &body, &tcp_challenge).await;
        assert_eq!(mrs.snu, Snu::Ok, "TCP alarm {seq}");
        answered += 1;
        most_transactions = most_transactions.max(env.server.transactions());
    }
    let took = started.elapsed();
    flood.iter().for_each(Blast::halt);
    let (mut sent, mut challenged, mut bytes_in, mut bytes_out) = (0, 0, 0, 0);
    for blast in flood {
        let b = blast.finish().await;
        sent += b.sent;
        challenged += b.matching;
        bytes_in += b.bytes_sent;
        bytes_out += b.bytes_answered;
    }
    let rss_after = rss_kib();
    println!(
        "flood: {sent} unauthenticated MESSAGEs ({bytes_in} bytes) in {took:?}, {challenged} \
         answered 401 ({bytes_out} bytes); \
         authenticated alarms: {answered} of {alarms} answered snu 0, no 503; \
         transactions held at most {most_transactions} (max_transactions 1000), \
         nonces tracked {}; RSS {rss_before} -> {rss_after} KiB",
        env.server.nonces_tracked()
    );
    assert_eq!(answered, alarms);
    assert!(
        bytes_out <= bytes_in,
        "no amplification: {bytes_out} out for {bytes_in} in"
    );
    assert!(
        alarms >= 8,
        "devices alarmed throughout the flood ({alarms})"
    );
    assert!(sent >= 25_000, "the flood ran at ~10,000/s ({sent})");
    // What the handler did not keep up with was shed at the socket (503, its own lane): on a
    // busy machine half or more (CI once challenged 6,809 of 30,000). What this test needs is
    // challenges well past the table's 1,000, which a transaction per challenge would fill.
    assert!(
        challenged >= 3 * MAX_TRANSACTIONS as u64,
        "the flood reached the challenge path ({challenged} of {sent}), past the table"
    );
    // At most one per authenticated request (UDP ones linger for Timer J, TCP ones end at once);
    // with an entry per challenge it would be at max_transactions within 0.1 s.
    assert!(
        most_transactions <= alarms + 3,
        "only authenticated requests hold transactions ({most_transactions} for {alarms} alarms)"
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory bounded: {rss_before} -> {rss_after} KiB"
    );
    env.stop().await;
}

/// Strangers' requests (no `Authorization`) wait in a lane of their own from the socket on:
/// with both UDP lanes two deep, strangers' MESSAGEs blasted as fast as a socket sends keep
/// theirs full (told 503), while every alarm of an authenticated device is answered 200. With
/// one lane for both, the alarms landed in a full lane and were told 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_fill_only_their_own_lane_at_the_socket() {
    let env = Env::start_with(|c, _| {
        c.udp_queue = 2;
        c.unauthenticated_rate = 1_000_000;
        c.unauthenticated_burst = 1_000_000;
    })
    .await;
    let server = env.udp();
    let mut dev = UdpDevice::new(server, TRIGGER, PASSWORD).await;
    assert_eq!(
        dev.exchange("s-0", &mrq("S0", TRIGGER, ALARM)).await.snu,
        Snu::Ok
    );
    let blast = Blast::start("127.0.0.2", server, None, b"SIP/2.0 503").await;
    for i in 1..=20 {
        let reference = format!("S{i}");
        let (status, mrs) = udp_alarm(
            &mut dev,
            &format!("s-{i}"),
            &mrq(&reference, TRIGGER, ALARM),
        )
        .await;
        assert_eq!(status, 200, "alarm {i} during the strangers' blast");
        assert_eq!(mrs.map(|m| m.snu), Some(Snu::Ok), "alarm {i}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let Blasted {
        sent,
        matching: busy,
        ..
    } = blast.finish().await;
    println!("strangers: {sent} sent, {busy} told 503; 20 device alarms answered 200");
    assert!(busy > 0, "the strangers' lane was full ({sent} sent)");
    env.stop().await;
}

/// A stranger's request enters its lane only within its source's budget: with the UDP lanes
/// four deep and one source blasting unauthenticated MESSAGEs, devices that hold no nonce (their
/// first request has no credentials, from another address) are still challenged and then
/// answered, 48 times. Without the budget at the socket the blast kept the strangers' lane full and
/// their first requests were told 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sources_flood_leaves_another_stranger_its_challenge() {
    let env = Env::start_with(|c, _| {
        c.udp_queue = 4;
        c.unauthenticated_rate = 20;
        c.unauthenticated_burst = 60;
    })
    .await;
    let server = env.udp();
    // One address, three ports, 10,000 a second each: faster than the handler answers, so
    // without the budget at the socket the lane is full whenever a device asks.
    let mut blasts = Vec::new();
    for _ in 0..3 {
        blasts.push(Blast::start("127.0.0.2", server, Some(100), b"").await);
    }
    let started = Instant::now();
    // Past the flooder's burst.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 48 first requests (a new socket holds no nonce), each a chance to meet a full lane.
    for i in 0..48 {
        let id = [TRIGGER, TRACKER, GATEWAY][i % 3];
        let mut dev = UdpDevice::new(server, id, PASSWORD).await;
        let (reference, body) = (format!("N{i}"), mrq(&format!("N{i}"), id, ALARM));
        let challenged = udp_challenge(&mut dev, &format!("c-{i}"), &body).await;
        assert_eq!(
            challenged, 401,
            "device {id} without a nonce ({i}) is challenged"
        );
        let (status, mrs) = udp_alarm(&mut dev, &format!("n-{i}"), &body).await;
        assert_eq!(status, 200, "device {id} ({i}) then answered");
        assert_eq!(
            mrs.map(|m| (m.snu, m.reference)),
            Some((Snu::Ok, reference))
        );
    }
    blasts.iter().for_each(Blast::halt);
    let (mut sent, mut answered) = (0, 0);
    for b in blasts {
        let Blasted {
            sent: s,
            answers: a,
            ..
        } = b.finish().await;
        (sent, answered) = (sent + s, answered + a);
    }
    let budget = 60 + (started.elapsed().as_secs_f64() * 20.0).ceil() as u64;
    println!("one source: {sent} sent, {answered} answered (budget {budget}); 48 first requests without a nonce challenged and answered");
    assert!(sent > 2 * budget, "the flood outran its budget ({sent})");
    assert!(answered <= budget, "{answered} answers, budget {budget}");
    env.stop().await;
}

/// One source gets its burst and rate of responses to unauthenticated requests and no more;
/// another source still gets its challenge, and an authenticated device at the spent address
/// is still served (its requests never draw on that budget).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_gets_its_unauthenticated_budget_and_no_more() {
    let env = Env::start_with(|c, _| {
        c.unauthenticated_rate = 5;
        c.unauthenticated_burst = 10;
    })
    .await;
    let server = env.udp();
    let mut dev = UdpDevice::new(server, TRIGGER, PASSWORD).await;
    assert_eq!(
        dev.exchange("b-0", &mrq("B0", TRIGGER, ALARM)).await.snu,
        Snu::Ok
    );

    let spender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = spender.local_addr().unwrap();
    let started = Instant::now();
    for n in 0..100 {
        spender
            .send_to(&stranger_message(server, local, n), server)
            .await
            .unwrap();
    }
    let mut answers = 0;
    let mut buf = vec![0u8; 4096];
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(500), spender.recv_from(&mut buf)).await
    {
        answers += 1;
    }
    let allowed = 10 + (started.elapsed().as_secs_f64() * 5.0).ceil() as usize;
    println!("one source: 100 unauthenticated MESSAGEs, {answers} answered (budget {allowed})");
    assert!(
        (9..=allowed).contains(&answers),
        "{answers} answers, budget {allowed}"
    );

    // Another address has its own budget.
    let other = UdpSocket::bind("127.0.0.3:0").await.unwrap();
    let other_local = other.local_addr().unwrap();
    other
        .send_to(&stranger_message(server, other_local, 1_000), server)
        .await
        .unwrap();
    let (n, _) = within(5, other.recv_from(&mut buf)).await.unwrap();
    assert!(buf[..n].starts_with(b"SIP/2.0 401"));

    // The device at the spent address (127.0.0.1) still alarms: authenticated, not budgeted.
    let (status, mrs) = udp_alarm(&mut dev, "b-1", &mrq("B1", TRIGGER, ALARM)).await;
    assert_eq!((status, mrs.map(|m| m.snu)), (200, Some(Snu::Ok)));
    env.stop().await;
}

/// A captured Authorization header (with qop) replayed on a new transaction with another body
/// (a reset that would cancel the alarm) is refused; so is one of a device with single-use
/// nonces (no qop), and credentials without qop from a device not set so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_authorization_replayed_with_another_body_is_refused() {
    let env = Env::start().await;
    let server = env.udp();

    // With qop: the device's alarm, then its header on a reset with the same nonce count.
    let mut dev = UdpDevice::new(server, TRIGGER, PASSWORD).await;
    assert_eq!(
        dev.exchange("q-1", &mrq("Q1", TRIGGER, ALARM)).await.snu,
        Snu::Ok
    );
    let captured = dev.message("q-2", &mrq("Q2", TRIGGER, ALARM));
    dev.send(&captured).await;
    assert_eq!(dev.recv(5).await.status(), Some(200));
    dev.mrs(10).await;
    let header = captured.authorization().unwrap().to_owned();
    let mut attacker = UdpDevice::new(server, TRIGGER, "unknown").await;
    let mut forged = attacker.message("q-3", &mrq("Q1", TRIGGER, "<mty>RE</mty>"));
    forged.push_header("Authorization", &header).unwrap();
    attacker.send(&forged).await;
    let r = attacker.recv(5).await;
    assert_eq!(
        r.status(),
        Some(401),
        "refused with a fresh challenge, never 200"
    );
    assert!(attacker.silent(500).await, "no <mrs>");

    // Without qop, a device set to single-use nonces: accepted once per nonce.
    let mut legacy = UdpDevice::new(server, LEGACY, PASSWORD).await;
    let m = legacy.message("l-1", &mrq("L1", LEGACY, ALARM));
    legacy.send(&m).await;
    let mut c = Challenge::parse(legacy.recv(5).await.www_authenticate().unwrap()).unwrap();
    c.qop_auth = false; // the device answers RFC 2069 style
    legacy.challenge = Some(c);
    let first = legacy.message("l-2", &mrq("L2", LEGACY, ALARM));
    assert!(first.authorization().unwrap().contains("response="));
    assert!(!first.authorization().unwrap().contains("qop"));
    legacy.send(&first).await;
    assert_eq!(legacy.recv(5).await.status(), Some(200));
    assert_eq!(legacy.mrs(10).await.0.snu, Snu::Ok);
    let header = first.authorization().unwrap().to_owned();
    let mut replay = attacker.message("l-3", &mrq("L2", LEGACY, "<mty>RE</mty>"));
    replay.push_header("Authorization", &header).unwrap();
    attacker.send(&replay).await;
    let r = attacker.recv(5).await;
    assert_eq!(r.status(), Some(401), "a used single-use nonce is refused");
    assert!(
        Challenge::parse(r.www_authenticate().unwrap())
            .unwrap()
            .stale
    );
    assert!(attacker.silent(500).await, "no <mrs>");
    // The device itself goes on: its next request with the used nonce gets 401 stale=true,
    // and with the fresh nonce it is accepted.
    let next = legacy.message("l-4", &mrq("L4", LEGACY, ALARM));
    legacy.send(&next).await;
    let r = legacy.recv(5).await;
    assert_eq!(r.status(), Some(401));
    let mut c = Challenge::parse(r.www_authenticate().unwrap()).unwrap();
    assert!(c.stale);
    c.qop_auth = false;
    legacy.challenge = Some(c);
    let again = legacy.message("l-5", &mrq("L4", LEGACY, ALARM));
    legacy.send(&again).await;
    assert_eq!(legacy.recv(5).await.status(), Some(200));
    assert_eq!(legacy.mrs(10).await.0.snu, Snu::Ok);

    // Without qop, a device not set to single-use: refused (require_qop is the default).
    let mut plain = UdpDevice::new(server, TRACKER, PASSWORD).await;
    let m = plain.message("p-1", &mrq("P1", TRACKER, ALARM));
    plain.send(&m).await;
    let mut c = Challenge::parse(plain.recv(5).await.www_authenticate().unwrap()).unwrap();
    c.qop_auth = false;
    plain.challenge = Some(c);
    let m = plain.message("p-2", &mrq("P2", TRACKER, ALARM));
    plain.send(&m).await;
    assert_eq!(plain.recv(5).await.status(), Some(403));

    let keys: Vec<String> = env
        .stored_events()
        .into_iter()
        .map(|e| e.event.key)
        .collect();
    assert_eq!(keys, ["Q1", "Q2", "L2", "L4"], "nothing from a replay");
    assert!(
        env.alarms()
            .iter()
            .all(|a| a.state != vaka_core::alarm::AlarmState::Cancelled),
        "no alarm cancelled by a replayed reset"
    );
    env.stop().await;
}

/// With SHA-256 configured, an MD5 answer (a downgrade) is refused although its password is
/// right; the SHA-256 answer is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_md5_answer_is_refused_when_sha256_is_configured() {
    let env = Env::start_with(|c, _| c.digest_algorithm = "SHA-256".into()).await;
    let mut dev = UdpDevice::new(env.udp(), TRIGGER, PASSWORD).await;
    let m = dev.message("a-1", &mrq("A1", TRIGGER, ALARM));
    dev.send(&m).await;
    let c = Challenge::parse(dev.recv(5).await.www_authenticate().unwrap()).unwrap();
    assert_eq!(c.algorithm, DigestAlgorithm::Sha256);
    let mut md5 = c.clone();
    md5.algorithm = DigestAlgorithm::Md5;
    dev.challenge = Some(md5);
    let m = dev.message("a-2", &mrq("A2", TRIGGER, ALARM));
    assert!(m.authorization().unwrap().contains("algorithm=MD5"));
    dev.send(&m).await;
    assert_eq!(dev.recv(5).await.status(), Some(403), "downgrade refused");
    assert!(dev.silent(300).await);
    dev.challenge = Some(c);
    let m = dev.message("a-3", &mrq("A3", TRIGGER, ALARM));
    dev.send(&m).await;
    assert_eq!(dev.recv(5).await.status(), Some(200));
    assert_eq!(dev.mrs(10).await.0.snu, Snu::Ok);
    let keys: Vec<String> = env
        .stored_events()
        .into_iter()
        .map(|e| e.event.key)
        .collect();
    assert_eq!(keys, ["A3"]);
    env.stop().await;
}

/// Credentials computed for another Request-URI are refused (400) even with the right
/// password; the same URI written another way (RFC 3261 equivalence) is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_uri_other_than_the_request_uri_is_refused() {
    let env = Env::start().await;
    let server = env.udp();
    let mut dev = UdpDevice::new(server, TRIGGER, PASSWORD).await;
    let m = dev.message("u-1", &mrq("U1", TRIGGER, ALARM));
    dev.send(&m).await;
    let c = Challenge::parse(dev.recv(5).await.www_authenticate().unwrap()).unwrap();
    for (nc, uri, want) in [
        (1, format!("sip:other@{server}"), 400),
        (2, format!("sip:alarm@{server};x=1"), 200),
        (3, format!("SIP:alarm@{server}"), 200),
    ] {
        let mut m = dev.message(&format!("u-{nc}"), &mrq(&format!("U{nc}"), TRIGGER, ALARM));
        let a = authorize(&c, "MESSAGE", &uri, TRIGGER, PASSWORD, "cafe", nc + 100);
        m.set_header("Authorization", &a.to_header_value()).unwrap();
        dev.send(&m).await;
        assert_eq!(dev.recv(5).await.status(), Some(want), "{uri}");
        if want == 200 {
            dev.mrs(10).await;
        } else {
            assert!(dev.silent(300).await);
        }
    }
    let keys: Vec<String> = env
        .stored_events()
        .into_iter()
        .map(|e| e.event.key)
        .collect();
    assert_eq!(keys, ["U2", "U3"]);
    env.stop().await;
}

/// No amplification: every response to an unauthenticated request is at most as large as the
/// request; one that would be larger (a bare REGISTER, a bare OPTIONS) is not sent at all,
/// and optional headers (OPTIONS' Allow and Accept) are left out when they do not fit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_response_to_an_unauthenticated_request_is_larger_than_the_request() {
    let env = Env::start().await;
    let server = env.udp();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = sock.local_addr().unwrap();
    let head = |method: &str, n: u32, extra: &str| {
        format!(
            "{method} sip:alarm@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKamp{n}\r\n\
From: <sip:{TRIGGER}@{local}>;tag=a{n}\r\nTo: <sip:alarm@{server}>\r\nCall-ID: amp-{n}\r\n\
CSeq: 1 {method}\r\n{extra}"
        )
    };
    let body = mrq("AMP", TRIGGER, ALARM);
    // (what, request, answered: Some(expected) or None when either is right)
    let cases: Vec<(String, Vec<u8>, Option<bool>)> = vec![
        (
            "MESSAGE with <mrq>".into(),
            format!(
                "{}Content-Type: application/scaip+xml\r\nContent-Length: {}\r\n\r\n{body}",
                head("MESSAGE", 1, "Max-Forwards: 70\r\n"),
                body.len()
            )
            .into_bytes(),
            Some(true),
        ),
        (
            "MESSAGE in compact form".into(),
            format!(
                "MESSAGE sip:alarm@{server} SIP/2.0\r\nv: SIP/2.0/UDP {local};branch=z9hG4bKamp2\r\n\
f: <sip:{TRIGGER}@{local}>;tag=a2\r\nt: <sip:alarm@{server}>\r\ni: amp-2\r\nCSeq: 1 MESSAGE\r\n\
c: application/scaip+xml\r\nl: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
            None, // its headers grow to full names in the response: whatever fits

        ),
        ("bare REGISTER".into(), format!("{}\r\n", head("REGISTER", 3, "")).into_bytes(), Some(false)),
        ("bare OPTIONS".into(), format!("{}\r\n", head("OPTIONS", 4, "")).into_bytes(), Some(false)),
        (
            "OPTIONS".into(),
            format!("{}\r\n", head("OPTIONS", 5, "Max-Forwards: 70\r\nUser-Agent: SCAIP-device/1.0\r\n"))
                .into_bytes(),
            Some(true),
        ),
        (
            "SUBSCRIBE".into(),
            format!("{}\r\n", head("SUBSCRIBE", 6, "Max-Forwards: 70\r\nUser-Agent: SCAIP-device/1.0\r\n"))
                .into_bytes(),
            Some(true),
        ),
        (
            "MESSAGE with a wrong password".into(),
            {
                let c = Challenge {
                    realm: env.cfg.realm.clone(),
                    nonce: "0".repeat(44),
                    opaque: None,
                    algorithm: DigestAlgorithm::Md5,
                    qop_auth: true,
                    stale: false,
                };
                let a = authorize(&c, "MESSAGE", &format!("sip:alarm@{server}"), TRIGGER, "x", "c", 1);
                format!(
                    "{}Authorization: {}\r\nContent-Type: application/scaip+xml\r\nContent-Length: {}\r\n\r\n{body}",
                    head("MESSAGE", 7, ""),
                    a.to_header_value(),
                    body.len()
                )
                .into_bytes()
            },
            Some(true),
        ),
    ];
    let mut buf = vec![0u8; 65_536];
    for (what, request, answered) in &cases {
        sock.send_to(request, server).await.unwrap();
        let got = tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await;
        match got {
            Ok(Ok((n, _))) => {
                println!("{what}: {} bytes in, {n} bytes out", request.len());
                assert!(
                    n <= request.len(),
                    "{what}: {n} bytes out for {} in",
                    request.len()
                );
                assert_ne!(*answered, Some(false), "{what}: answered");
            }
            _ => {
                println!("{what}: {} bytes in, nothing out", request.len());
                assert_ne!(*answered, Some(true), "{what}: not answered");
            }
        }
    }
    env.stop().await;
}

/// The `<mrs>` goes to the request's source, never to a third party a Contact names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mrs_goes_to_the_source_never_to_a_contact_the_request_names() {
    let env = Env::start().await;
    let victim = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let victim_addr = victim.local_addr().unwrap();
    let mut dev = UdpDevice::new(env.udp(), TRIGGER, PASSWORD).await;
    let m = dev.message("c-1", &mrq("C1", TRIGGER, ALARM));
    dev.send(&m).await;
    dev.challenge = Some(Challenge::parse(dev.recv(5).await.www_authenticate().unwrap()).unwrap());
    let mut m = dev.message("c-2", &mrq("C2", TRIGGER, ALARM));
    m.set_header("Contact", &format!("<sip:{TRIGGER}@{victim_addr}>"))
        .unwrap();
    dev.send(&m).await;
    assert_eq!(dev.recv(5).await.status(), Some(200));
    let (mrs, _) = dev.mrs(10).await;
    assert_eq!((mrs.snu, mrs.reference.as_str()), (Snu::Ok, "C2"));
    let mut buf = [0u8; 2048];
    let to_victim =
        tokio::time::timeout(Duration::from_millis(1_500), victim.recv_from(&mut buf)).await;
    assert!(to_victim.is_err(), "nothing sent to the Contact's address");
    env.stop().await;
}
