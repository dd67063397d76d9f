//! SIGKILL storm under mixed load (issue 22): `vaka serve` is killed at random moments while
//! QUIC devices (alarms, technical alarms, positions), SCAIP devices over TCP and over UDP,
//! DC-09 panels over TCP and over UDP and a gRPC centre (acknowledging, receipting, accepting
//! and closing every offer) keep working, and restarted each time. Every device resends what
//! was unanswered when the engine died, under the same key. At the end:
//! - every event any device saw acknowledged is stored (invariant 1); an alarm-lane event
//!   (alarm, technical) exactly once (invariant 2: resends are recognised); a telemetry-lane
//!   event (position, heartbeat, test report) may be stored again by a resend, by design: the
//!   router keeps idempotency entries for the alarm lane only;
//! - no two alarms were opened by one device message (same device and reference);
//! - every alarm the store holds was offered to the centre (invariant 3, 4).
//!
//! A short run (10 kills) is part of the suite; `VAKA_KILLS=100 cargo test --workspace --test
//! kill_storm -- --nocapture` is the full one (figures in BENCHMARKS.md).
#[path = "support/binary.rs"]
mod binary;

use binary::{free_tcp_port, free_udp_port, vaka_bin};
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use vaka_centre::console::{self, ClientTls};
use vaka_centre::pb::{self, centre_message::Msg as In, server_message::Msg as Out};
use vaka_core::Alarm;
use vaka_device::{events, Client, DeviceConfig};
use vaka_scaip::auth::authorize;
use vaka_scaip::scaip::{Mrs, Snu};
use vaka_scaip::sip::NewRequest;
use vaka_scaip::{find_message, Challenge, Frame, SipMessage};
use vaka_store::{
    Backend, Cf, GroupConfig, RecoverOptions, RocksBackend, RocksConfig, Store, StoredEvent,
};

const PASSWORD: &str = "storm-pass";
const CENTRE_TOKEN: &str = "token-of-the-storm-centre";
const QUIC: [&str; 3] = ["q0", "q1", "q2"];
const SIP_TCP: [&str; 2] = ["500001", "500002"];
const SIP_UDP: [&str; 2] = ["500003", "500004"];
const DC09_TCP: &str = "p0";
const DC09_UDP: &str = "p1";

struct Ports {
    quic: u16,
    sip: u16,
    dc09_udp: u16,
    dc09_tcp: u16,
    grpc: u16,
}

fn write_config(dir: &Path, p: &Ports) -> PathBuf {
    let certs = dir.join("certs");
    let mut text = format!(
        "[server]\ndata_dir = \"{data}\"\nlog_level = \"error\"\nshutdown_timeout_secs = 5\n\
         [listen]\nquic = \"127.0.0.1:{quic}\"\nsip_udp = \"127.0.0.1:{sip}\"\n\
         sip_tcp = \"127.0.0.1:{sip}\"\nhttp = \"127.0.0.1:{http}\"\ngrpc = \"127.0.0.1:{grpc}\"\n\
         [router]\nshards = 2\nreconnect_grace_secs = 5\n\
         [sip]\nudp = true\ntcp = true\ntls = false\n\
         [dc09]\nudp = \"127.0.0.1:{dudp}\"\ntcp = \"127.0.0.1:{dtcp}\"\n\
         [quic]\nserver_cert = \"{c}/server.pem\"\nserver_key = \"{c}/server-key.pem\"\n\
         tenant_cas = {{ t = \"{c}/t/ca.pem\" }}\n\
         [[tenants]]\nid = \"t\"\ncentres = [\"c1\"]\n\
         receipt_deadline_secs = 600\naccept_deadline_secs = 600\n\
         [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"{CENTRE_TOKEN}\"\n",
        data = dir.join("data").display(),
        quic = p.quic,
        sip = p.sip,
        http = free_tcp_port(),
        grpc = p.grpc,
        dudp = p.dc09_udp,
        dtcp = p.dc09_tcp,
        c = certs.display(),
    );
    for d in QUIC {
        text += &format!("[[devices]]\ntenant = \"t\"\nid = \"{d}\"\ntype = \"0051\"\n");
    }
    for d in SIP_TCP.iter().chain(&SIP_UDP) {
        text += &format!(
            "[[devices]]\ntenant = \"t\"\nid = \"{d}\"\ntype = \"0003\"\npassword = \"{PASSWORD}\"\n"
        );
    }
    for (d, acct) in [(DC09_TCP, "7001"), (DC09_UDP, "7002")] {
        text += &format!(
            "[[devices]]\ntenant = \"t\"\nid = \"{d}\"\ntype = \"0003\"\ndc09_account = \"{acct}\"\n"
        );
    }
    let path = dir.join("vaka.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start_server(config: &Path) -> Child {
    Command::new(vaka_bin())
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start vaka serve")
}

/// What devices saw acknowledged: (device, key).
type Acks = Arc<Mutex<Vec<(String, String)>>>;

fn ack(acks: &Acks, device: &str, key: String) {
    acks.lock().unwrap().push((device.to_owned(), key));
}

// ---- QUIC devices ----

fn quic_config(dir: &Path, port: u16, device: &str) -> DeviceConfig {
    let c = dir.join("certs");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut cfg = DeviceConfig::from_pem_files(
        addr,
        c.join("server-ca.pem"),
        c.join(format!("t/{device}.pem")),
        c.join(format!("t/{device}-key.pem")),
    )
    .unwrap();
    cfg.reconnect_min = Duration::from_millis(50);
    cfg.reconnect_max = Duration::from_millis(300);
    cfg.connect_timeout = Duration::from_secs(2);
    cfg.idle_timeout = Duration::from_secs(2);
    cfg.keep_alive = Some(Duration::from_millis(500));
    cfg
}

async fn quic_device(cfg: DeviceConfig, device: &'static str, acks: Acks, stop: Arc<AtomicBool>) {
    let client = loop {
        match Client::connect(cfg.clone()).await {
            Ok(c) => break c,
            Err(e) if !e.is_fatal() => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("{device}: {e}"),
        }
    };
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut batch = Vec::new();
        for _ in 0..4 {
            let key = format!("{device}-{n}");
            let ev = match n % 4 {
                0 => events::alarm(key.clone(), "0010", 5),
                1 => events::technical(key.clone(), "0301", n % 8 == 1),
                _ => {
                    let lat = 57.70 + (n as f64) * 1e-5;
                    events::position(key.clone(), vaka_now_ms(), lat, 11.97, Some(10.0))
                }
            };
            n += 1;
            batch.push((key, ev));
        }
        let keys: Vec<String> = batch.iter().map(|b| b.0.clone()).collect();
        let replies = client
            .submit(batch.into_iter().map(|b| b.1).collect())
            .await
            .expect("submit");
        for (key, r) in keys.into_iter().zip(replies) {
            let reply = r.await.unwrap_or_else(|e| panic!("{device} {key}: {e}"));
            assert!(
                matches!(
                    reply.status(),
                    pb_device::Status::Ok | pb_device::Status::NotTreated
                ),
                "{device} {key}: {:?} {}",
                reply.status(),
                reply.reason
            );
            ack(&acks, device, key);
        }
    }
    client.close().await;
}

use vaka_device::pb as pb_device;

fn vaka_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// ---- SCAIP devices ----

fn mrq(reference: &str, cid: &str, alarm: bool) -> String {
    let mty = if alarm {
        "<mty>ME</mty><stc>0010</stc>"
    } else {
        "<mty>PI</mty>"
    };
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><mrq><ref>{reference}</ref><cid>{cid}</cid><dty>0003</dty>{mty}</mrq>")
}

struct Sip {
    device: &'static str,
    server: SocketAddr,
    transport: &'static str,
    cseq: u32,
    nc: u32,
    challenge: Option<Challenge>,
}

impl Sip {
    fn request(&mut self, local: SocketAddr, call_id: &str, body: &str) -> Vec<u8> {
        self.cseq += 1;
        let uri = format!("sip:alarm@{}", self.server);
        let mut m = NewRequest {
            request_uri: &uri,
            transport: self.transport,
            sent_by: &local.to_string(),
            branch: &format!("z9hG4bK{}x{}", self.cseq, rand::random::<u32>()),
            from_uri: &format!("sip:{}@{}", self.device, local.ip()),
            from_tag: "storm",
            to_uri: &uri,
            call_id,
            cseq: self.cseq,
            ..NewRequest::default()
        }
        .scaip_message(body)
        .unwrap();
        if let Some(c) = &self.challenge {
            self.nc += 1;
            let a = authorize(c, "MESSAGE", &uri, self.device, PASSWORD, "cafe", self.nc);
            m.push_header("Authorization", &a.to_header_value())
                .unwrap();
        }
        m.to_bytes()
    }
}

/// One `<mrq>` over a TCP connection until its `<mrs>`: `Ok(snu)`, or `Err` to reconnect.
async fn sip_tcp_once(
    s: &mut Sip,
    conn: &mut TcpStream,
    buf: &mut Vec<u8>,
    call_id: &str,
    body: &str,
) -> Result<Snu, String> {
    let local = conn.local_addr().map_err(|e| e.to_string())?;
    let req = s.request(local, call_id, body);
    conn.write_all(&req).await.map_err(|e| e.to_string())?;
    let mut challenged = false;
    loop {
        let m = loop {
            match find_message(buf, 65_536).map_err(|e| format!("{e:?}"))? {
                Frame::Message(n) => {
                    let m = SipMessage::parse(&buf[..n]).map_err(|e| format!("{e:?}"))?;
                    buf.drain(..n);
                    break m;
                }
                Frame::KeepAlive(n) => {
                    buf.drain(..n);
                }
                Frame::Incomplete => {
                    let mut chunk = [0u8; 4096];
                    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut chunk))
                        .await
                        .map_err(|_| "timeout".to_owned())?
                        .map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Err("closed".into());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
        };
        if m.is_request() {
            let ok = SipMessage::response(&m, 200, "OK", "storm");
            conn.write_all(&ok.to_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mrs = Mrs::parse(m.body_str().unwrap_or("")).map_err(|e| format!("{e:?}"))?;
            return Ok(mrs.snu);
        }
        match m.status() {
            Some(401) if !challenged => {
                challenged = true;
                s.challenge = Challenge::parse(m.www_authenticate().unwrap_or("")).ok();
                let req = s.request(local, call_id, body);
                conn.write_all(&req).await.map_err(|e| e.to_string())?;
            }
            Some(200) => {}
            other => return Err(format!("status {other:?}")),
        }
    }
}

async fn sip_tcp_device(
    device: &'static str,
    server: SocketAddr,
    acks: Acks,
    stop: Arc<AtomicBool>,
) {
    let mut s = Sip {
        device,
        server,
        transport: "TCP",
        cseq: 0,
        nc: 0,
        challenge: None,
    };
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let reference = format!("{device}x{n}"); // SCAIP: 1-16 alphanumerics
        let body = mrq(&reference, device, n.is_multiple_of(3));
        loop {
            if conn.is_none() {
                match TcpStream::connect(server).await {
                    Ok(c) => {
                        conn = Some(c);
                        buf.clear();
                    }
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
            }
            let c = conn.as_mut().unwrap();
            match sip_tcp_once(&mut s, c, &mut buf, &format!("call-{reference}"), &body).await {
                Ok(Snu::Ok | Snu::NotTreated) => break,
                Ok(Snu::Hold | Snu::Busy) => tokio::time::sleep(Duration::from_millis(200)).await,
                Ok(other) => panic!("{device} {reference}: snu {other:?}"),
                Err(_) => {
                    conn = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        ack(&acks, device, reference);
        n += 1;
    }
}

/// One `<mrq>` over UDP until its `<mrs>` (the request retransmitted every 500 ms).
async fn sip_udp_once(
    s: &mut Sip,
    sock: &UdpSocket,
    call_id: &str,
    body: &str,
) -> Result<Snu, String> {
    let local = sock.local_addr().unwrap();
    let mut req = s.request(local, call_id, body);
    let mut challenged = false;
    let until = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 65_536];
    sock.send_to(&req, s.server)
        .await
        .map_err(|e| e.to_string())?;
    loop {
        if Instant::now() > until {
            return Err("timeout".into());
        }
        let got = tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await;
        let Ok(Ok((len, _))) = got else {
            let _ = sock.send_to(&req, s.server).await;
            continue;
        };
        let Ok(m) = SipMessage::parse(&buf[..len]) else {
            continue;
        };
        if m.is_request() {
            let ok = SipMessage::response(&m, 200, "OK", "storm");
            let _ = sock.send_to(&ok.to_bytes(), s.server).await;
            let Ok(mrs) = Mrs::parse(m.body_str().unwrap_or("")) else {
                continue;
            };
            if mrs.reference == body_ref(body) {
                return Ok(mrs.snu);
            }
            continue; // a late <mrs> of an earlier request, retransmitted
        }
        match m.status() {
            Some(401) if !challenged => {
                challenged = true;
                s.challenge = Challenge::parse(m.www_authenticate().unwrap_or("")).ok();
                req = s.request(local, call_id, body);
                let _ = sock.send_to(&req, s.server).await;
            }
            Some(200) | Some(401) => {}
            other => return Err(format!("status {other:?}")),
        }
    }
}

fn body_ref(body: &str) -> &str {
    let start = body.find("<ref>").map_or(0, |i| i + 5);
    let end = body[start..].find("</ref>").map_or(start, |i| start + i);
    &body[start..end]
}

async fn sip_udp_device(
    device: &'static str,
    server: SocketAddr,
    acks: Acks,
    stop: Arc<AtomicBool>,
) {
    let mut s = Sip {
        device,
        server,
        transport: "UDP",
        cseq: 0,
        nc: 0,
        challenge: None,
    };
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let reference = format!("{device}x{n}"); // SCAIP: 1-16 alphanumerics
        let body = mrq(&reference, device, n.is_multiple_of(3));
        loop {
            match sip_udp_once(&mut s, &sock, &format!("call-{reference}"), &body).await {
                Ok(Snu::Ok | Snu::NotTreated) => break,
                Ok(Snu::Hold | Snu::Busy) | Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Ok(other) => panic!("{device} {reference}: snu {other:?}"),
            }
        }
        ack(&acks, device, reference);
        n += 1;
    }
}

// ---- DC-09 panels ----

fn dc09_frame(account: &str, seq: u16, n: u64) -> Vec<u8> {
    use vaka_dc09::{Account, Header, HexId, Message, Seq, Token};
    let header = Header {
        token: Token::SiaDcs,
        encrypted: false,
        seq: Seq::new(seq).unwrap(),
        receiver: None,
        line: HexId::new("0"),
        account: Account::new(account).unwrap(),
    };
    // Alternating alarm and test report; the zone makes every message's data its own.
    let code = if n.is_multiple_of(2) { "BA" } else { "RP" };
    let data = format!("#{account}|N{code}{:04}", n % 10_000);
    Message::new(header, data, Vec::new(), None)
        .unwrap()
        .encode(None, &[0; 16])
        .unwrap()
}

/// A panel sending until ACKed, resending the same frame. It records the frame it saw ACKed;
/// the check finds stored events by their raw bytes (the front keeps the frame with each).
async fn dc09_panel(
    device: &'static str,
    account: &'static str,
    tcp: bool,
    addr: SocketAddr,
    acks: Acks,
    stop: Arc<AtomicBool>,
) {
    let mut conn: Option<TcpStream> = None;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let seq = (n % 9999 + 1) as u16;
        let frame = dc09_frame(account, seq, n);
        loop {
            let answer = if tcp {
                if conn.is_none() {
                    conn = TcpStream::connect(addr).await.ok();
                }
                match conn.as_mut() {
                    None => None,
                    Some(c) => {
                        let mut buf = [0u8; 256];
                        let r = async {
                            c.write_all(&frame).await.ok()?;
                            let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
                                .await
                                .ok()?
                                .ok()?;
                            (n > 0).then(|| buf[..n].to_vec())
                        }
                        .await;
                        if r.is_none() {
                            conn = None;
                        }
                        r
                    }
                }
            } else {
                let mut buf = [0u8; 256];
                let _ = sock.send_to(&frame, addr).await;
                match tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf)).await {
                    Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
                    _ => None,
                }
            };
            match answer {
                Some(a) if String::from_utf8_lossy(&a).contains("\"ACK\"") => break,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        ack(&acks, device, hex(&frame));
        n += 1;
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---- the centre ----

/// Connects (again and again), resumes after its last acknowledged cursor, and for every offer:
/// records the alarm, acknowledges the cursor, receipts, accepts and closes it.
async fn centre(grpc: SocketAddr, offered: Arc<Mutex<HashSet<u64>>>, stop: Arc<AtomicBool>) {
    let mut request = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut client) =
            console::connect(&grpc.to_string(), Some(CENTRE_TOKEN), ClientTls::default()).await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (mut up, rx) = mpsc::channel(64);
        let hello = In::Hello(pb::Hello {
            resume_after: None,
            client: "kill-storm".into(),
        });
        if up
            .send(pb::CentreMessage { msg: Some(hello) })
            .await
            .is_err()
        {
            continue;
        }
        let Ok(resp) = client.session(rx).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut down = resp.into_inner();
        loop {
            let next = tokio::time::timeout(Duration::from_millis(500), down.next()).await;
            let m = match next {
                Err(_) if stop.load(Ordering::Relaxed) => return,
                Err(_) => continue,
                Ok(Some(Ok(m))) => m,
                Ok(_) => break, // stream ended or failed: reconnect
            };
            let Some(Out::Offer(o)) = m.msg else {
                if let Some(Out::Update(u)) = m.msg {
                    let _ = up
                        .send(pb::CentreMessage {
                            msg: Some(In::Ack(pb::Ack { cursor: u.cursor })),
                        })
                        .await;
                }
                continue;
            };
            let id = o.alarm.as_ref().map_or(0, |a| a.alarm_id);
            offered.lock().unwrap().insert(id);
            let mut send = vec![In::Ack(pb::Ack { cursor: o.cursor })];
            for step in 0..3 {
                request += 1;
                send.push(match step {
                    0 => In::Receipt(pb::Receipt {
                        request_id: request,
                        alarm_id: id,
                    }),
                    1 => In::Accept(pb::Accept {
                        request_id: request,
                        alarm_id: id,
                        operator_id: "op".into(),
                    }),
                    _ => In::Close(pb::Close {
                        request_id: request,
                        alarm_id: id,
                        outcome: "handled".into(),
                        note: String::new(),
                    }),
                });
            }
            for msg in send {
                if up.send(pb::CentreMessage { msg: Some(msg) }).await.is_err() {
                    break;
                }
            }
        }
    }
}

// ---- the check ----

struct Stored {
    /// (device, key) -> times stored, and whether in the alarm lane.
    keys: HashMap<(String, String), (usize, bool)>,
    /// DC-09 frames stored (raw bytes, hex) -> times, and whether in the alarm lane.
    frames: HashMap<(String, String), (usize, bool)>,
    alarms: Vec<Alarm>,
}

fn stored(data: &Path) -> Stored {
    let backend = Arc::new(RocksBackend::open(&RocksConfig::new(data.join("db"))).unwrap());
    let (store, _rec) = Store::open(
        backend.clone(),
        GroupConfig::default(),
        RecoverOptions {
            now_ms: i64::MAX / 2,
            idem_window_ms: i64::MAX,
        },
    )
    .expect("store recovers");
    let mut keys = HashMap::new();
    let mut frames = HashMap::new();
    backend
        .scan(Cf::Events, &[], &mut |_, v| {
            let s: StoredEvent = postcard::from_bytes(v).unwrap();
            let device = s.event.device.device.to_string();
            let alarm_lane = s.event.lane() == vaka_core::Lane::Alarm;
            if device.starts_with('p') {
                let e = frames.entry((device.clone(), hex(&s.event.raw)));
                e.or_insert((0, alarm_lane)).0 += 1;
            }
            keys.entry((device, s.event.key.clone()))
                .or_insert((0, alarm_lane))
                .0 += 1;
            true
        })
        .unwrap();
    let mut alarms = Vec::new();
    backend
        .scan(Cf::Alarms, &[], &mut |_, v| {
            alarms.push(postcard::from_bytes::<Alarm>(v).unwrap());
            true
        })
        .unwrap();
    store.close().unwrap();
    Stored {
        keys,
        frames,
        alarms,
    }
}

fn kills() -> usize {
    std::env::var("VAKA_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_storm_under_mixed_load_loses_nothing_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    vaka_ingest::certs::generate_demo(&dir.path().join("certs"), "t", &QUIC).unwrap();
    let ports = Ports {
        quic: free_udp_port(),
        sip: free_tcp_port(),
        dc09_udp: free_udp_port(),
        dc09_tcp: free_tcp_port(),
        grpc: free_tcp_port(),
    };
    let config = write_config(dir.path(), &ports);
    let mut server = start_server(&config);
    let acks: Acks = Arc::default();
    let offered: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let centre_stop = Arc::new(AtomicBool::new(false));
    let sip: SocketAddr = format!("127.0.0.1:{}", ports.sip).parse().unwrap();
    let mut tasks = Vec::new();
    for d in QUIC {
        let cfg = quic_config(dir.path(), ports.quic, d);
        tasks.push(tokio::spawn(quic_device(
            cfg,
            d,
            acks.clone(),
            stop.clone(),
        )));
    }
    for d in SIP_TCP {
        tasks.push(tokio::spawn(sip_tcp_device(
            d,
            sip,
            acks.clone(),
            stop.clone(),
        )));
    }
    for d in SIP_UDP {
        tasks.push(tokio::spawn(sip_udp_device(
            d,
            sip,
            acks.clone(),
            stop.clone(),
        )));
    }
    let dc09_tcp: SocketAddr = format!("127.0.0.1:{}", ports.dc09_tcp).parse().unwrap();
    let dc09_udp: SocketAddr = format!("127.0.0.1:{}", ports.dc09_udp).parse().unwrap();
    tasks.push(tokio::spawn(dc09_panel(
        DC09_TCP,
        "7001",
        true,
        dc09_tcp,
        acks.clone(),
        stop.clone(),
    )));
    tasks.push(tokio::spawn(dc09_panel(
        DC09_UDP,
        "7002",
        false,
        dc09_udp,
        acks.clone(),
        stop.clone(),
    )));
    let grpc: SocketAddr = format!("127.0.0.1:{}", ports.grpc).parse().unwrap();
    let centre_task = tokio::spawn(centre(grpc, offered.clone(), centre_stop.clone()));

    let started = Instant::now();
    let mut acked_at_kill = Vec::new();
    for round in 0..kills() {
        let before = acked_at_kill.last().copied().unwrap_or(0);
        let until = Instant::now() + Duration::from_secs(60);
        while acks.lock().unwrap().len() <= before {
            assert!(
                Instant::now() < until,
                "round {round}: no acks after restart"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let wait = rand::rng().random_range(200..1200);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        server.kill().expect("SIGKILL");
        server.wait().unwrap();
        acked_at_kill.push(acks.lock().unwrap().len());
        tokio::time::sleep(Duration::from_millis(100)).await;
        server = start_server(&config);
    }
    // Load on the last server a while; then every device finishes its current message.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(90), t)
            .await
            .expect("every device's last message answered")
            .expect("device task");
    }
    // The centre catches up with every offer, then the engine stops.
    tokio::time::sleep(Duration::from_secs(3)).await;
    centre_stop.store(true, Ordering::Relaxed);
    centre_task.await.unwrap();
    server.kill().unwrap();
    server.wait().unwrap();

    let acks = acks.lock().unwrap().clone();
    let s = stored(&dir.path().join("data"));
    let mut lost = Vec::new();
    let mut doubled = Vec::new();
    for (device, key) in &acks {
        let n = if device.starts_with('p') {
            s.frames.get(&(device.clone(), key.clone())).copied()
        } else {
            s.keys.get(&(device.clone(), key.clone())).copied()
        };
        match n {
            None => lost.push((device, key)),
            Some((1, _)) | Some((_, false)) => {}
            Some((_, true)) => doubled.push((device, key)),
        }
    }
    let stored_twice = s
        .keys
        .values()
        .filter(|(n, alarm)| *alarm && *n > 1)
        .count();
    let telemetry_again = s
        .keys
        .values()
        .filter(|(n, alarm)| !*alarm && *n > 1)
        .count();
    let mut by_message = HashSet::new();
    let alarm_twice: Vec<&Alarm> = s
        .alarms
        .iter()
        .filter(|a| !by_message.insert((a.device.clone(), a.reference.clone())))
        .collect();
    let offered = offered.lock().unwrap().clone();
    let not_offered: Vec<u64> = s
        .alarms
        .iter()
        .map(|a| a.id.0)
        .filter(|id| !offered.contains(id))
        .collect();
    let per_kind = |p: &dyn Fn(&str) -> bool| acks.iter().filter(|(d, _)| p(d)).count();
    eprintln!(
        "kill storm: {} kills in {:.0} s; acknowledged {} events (QUIC {}, SCAIP/TCP {}, SCAIP/UDP {}, \
         DC-09 {}); stored {} keys; {} alarms, offered {}; lost {}, alarm-lane events stored twice \
         {} (acknowledged) / {} (any), telemetry events stored again by a resend {}, alarms \
         opened twice for one message {}, alarms never offered {}",
        acked_at_kill.len(),
        started.elapsed().as_secs_f64(),
        acks.len(),
        per_kind(&|d| d.starts_with('q')),
        per_kind(&|d| SIP_TCP.contains(&d)),
        per_kind(&|d| SIP_UDP.contains(&d)),
        per_kind(&|d| d.starts_with('p')),
        s.keys.len(),
        s.alarms.len(),
        offered.len(),
        lost.len(),
        doubled.len(),
        stored_twice,
        telemetry_again,
        alarm_twice.len(),
        not_offered.len(),
    );
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert!(
        doubled.is_empty(),
        "alarm-lane events stored more than once: {doubled:?}"
    );
    assert_eq!(stored_twice, 0, "an alarm-lane key stored twice");
    assert!(
        alarm_twice.is_empty(),
        "one message opened two alarms: {alarm_twice:?}"
    );
    assert!(
        not_offered.is_empty(),
        "alarms never offered to the centre: {not_offered:?}"
    );
    assert!(
        acked_at_kill.windows(2).all(|w| w[1] > w[0]),
        "load went on between kills: {acked_at_kill:?}"
    );
}
