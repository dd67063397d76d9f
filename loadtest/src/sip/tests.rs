//! The fleet against a scripted SIP server on a UDP socket: what the devices send, and what they
//! make of the answers (challenge, HOLD, silence, 403), end to end through [`SipFleet`].
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;
use vaka_scaip::scaip::{Mrq, Mrs, Snu};
use vaka_scaip::sip::{Method, NewRequest, SipMessage};
use vaka_scaip::Challenge;

use super::wire::MAX_MESSAGE;
use super::{SipFleet, SipOptions};
use crate::fleet::Fleet;
use crate::quic::Job;
use crate::record::Recorder;
use crate::scenario::{Kind, Planned};

/// A fleet of the devices `ids` of tenant `t`.
pub(super) fn fleet(ids: &[&str], password: Option<&str>, ty: &str) -> Fleet {
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
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), self.sock.recv_from(&mut buf))
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
