//! The SCAIP front driven by Rust clients over real sockets: HOLD, not treated, busy,
//! malformed input, TLS, stream framing and limits, 513 for what is over the size limit,
//! `<mrs>` retransmission over UDP.
mod sip_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sip_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vaka_core::{CentreId, EventKind};
use vaka_router::RouterConfig;
use vaka_scaip::scaip::Snu;
use vaka_scaip::{Challenge, SipMessage};

const ALARM: &str = "<stc>0010</stc><pri>5</pri>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_router_gets_hold_and_the_resend_one_alarm() {
    let env = Env::start().await;
    env.gate.hold();
    let mut dev = UdpDevice::new(env.udp(), TRIGGER, PASSWORD).await;
    let body = mrq("H1", TRIGGER, ALARM);
    let t = Instant::now();
    let mrs = dev.exchange("hold-1", &body).await;
    assert_eq!(mrs.snu, Snu::Hold, "not durable within hold_after_ms");
    assert!(t.elapsed() >= Duration::from_millis(env.cfg.hold_after_ms));
    assert_eq!(mrs.reference, "H1");
    // The device resends while the store is still slow: HOLD again, no second event queued.
    let mrs = dev.exchange("hold-2", &body).await;
    assert_eq!(mrs.snu, Snu::Hold);
    env.gate.release();
    until(10, || env.stored_events().len() == 1).await;
    // The next resend is answered from the durable original.
    let mrs = dev.exchange("hold-3", &body).await;
    assert_eq!(mrs.snu, Snu::Ok);
    assert_eq!(env.stored_events().len(), 1, "one event");
    assert_eq!(env.alarms().len(), 1, "one alarm");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reachable_centre_gets_snu_5_heartbeat_still_ok() {
    let env = Env::start().await;
    env.presence.disconnected(&CentreId::new(CENTRE));
    let mut dev = UdpDevice::new(env.udp(), TRIGGER, PASSWORD).await;
    let mrs = dev.exchange("nc-1", &mrq("N1", TRIGGER, ALARM)).await;
    assert_eq!(mrs.snu, Snu::NotTreated);
    assert!(mrs.ste.is_some());
    assert_eq!(
        env.alarms().len(),
        1,
        "stored and offered once a centre connects"
    );
    // A heartbeat needs no centre: OK.
    let mrs = dev
        .exchange("nc-2", &mrq("N2", TRIGGER, "<mty>PI</mty>"))
        .await;
    assert_eq!(mrs.snu, Snu::Ok);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_router_lane_gets_snu_6_at_once() {
    let env = Env::start_with(|c, rc: &mut RouterConfig| {
        c.hold_after_ms = 3_000;
        rc.shards = 1;
        rc.alarm_queue = 1;
        rc.max_inflight = 1;
        rc.max_batch = 1;
    })
    .await;
    env.gate.hold();
    // First alarm: its batch waits at the gate. Second: waits in the lane (capacity 1).
    let mut a = UdpDevice::new(env.udp(), TRIGGER, PASSWORD).await;
    assert_eq!(
        a.authenticated("b-1", &mrq("B1", TRIGGER, ALARM)).await,
        200
    );
    until(5, || env.gate.blocked() == 1).await;
    let mut b = UdpDevice::new(env.udp(), TRACKER, PASSWORD).await;
    assert_eq!(
        b.authenticated("b-2", &mrq("B2", TRACKER, ALARM)).await,
        200
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Third: the lane is full -> busy, answered without waiting for the hold window.
    let mut c = UdpDevice::new(env.udp(), GATEWAY, PASSWORD).await;
    let t = Instant::now();
    let mrs = c.exchange("b-3", &mrq("B3", GATEWAY, ALARM)).await;
    assert_eq!(mrs.snu, Snu::Busy);
    assert!(
        t.elapsed() < Duration::from_millis(1_500),
        "busy is immediate"
    );
    env.gate.release();
    assert_eq!(a.mrs(10).await.0.snu, Snu::Ok);
    assert_eq!(b.mrs(10).await.0.snu, Snu::Ok);
    let keys: Vec<String> = env
        .stored_events()
        .into_iter()
        .map(|e| e.event.key)
        .collect();
    assert!(
        !keys.contains(&"B3".to_string()),
        "the busy one was not stored"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_pending_answers_get_snu_6() {
    let env = Env::start_with(|c, _| c.max_pending = 1).await;
    env.gate.hold();
    let mut a = UdpDevice::new(env.udp(), TRIGGER, PASSWORD).await;
    assert_eq!(
        a.authenticated("p-1", &mrq("P1", TRIGGER, ALARM)).await,
        200
    );
    let mut b = UdpDevice::new(env.udp(), TRACKER, PASSWORD).await;
    let mrs = b.exchange("p-2", &mrq("P2", TRACKER, ALARM)).await;
    assert_eq!((mrs.snu, mrs.reference.as_str()), (Snu::Busy, "P2"));
    env.gate.release();
    assert_eq!(a.mrs(10).await.0.snu, Snu::Ok);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_costs_only_itself() {
    let env = Env::start().await;
    let mut dev = UdpDevice::new(env.udp(), TRIGGER, PASSWORD).await;
    // Garbage and a SIP message without mandatory headers: dropped, nothing answered.
    dev.send_raw(b"\x00\xffnot sip at all\r\n\r\n").await;
    dev.send_raw(b"MESSAGE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n")
        .await;
    assert!(dev.silent(300).await);
    // An alarm whose position is malformed keeps the alarm and drops the position.
    let mrs = dev
        .exchange(
            "m-1",
            &mrq("G1", TRIGGER, "<stc>0010</stc><lge><geo>95,200</geo></lge>"),
        )
        .await;
    assert_eq!(mrs.snu, Snu::Ok);
    let events = env.stored_events();
    assert_eq!(events.len(), 1);
    assert!(events[0].event.fix.is_none());
    assert!(matches!(events[0].event.kind, EventKind::Alarm(_)));
    // A good position becomes the event's fix.
    let mrs = dev
        .exchange(
            "m-2",
            &mrq(
                "G2",
                TRIGGER,
                "<mty>IN</mty><lge><geo>57.7089,11.9746</geo></lge>",
            ),
        )
        .await;
    assert_eq!(mrs.snu, Snu::Ok);
    let ev = env
        .stored_events()
        .into_iter()
        .find(|e| e.event.key == "G2")
        .unwrap();
    assert_eq!(ev.event.kind, EventKind::Position);
    assert_eq!(
        ev.event.fix.map(|f| (f.lat, f.lon)),
        Some((57.7089, 11.9746))
    );
    // Wrong content type: 415, no answer task.
    let mut m = dev.message("m-3", "hello");
    m.set_body("text/plain", "hello").unwrap();
    dev.send(&m).await;
    assert_eq!(dev.recv(5).await.status(), Some(415));
    // The sender may not speak for another tenant's device: snu 3, nothing stored.
    let mrs = dev.exchange("m-4", &mrq("F1", "200001", ALARM)).await;
    assert_eq!(mrs.snu, Snu::WrongData);
    assert_eq!(env.stored_events().len(), 2);
    // Other methods: OPTIONS 200 without credentials, anything else 405 (the requests carry
    // what real ones do: a bare one is smaller than its response and gets none, invariant 13).
    for (method, code) in [("OPTIONS", 200), ("SUBSCRIBE", 405)] {
        let raw = format!(
            "{method} sip:alarm@{0} SIP/2.0\r\nVia: SIP/2.0/UDP {1};branch=z9hG4bK{method}\r\n\
Max-Forwards: 70\r\nFrom: <sip:x@{1}>;tag=1\r\nTo: <sip:alarm@{0}>\r\nCall-ID: o-{method}\r\n\
CSeq: 1 {method}\r\nUser-Agent: SCAIP-device/1.0\r\n\r\n",
            env.udp(),
            dev.local()
        );
        dev.send_raw(raw.as_bytes()).await;
        assert_eq!(dev.recv(5).await.status(), Some(code), "{method}");
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_may_send_for_its_devices() {
    let env = Env::start().await;
    let mut gw = UdpDevice::new(env.udp(), GATEWAY, PASSWORD).await;
    let mrs = gw.exchange("gw-1", &mrq("GW1", TRIGGER, ALARM)).await;
    assert_eq!(mrs.snu, Snu::Ok);
    let ev = env.stored_events().pop().unwrap().event;
    assert_eq!(ev.device.device.as_str(), TRIGGER);
    let mrs = gw.exchange("gw-2", &mrq("GW2", TRACKER, ALARM)).await;
    assert_eq!(mrs.snu, Snu::WrongData, "not in its gateway list");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_mrs_is_retransmitted_over_udp_until_answered() {
    let env = Env::start().await;
    let mut dev = UdpDevice::new(env.udp(), TRIGGER, PASSWORD).await;
    assert_eq!(
        dev.authenticated("rt-1", &mrq("T1", TRIGGER, ALARM)).await,
        200
    );
    let first = dev.recv(10).await;
    let t = Instant::now();
    let again = dev.recv(5).await;
    assert_eq!(
        again.to_bytes(),
        first.to_bytes(),
        "same request again (Timer E)"
    );
    assert!(t.elapsed() >= Duration::from_millis(400));
    assert_eq!(
        first.call_id(),
        "rt-1",
        "the <mrs> reuses the request's Call-ID"
    );
    assert_ne!(first.from().tag(), Some("devtag"));
    let ok = SipMessage::response(&again, 200, "OK", "dev");
    dev.send_raw(&ok.to_bytes()).await;
    assert!(dev.silent(1_500).await, "no more retransmissions after 200");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_nonce_and_replay() {
    let env = Env::start_with(|c, _| c.nonce_lifetime_secs = 1).await;
    let mut dev = UdpDevice::new(env.udp(), TRIGGER, PASSWORD).await;
    assert_eq!(
        dev.exchange("s-1", &mrq("S1", TRIGGER, "<mty>PI</mty>"))
            .await
            .snu,
        Snu::Ok
    );
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    // Right password, expired nonce: 401 with stale=true.
    let m = dev.message("s-2", &mrq("S2", TRIGGER, "<mty>PI</mty>"));
    dev.send(&m).await;
    let r = dev.recv(5).await;
    assert_eq!(r.status(), Some(401));
    assert!(
        Challenge::parse(r.www_authenticate().unwrap())
            .unwrap()
            .stale
    );
    // A captured request replayed as a new transaction (same nonce and nc): not accepted, a fresh
    // challenge (stale=true), no second event.
    dev.challenge = Some(Challenge::parse(r.www_authenticate().unwrap()).unwrap());
    let m = dev.message("s-3", &mrq("S3", TRIGGER, "<mty>PI</mty>"));
    dev.send(&m).await;
    assert_eq!(dev.recv(5).await.status(), Some(200));
    dev.mrs(10).await;
    let replay = String::from_utf8(m.to_bytes())
        .unwrap()
        .replace("branch=z9hG4bK", "branch=z9hG4bKreplay");
    let events = env.stored_events().len();
    dev.send_raw(replay.as_bytes()).await;
    let r = dev.recv(5).await;
    assert_eq!(r.status(), Some(401));
    assert!(
        Challenge::parse(r.www_authenticate().unwrap())
            .unwrap()
            .stale
    );
    assert!(dev.silent(300).await, "no <mrs> for a replay");
    assert_eq!(env.stored_events().len(), events);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alarm_exchange() {
    let env = Env::start().await;
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(env.server_ca()).unwrap();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(env.tls()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let io = connector.connect(name, tcp).await.unwrap();
    let mut dev = StreamDevice {
        io,
        buf: Vec::new(),
        transport: "TLS",
    };
    let mrs = dev.exchange(&mrq("TLS1", TRIGGER, ALARM)).await;
    assert_eq!((mrs.snu, mrs.reference.as_str()), (Snu::Ok, "TLS1"));
    assert_eq!(env.alarms().len(), 1);
    // Plain TCP on the TLS port is a failed handshake, not a crash.
    let mut plain = TcpStream::connect(env.tls()).await.unwrap();
    plain
        .write_all(b"OPTIONS sip:x SIP/2.0\r\n\r\n")
        .await
        .unwrap();
    let mut b = [0u8; 64];
    let n = within(10, plain.read(&mut b)).await.unwrap_or(0);
    assert!(n == 0 || !b[..n].starts_with(b"SIP/2.0"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_framing_keepalive_and_limits() {
    let env = Env::start_with(|c, _| {
        c.max_connections = 2;
        c.max_message_bytes = 2_048;
    })
    .await;
    let io = TcpStream::connect(env.tcp()).await.unwrap();
    let mut dev = StreamDevice {
        io,
        buf: Vec::new(),
        transport: "TCP",
    };
    // RFC 5626 ping gets a pong; a message split across writes is reassembled.
    dev.io.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    within(5, dev.io.read_exact(&mut pong)).await.unwrap();
    assert_eq!(&pong, b"\r\n");
    let m = dev.message(1, &mrq("F1", TRIGGER, ALARM), None);
    let bytes = m.to_bytes();
    let (a, b) = bytes.split_at(bytes.len() / 2);
    dev.io.write_all(a).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    dev.io.write_all(b).await.unwrap();
    assert_eq!(dev.recv().await.status(), Some(401));
    let mrs = dev.exchange(&mrq("F2", TRIGGER, ALARM)).await;
    assert_eq!(mrs.snu, Snu::Ok);

    // Connection limit: two are served, a third is closed at once.
    let _second = TcpStream::connect(env.tcp()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(env.tcp()).await.unwrap();
    let mut b = [0u8; 16];
    assert_eq!(
        within(5, third.read(&mut b)).await.unwrap_or(0),
        0,
        "refused"
    );

    // A message over max_message_bytes closes its connection; the others go on.
    let huge = format!(
        "MESSAGE sip:x SIP/2.0\r\nContent-Length: 100000\r\n\r\n{}",
        "x".repeat(3000)
    );
    dev.io.write_all(huge.as_bytes()).await.unwrap();
    // Closed (FIN, or RST if bytes were left unread): the read ends either way, no answer.
    let mut rest = Vec::new();
    let _ = within(5, dev.io.read_to_end(&mut rest)).await;
    assert!(
        !String::from_utf8_lossy(&rest).contains("SIP/2.0 "),
        "no answer to it"
    );
    let mut udp = UdpDevice::new(env.udp(), TRIGGER, PASSWORD).await;
    assert_eq!(
        udp.exchange("after", &mrq("F3", TRIGGER, ALARM)).await.snu,
        Snu::Ok
    );
    env.stop().await;
}

/// An `<mrq>` of about 52 KB: over the default `sip.max_message_bytes` (16 KiB), within a
/// datagram.
fn oversized_mrq(reference: &str) -> String {
    let pad = format!("<txt>{}</txt>", "x".repeat(52_000));
    mrq(reference, TRIGGER, &format!("{ALARM}{pad}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_gets_513_over_udp() {
    let env = Env::start().await;
    let mut dev = UdpDevice::new(env.udp(), TRIGGER, PASSWORD).await;
    // Without credentials, and with them: 513 from the headers alone (no challenge, no event).
    let big = oversized_mrq("L1");
    for attempt in 0..2 {
        let m = dev.message("big-1", &big);
        let bytes = m.to_bytes();
        assert!(bytes.len() > 52_000 && bytes.len() < 65_000);
        dev.send_raw(&bytes).await;
        let r = dev.recv(5).await;
        assert_eq!(r.status(), Some(513), "attempt {attempt}");
        assert_eq!(r.call_id(), "big-1");
        assert_eq!(r.cseq().seq, m.cseq().seq);
        assert!(r.to_bytes().len() < bytes.len());
        if attempt == 0 {
            // Get credentials for the second attempt.
            assert_eq!(
                dev.authenticated("small", &mrq("S0", TRIGGER, ALARM)).await,
                200
            );
            assert_eq!(dev.mrs(10).await.0.snu, Snu::Ok);
        }
    }
    assert!(env.stored_events().iter().all(|e| e.event.key != "L1"));
    // A response too large is never answered.
    let mut resp = SipMessage::response(&dev.message("big-2", "x"), 200, "OK", "t");
    resp.set_body("text/plain", "y".repeat(20_000)).unwrap();
    dev.send(&resp).await;
    assert!(dev.silent(300).await);
    // The next normal message is served.
    let mrs = dev.exchange("after", &mrq("S1", TRIGGER, ALARM)).await;
    assert_eq!(mrs.snu, Snu::Ok);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_gets_513_over_tcp_then_the_connection_closes() {
    let env = Env::start().await;
    let mut dev = StreamDevice {
        io: TcpStream::connect(env.tcp()).await.unwrap(),
        buf: Vec::new(),
        transport: "TCP",
    };
    let m = dev.message(1, &oversized_mrq("L2"), None);
    dev.send(&m).await;
    let r = dev.recv().await;
    assert_eq!(r.status(), Some(513));
    assert_eq!(r.cseq().seq, 1);
    // Then the end of the stream: it cannot be resynchronised past a body not read.
    let mut rest = Vec::new();
    within(5, dev.io.read_to_end(&mut rest)).await.unwrap();
    assert!(
        rest.is_empty() && dev.buf.is_empty(),
        "nothing after the 513"
    );
    // A new connection is served.
    let mut dev = StreamDevice {
        io: TcpStream::connect(env.tcp()).await.unwrap(),
        buf: Vec::new(),
        transport: "TCP",
    };
    assert_eq!(dev.exchange(&mrq("S2", TRIGGER, ALARM)).await.snu, Snu::Ok);
    assert!(env.stored_events().iter().all(|e| e.event.key != "L2"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_pending_answers_go_out() {
    let env = Env::start_with(|c, _| c.hold_after_ms = 5_000).await;
    env.gate.hold();
    let mut dev = UdpDevice::new(env.udp(), TRIGGER, PASSWORD).await;
    assert_eq!(
        dev.authenticated("sd-1", &mrq("D1", TRIGGER, ALARM)).await,
        200
    );
    until(5, || env.gate.blocked() == 1).await;
    let gate = env.gate.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        gate.release();
    });
    let server = &env.server;
    let (_, (mrs, _)) = tokio::join!(server.shutdown(), dev.mrs(10));
    assert_eq!(
        mrs.snu,
        Snu::Ok,
        "the durable answer went out during shutdown"
    );
    env.router.shutdown().await;
    env.store.close().unwrap();
}

/// Reads until the peer closes (or 10 s); how long that took.
async fn closed_after(io: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut b = [0u8; 512];
    loop {
        match within(10, io.read(&mut b)).await {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => continue,
        }
    }
}

/// Invariant 13 on SIP over TCP: strangers get half the connections and must keep talking; a
/// trickled request is cut at the header timeout; an authenticated device gets in and is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_get_half_the_connections_and_a_trickle_is_cut_at_the_header_timeout() {
    let env = Env::start_with(|c, _| {
        c.max_connections = 4;
        c.header_timeout_secs = 1;
    })
    .await;
    // Two idle strangers fill the unauthenticated share: a third is refused at once.
    let mut a = TcpStream::connect(env.tcp()).await.unwrap();
    let mut b = TcpStream::connect(env.tcp()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = TcpStream::connect(env.tcp()).await.unwrap();
    assert!(closed_after(&mut c).await < Duration::from_millis(500));
    // Silent strangers are closed after two header timeouts, not the idle timeout (600 s).
    let t = closed_after(&mut a).await;
    assert!(t < Duration::from_secs(3), "idle stranger kept {t:?}");
    closed_after(&mut b).await;

    // A device authenticates and leaves the stranger share: served, and stays.
    let io = TcpStream::connect(env.tcp()).await.unwrap();
    let mut dev = StreamDevice {
        io,
        buf: Vec::new(),
        transport: "TCP",
    };
    assert_eq!(dev.exchange(&mrq("H1", TRIGGER, ALARM)).await.snu, Snu::Ok);

    // A trickle: a byte every 200 ms never lets the idle timer fire, the header timeout ends it.
    let mut trickle = TcpStream::connect(env.tcp()).await.unwrap();
    let trickler = tokio::spawn(async move {
        let started = Instant::now();
        for byte in b"MESSAGE sip:100001@vaka SIP/2.0\r\nVia: SIP/2.0/TCP x\r\n".iter() {
            if trickle.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let _ = trickle.write_all(b"x").await;
        (started.elapsed(), closed_after(&mut trickle).await)
    });
    let (wrote_for, _) = within(15, trickler).await.unwrap();
    assert!(
        wrote_for < Duration::from_secs(3),
        "trickle kept open {wrote_for:?}"
    );

    // The authenticated device outlived all of it.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(dev.exchange(&mrq("H2", TRIGGER, ALARM)).await.snu, Snu::Ok);
    env.stop().await;
}
