//! The whole path through `vaka serve` as a child process, as an alarm centre sees it:
//! - a device alarm over QUIC (vaka/1, the device library) and over SCAIP/SIP (sipp as the device)
//!   reaches the centre's gRPC stream; receipt and accept stop the deadlines; close ends it; the
//!   audit trail shows each step;
//! - the server SIGKILLed and restarted: an offer the centre never acknowledged is offered again,
//!   and the receipt deadline fires at the time the original offer set, not a full deadline after
//!   the restart; one that passed while the server was down waits the reconnect grace for its
//!   centre (invariant 11): offered to it again if it comes back, escalated in order if not;
//! - a centre reconnecting after a restart is not offered an alarm it closed.
#[path = "support/binary.rs"]
mod binary;
#[path = "support/sipp.rs"]
mod sipp;

use binary::{free_tcp_port, free_udp_port, get_metrics, vaka_bin};
use futures::channel::mpsc;
use futures::SinkExt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vaka_centre::console::{self, ClientTls};
use vaka_centre::pb::{self, centre_message::Msg as In, server_message::Msg as Out};
use vaka_device::{events, Client, DeviceConfig};

const QUIC_DEVICE: &str = "d0";
/// A second QUIC device: its alarm is a new alarm, not a repeat of the first device's open one.
const QUIC_DEVICE_2: &str = "d1";
const SCAIP_DEVICE: &str = "100001";
const PASSWORD: &str = "demo-pass";
/// `router.reconnect_grace_secs` of the test server.
const GRACE: Duration = Duration::from_secs(3);

/// `vaka serve` on free ports: QUIC, SIP over UDP, the centre API. Tenant `t` is served by the
/// chain c1 -> c2 with the given deadlines.
struct Server {
    dir: tempfile::TempDir,
    config: PathBuf,
    quic: SocketAddr,
    sip: SocketAddr,
    grpc: SocketAddr,
    http: u16,
    child: Mutex<Option<Child>>,
}

impl Server {
    fn new(receipt_secs: u32, accept_secs: u32) -> Server {
        let dir = tempfile::tempdir().unwrap();
        vaka_ingest::certs::generate_demo(
            &dir.path().join("certs"),
            "t",
            &[QUIC_DEVICE, QUIC_DEVICE_2],
        )
        .unwrap();
        let quic: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let grpc: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let http = free_tcp_port();
        let text = format!(
            "[server]\ndata_dir = \"{data}\"\nlog_level = \"warn\"\nshutdown_timeout_secs = 5\n\
             [listen]\nquic = \"{quic}\"\nsip_udp = \"{sip}\"\ngrpc = \"{grpc}\"\n\
             http = \"127.0.0.1:{http}\"\n\
             [router]\nshards = 2\nreconnect_grace_secs = {grace}\n\
             [sip]\nudp = true\ntcp = false\ntls = false\n\
             [quic]\nserver_cert = \"{c}/server.pem\"\nserver_key = \"{c}/server-key.pem\"\n\
             tenant_cas = {{ t = \"{c}/t/ca.pem\" }}\n\
             [grpc]\nheartbeat_secs = 1\n\
             [[tenants]]\nid = \"t\"\ncentres = [\"c1\", \"c2\"]\n\
             receipt_deadline_secs = {receipt_secs}\naccept_deadline_secs = {accept_secs}\n\
             [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"token-of-centre-c1\"\n\
             [[centres]]\nid = \"c2\"\ntenants = [\"t\"]\ntoken = \"token-of-centre-c2\"\n\
             [[devices]]\ntenant = \"t\"\nid = \"{QUIC_DEVICE}\"\ntype = \"0003\"\n\
             [[devices]]\ntenant = \"t\"\nid = \"{QUIC_DEVICE_2}\"\ntype = \"0003\"\n\
             [[devices]]\ntenant = \"t\"\nid = \"{SCAIP_DEVICE}\"\ntype = \"0003\"\n\
             password = \"{PASSWORD}\"\n",
            grace = GRACE.as_secs(),
            data = dir.path().join("data").display(),
            c = dir.path().join("certs").display(),
        );
        let config = dir.path().join("vaka.toml");
        std::fs::write(&config, text).unwrap();
        let mut s = Server {
            dir,
            config,
            quic,
            sip,
            grpc,
            http,
            child: Mutex::new(None),
        };
        s.start();
        s
    }

    fn start(&mut self) {
        let child = Command::new(vaka_bin())
            .args(["serve", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start vaka serve");
        *self.child.lock().unwrap() = Some(child);
    }

    fn sigkill(&mut self) {
        let mut child = self.child.lock().unwrap().take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
    }

    fn device(&self, id: &str) -> DeviceConfig {
        let c = self.dir.path().join("certs");
        DeviceConfig::from_pem_files(
            self.quic,
            c.join("server-ca.pem"),
            c.join(format!("t/{id}.pem")),
            c.join(format!("t/{id}-key.pem")),
        )
        .unwrap()
    }

    async fn client(&self, token: &str) -> console::Client {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let exited = self.child.lock().unwrap().as_mut().map(|c| c.try_wait());
            if let Some(Ok(Some(status))) = exited {
                panic!("vaka serve exited: {status}");
            }
            match console::connect(&self.grpc.to_string(), Some(token), ClientTls::default()).await
            {
                Ok(c) => return c,
                Err(e) if Instant::now() < until => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("centre API never came up: {e}"),
            }
        }
    }

    /// The server's own answer on which steps alarm `id` went through: `actor action` lines.
    async fn audit(&self, id: u64) -> Vec<String> {
        let mut c = self.client("token-of-centre-c1").await;
        let r = c
            .get_audit(pb::GetAuditRequest { alarm_id: id })
            .await
            .unwrap()
            .into_inner();
        r.records
            .iter()
            .map(|a| format!("{} {}", a.actor, a.action))
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One centre connection: a Session stream after Hello/Welcome.
struct Centre {
    up: mpsc::Sender<pb::CentreMessage>,
    down: tonic::Streaming<pb::ServerMessage>,
    next_request: u64,
}

impl Centre {
    /// Connects (waiting for the server to come up) and resumes after the last acknowledged cursor.
    async fn connect(server: &Server, token: &str) -> Centre {
        let mut client = server.client(token).await;
        let (mut up, rx) = mpsc::channel(16);
        up.send(pb::CentreMessage {
            msg: Some(In::Hello(pb::Hello {
                resume_after: None,
                client: "centre_e2e".into(),
            })),
        })
        .await
        .unwrap();
        let mut down = client.session(rx).await.unwrap().into_inner();
        match down.message().await.unwrap().and_then(|m| m.msg) {
            Some(Out::Welcome(_)) => {}
            other => panic!("expected welcome, got {other:?}"),
        }
        Centre {
            up,
            down,
            next_request: 0,
        }
    }

    /// The next offer or update (heartbeats skipped), within `secs`.
    async fn next(&mut self, secs: u64) -> Out {
        let until = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let m = tokio::time::timeout_at(until, self.down.message())
                .await
                .unwrap_or_else(|_| panic!("nothing from the server within {secs} s"))
                .expect("stream error")
                .expect("stream ended");
            match m.msg {
                Some(Out::Heartbeat(_)) => continue,
                Some(m) => return m,
                None => panic!("empty server message"),
            }
        }
    }

    async fn offer(&mut self, secs: u64) -> pb::Offer {
        match self.next(secs).await {
            Out::Offer(o) => o,
            other => panic!("expected an offer, got {other:?}"),
        }
    }

    /// Only heartbeats arrive for `d`.
    async fn quiet_for(&mut self, d: Duration) {
        let until = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(until, self.down.message()).await {
                Err(_) => return,
                Ok(Ok(Some(pb::ServerMessage {
                    msg: Some(Out::Heartbeat(_)),
                }))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }

    async fn act(&mut self, msg: In) {
        self.next_request += 1;
        let id = self.next_request;
        let msg = match msg {
            In::Receipt(r) => In::Receipt(pb::Receipt {
                request_id: id,
                ..r
            }),
            In::Accept(a) => In::Accept(pb::Accept {
                request_id: id,
                ..a
            }),
            In::Close(c) => In::Close(pb::Close {
                request_id: id,
                ..c
            }),
            other => other,
        };
        self.up
            .send(pb::CentreMessage { msg: Some(msg) })
            .await
            .unwrap();
        match self.next(10).await {
            Out::Result(r) if r.request_id == id => {
                assert_eq!(r.code, 0, "input refused: {}", r.message)
            }
            other => panic!("expected the result of request {id}, got {other:?}"),
        }
    }

    /// Receipt, accept by `operator`, close; acknowledges `cursor` first.
    async fn handle(&mut self, alarm: u64, cursor: u64, operator: &str) {
        self.up
            .send(pb::CentreMessage {
                msg: Some(In::Ack(pb::Ack { cursor })),
            })
            .await
            .unwrap();
        self.act(In::Receipt(pb::Receipt {
            request_id: 0,
            alarm_id: alarm,
        }))
        .await;
        self.act(In::Accept(pb::Accept {
            request_id: 0,
            alarm_id: alarm,
            operator_id: operator.into(),
        }))
        .await;
    }

    async fn close(&mut self, alarm: u64) {
        self.act(In::Close(pb::Close {
            request_id: 0,
            alarm_id: alarm,
            outcome: "visited".into(),
            note: "helped up, unhurt".into(),
        }))
        .await;
    }
}

/// The first connection needs a running server; the server may still be opening its store.
async fn device(server: &Server, id: &str) -> Client {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        match Client::connect(server.device(id)).await {
            Ok(c) => return c,
            Err(e) if Instant::now() < until && !e.is_fatal() => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("device cannot connect: {e}"),
        }
    }
}

/// Device `id` sends one alarm over QUIC; returns once it is acknowledged (durable).
async fn quic_alarm(server: &Server, id: &str, key: &str) {
    let client = device(server, id).await;
    let mut replies = client
        .submit(vec![events::alarm(key.to_string(), "0010", 5)])
        .await
        .unwrap();
    let reply = replies.pop().unwrap().await.unwrap();
    assert_eq!(
        reply.status(),
        vaka_device::pb::Status::Ok,
        "a centre is connected: {}",
        reply.reason
    );
    client.close().await;
}

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR: run by cargo"))
        .join("tests/sipp")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_and_scaip_alarms_reach_the_centre_and_the_audit_shows_each_step() {
    // Short deadlines, so that "receipt and accept stop them" is seen, not assumed.
    let server = Server::new(2, 3);
    let mut c1 = Centre::connect(&server, "token-of-centre-c1").await;
    let mut c2 = Centre::connect(&server, "token-of-centre-c2").await;

    // QUIC: the device library sends an alarm; c1, first in the chain, is offered it.
    let sent = Instant::now();
    quic_alarm(&server, QUIC_DEVICE, "quic-1").await;
    let offer = c1.offer(5).await;
    eprintln!("QUIC alarm offered {:?} after sending", sent.elapsed());
    let a = offer.alarm.clone().unwrap();
    assert_eq!((a.tenant.as_str(), a.device.as_str()), ("t", QUIC_DEVICE));
    assert_eq!((a.code.as_str(), a.reference.as_str()), ("0010", "quic-1"));
    assert_eq!(a.kind, pb::AlarmKind::Help as i32);
    assert_eq!(a.deadline.unwrap().kind, pb::DeadlineKind::Receipt as i32);
    c1.handle(a.alarm_id, offer.cursor, "op-7").await;
    // Both deadlines (2 s, 3 s) have passed: nothing escalated to c2.
    c2.quiet_for(Duration::from_secs(4)).await;
    c1.close(a.alarm_id).await;
    assert_eq!(
        server.audit(a.alarm_id).await,
        [
            "device received",
            "engine offered to c1",
            "centre:c1 receipt",
            "operator:op-7 accepted",
            "centre:c1 closed"
        ]
    );

    // SCAIP: sipp is the device (digest auth, <mrq>, 200, then our <mrs> with snu 0).
    let mrq = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><mrq><ref>sipp1</ref><cid>{SCAIP_DEVICE}</cid>\
         <dty>0003</dty><mty>ME</mty><stc>0010</stc><pri>2</pri></mrq>"
    );
    let run = sipp::run_sipp(
        &scenario("scaip_message.xml"),
        "u1",
        server.sip,
        SCAIP_DEVICE,
        PASSWORD,
        &mrq,
        &[],
    )
    .await;
    run.assert_ok();
    assert_eq!(run.mrs(), [(0, "sipp1".to_string(), None)]);
    let offer = c1.offer(5).await;
    let a = offer.alarm.clone().unwrap();
    assert_eq!(a.device, SCAIP_DEVICE);
    assert_eq!((a.code.as_str(), a.reference.as_str()), ("0010", "sipp1"));
    c1.handle(a.alarm_id, offer.cursor, "op-8").await;
    c1.close(a.alarm_id).await;
    let audit = server.audit(a.alarm_id).await;
    assert_eq!(audit.first().map(String::as_str), Some("device received"));
    assert!(
        audit.contains(&"operator:op-8 accepted".to_string()),
        "{audit:?}"
    );
    assert_eq!(audit.last().map(String::as_str), Some("centre:c1 closed"));

    // Datagrams the kernel dropped at the fronts' UDP sockets are counted (none here).
    let metrics = get_metrics(server.http).expect("/metrics answers");
    for socket in ["quic", "sip"] {
        let line = format!("vaka_udp_drops_total{{socket=\"{socket}\"}} 0");
        assert!(metrics.contains(&line), "no `{line}` in:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigkill_unacknowledged_offers_come_again_and_deadlines_keep_their_time() {
    const RECEIPT: Duration = Duration::from_secs(5);
    let mut server = Server::new(RECEIPT.as_secs() as u32, 60);
    let mut c1 = Centre::connect(&server, "token-of-centre-c1").await;

    // Alarm A is offered to c1, which neither acknowledges nor confirms receipt.
    quic_alarm(&server, QUIC_DEVICE, "before-kill").await;
    let offered_at = Instant::now();
    let first = c1.offer(5).await.alarm.unwrap();
    let deadline = first.deadline.unwrap();
    assert_eq!(deadline.kind, pb::DeadlineKind::Receipt as i32);

    // SIGKILL; the server stays down for 2.5 s of the 5 s deadline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.sigkill();
    drop(c1);
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    server.start();

    // c1 reconnects and is offered A again: same alarm, same deadline instant.
    let mut c1 = Centre::connect(&server, "token-of-centre-c1").await;
    let mut c2 = Centre::connect(&server, "token-of-centre-c2").await;
    let again = c1.offer(5).await.alarm.unwrap();
    assert_eq!(again.alarm_id, first.alarm_id);
    assert_eq!(
        again.deadline,
        Some(deadline),
        "the deadline is not re-armed"
    );

    // The receipt deadline escalates A to c2 on time, measured from the first offer: a deadline
    // re-armed at the restart would fire 2.5 s (and more) later.
    let escalated = c2.offer(10).await;
    let took = offered_at.elapsed();
    eprintln!("escalated {took:?} after the first offer (receipt deadline {RECEIPT:?})");
    assert!(
        took >= RECEIPT - Duration::from_millis(300)
            && took < RECEIPT + Duration::from_millis(1_500),
        "escalated {took:?} after the offer, deadline {RECEIPT:?}"
    );
    let e = escalated.alarm.unwrap();
    assert_eq!(e.alarm_id, first.alarm_id);
    assert_eq!(e.escalation_step, 1);
    assert!(e.priority > first.priority, "escalation raises priority");
    match c1.next(5).await {
        Out::Update(u) => assert_eq!(u.kind, pb::UpdateKind::EscalatedElsewhere as i32),
        other => panic!("expected c1 to hear of the escalation, got {other:?}"),
    }

    // Alarm B: its receipt deadline passes while the server is down; the restarted server
    // waits the reconnect grace for c1, which stays away, then escalates B to c2, which is back.
    // From another device: the first device's alarm A is still open, and a second alarm of
    // the same device would be a repeat of A, not a new alarm.
    quic_alarm(&server, QUIC_DEVICE_2, "deadline-while-down").await;
    let b = c1.offer(5).await.alarm.unwrap();
    assert_eq!(b.device, QUIC_DEVICE_2);
    assert_ne!(b.alarm_id, first.alarm_id);
    server.sigkill();
    drop((c1, c2));
    tokio::time::sleep(RECEIPT + Duration::from_secs(1)).await;
    let restarted = Instant::now();
    server.start();
    let mut c2 = Centre::connect(&server, "token-of-centre-c2").await;
    let e = loop {
        // c2 still holds A (never acknowledged): it comes again, and A's own receipt deadline
        // at c2 may have passed too, which ends its chain (an update or an "unhandled" offer).
        match c2.next(15).await {
            Out::Offer(o) if o.alarm.as_ref().unwrap().alarm_id == b.alarm_id => break o,
            Out::Offer(o) => assert_eq!(o.alarm.unwrap().alarm_id, first.alarm_id),
            Out::Update(u) => assert_eq!(u.alarm.unwrap().alarm_id, first.alarm_id),
            other => panic!("unexpected {other:?}"),
        }
    };
    let took = restarted.elapsed();
    let (unhandled, e) = (e.unhandled, e.alarm.unwrap());
    eprintln!(
        "overdue deadline fired {took:?} after the restart (step {}, unhandled {unhandled})",
        e.escalation_step
    );
    // Escalated past c1 once its grace was over, to c2 (step 1): not skipped as unreachable
    // while it was reconnecting, so not unhandled.
    assert_eq!((e.escalation_step, unhandled), (1, false), "{e:?}");
    assert!(
        took >= GRACE && took < GRACE + Duration::from_secs(5),
        "{took:?}"
    );
    let audit = server.audit(b.alarm_id).await;
    assert!(
        audit.iter().any(|l| l == "engine escalated"),
        "the audit names the escalation: {audit:?}"
    );
    assert!(
        !audit.iter().any(|l| l == "engine unhandled"),
        "never unhandled: {audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigkill_an_overdue_deadline_waits_for_the_first_centre_to_reconnect() {
    const RECEIPT: Duration = Duration::from_secs(2);
    let mut server = Server::new(RECEIPT.as_secs() as u32, 60);
    let mut c1 = Centre::connect(&server, "token-of-centre-c1").await;
    quic_alarm(&server, QUIC_DEVICE, "overdue").await;
    let first = c1.offer(5).await.alarm.unwrap();
    // Down longer than the receipt deadline: it is overdue when the server is back.
    server.sigkill();
    drop(c1);
    tokio::time::sleep(RECEIPT + Duration::from_secs(1)).await;
    server.start();

    // c1 comes back within the grace and is offered the alarm again, still first in the chain.
    let mut c1 = Centre::connect(&server, "token-of-centre-c1").await;
    let mut c2 = Centre::connect(&server, "token-of-centre-c2").await;
    let again = c1.offer(5).await;
    let a = again.alarm.clone().unwrap();
    assert_eq!((a.alarm_id, a.escalation_step), (first.alarm_id, 0));
    c1.handle(a.alarm_id, again.cursor, "op-1").await;
    // Past the grace and the old deadline: nothing went to c2, nothing turned unhandled.
    c2.quiet_for(GRACE + Duration::from_secs(2)).await;
    let audit = server.audit(a.alarm_id).await;
    assert_eq!(
        audit,
        [
            "device received",
            "engine offered to c1",
            "centre:c1 receipt",
            "operator:op-1 accepted"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_centre_reconnecting_after_a_restart_is_not_offered_an_alarm_it_closed() {
    let mut server = Server::new(10, 60);
    let mut c1 = Centre::connect(&server, "token-of-centre-c1").await;
    quic_alarm(&server, QUIC_DEVICE, "closed-before-kill").await;
    let a = c1.offer(5).await.alarm.unwrap();
    // Handled and closed, but the offer's cursor never acknowledged (as when the centre's ack
    // was still in flight at the crash).
    for input in [
        In::Receipt(pb::Receipt {
            request_id: 0,
            alarm_id: a.alarm_id,
        }),
        In::Accept(pb::Accept {
            request_id: 0,
            alarm_id: a.alarm_id,
            operator_id: "op-2".into(),
        }),
    ] {
        c1.act(input).await;
    }
    c1.close(a.alarm_id).await;
    server.sigkill();
    drop(c1);
    server.start();

    // The notice is sent again (at-least-once), as the alarm is now: closed, not a new offer.
    let mut c1 = Centre::connect(&server, "token-of-centre-c1").await;
    match c1.next(5).await {
        Out::Update(u) => {
            let alarm = u.alarm.unwrap();
            assert_eq!(alarm.alarm_id, a.alarm_id);
            assert_eq!(u.kind, pb::UpdateKind::Closed as i32, "{alarm:?}");
        }
        other => panic!("expected the closed alarm's update, got {other:?}"),
    }
    c1.quiet_for(Duration::from_secs(1)).await;
}
