//! Test scaffolding for the SCAIP front: a real engine (RocksDB in a temp dir, router, SIP
//! server on 127.0.0.1 ephemeral ports), a backend gate, a small SIP device in Rust, and the
//! sipp runner.
#![allow(dead_code)]
// The store's test backend: writes can be held at its gate.
pub use vaka_store::testing::{ReleaseOnDrop, TestBackend as Gate};
#[path = "../../../../tests/support/sipp.rs"]
mod sipp_runner;
pub use sipp_runner::{run_sipp, SippRun};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;
use vaka_core::alarm::Alarm;
use vaka_core::directory::{Centre, Device, Directory, Tenant};
use vaka_core::{AlarmId, CentreId, DeviceId, DeviceKey};
use vaka_ingest::sip::{sip_credential, SipConfig, SipListen, SipServer};
use vaka_router::{Clock, Presence, Router, RouterConfig};
use vaka_scaip::auth::authorize;
use vaka_scaip::scaip::Mrs;
use vaka_scaip::sip::NewRequest;
use vaka_scaip::{find_message, Challenge, Frame, SipMessage};
use vaka_store::{
    Backend, Cf, GroupConfig, RecoverOptions, RocksBackend, RocksConfig, Store, StoredEvent,
};

pub const PASSWORD: &str = "demo-pass";
pub const TRIGGER: &str = "100001";
pub const TRACKER: &str = "100002";
pub const GATEWAY: &str = "100009";
/// A device that cannot do digest qop: set to single-use nonces.
pub const LEGACY: &str = "100004";
pub const CENTRE: &str = "c1";

/// Tenant "demo" with centre c1, a personal trigger, a tracker (heartbeat 630 s), a gateway
/// that may send for the trigger and a device without digest qop (single-use nonces); tenant "other" with a device the gateway may not send for.
pub fn directory() -> Directory {
    let mut d = Directory::default();
    for t in ["demo", "other"] {
        d.insert_tenant(Tenant::new(t, &[CENTRE]));
    }
    d.insert_centre(Centre::new(CENTRE, &["demo", "other"]));
    let mut add = |t: &str, id: &str, ty: &str, hb: Option<u32>, gw: Vec<DeviceId>| {
        d.insert_device(Device {
            heartbeat_secs: hb,
            gateway_for: gw,
            sip: Some(sip_credential(id, REALM, PASSWORD, id == LEGACY)),
            ..Device::new(DeviceKey::new(t, id), ty)
        });
    };
    add("demo", TRIGGER, "0003", Some(3600), vec![]);
    add("demo", TRACKER, "0051", Some(630), vec![]);
    add("demo", GATEWAY, "0003", None, vec![DeviceId::new(TRIGGER)]);
    add("demo", LEGACY, "0003", None, vec![]);
    add("other", "200001", "0003", None, vec![]);
    d
}

/// The digest realm of the tests' front (the directory's HA1 values are made for it).
pub const REALM: &str = "vaka.test";

pub struct Env {
    pub dir: TempDir,
    pub release: ReleaseOnDrop,
    pub gate: Arc<Gate>,
    pub store: Store,
    pub router: Arc<Router>,
    pub presence: Presence,
    pub cfg: SipConfig,
    pub rc: RouterConfig,
    pub server: SipServer,
}

impl Env {
    /// UDP, TCP and TLS on 127.0.0.1 ephemeral ports; the centre connected.
    pub async fn start() -> Env {
        Self::start_with(|_, _| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut SipConfig, &mut RouterConfig)) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        vaka_ingest::certs::generate_demo(&certs, "demo", &[]).unwrap();
        let mut cfg = SipConfig {
            realm: REALM.into(),
            tls_cert: certs.join("server.pem"),
            tls_key: certs.join("server-key.pem"),
            hold_after_ms: 1_500,
            drain_timeout_secs: 2,
            ..SipConfig::default()
        };
        let mut rc = RouterConfig {
            shards: 2,
            ..RouterConfig::default()
        };
        tune(&mut cfg, &mut rc);
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let listen = cfg.listen(any, any, any);
        Self::start_in(dir, cfg, rc, listen).await
    }

    /// Stops everything and starts it again on the same data directory and addresses, as a
    /// restart of the engine would (the SIP front gets a new nonce secret).
    pub async fn restart(self) -> Env {
        let Env {
            dir,
            release,
            gate,
            store,
            router,
            presence,
            cfg,
            rc,
            server,
        } = self;
        let listen = SipListen {
            udp: server.addrs().udp,
            tcp: server.addrs().tcp,
            tls: server.addrs().tls,
        };
        server.shutdown().await;
        drop(server); // frees the sockets for the new front
        router.shutdown().await;
        store.close().unwrap();
        // The last handles of the database go, so the new engine can lock it.
        drop((release, gate, store, router, presence));
        Self::start_in(dir, cfg, rc, listen).await
    }

    async fn start_in(dir: TempDir, cfg: SipConfig, rc: RouterConfig, listen: SipListen) -> Env {
        let backend: Arc<dyn Backend> =
            Arc::new(RocksBackend::open(&RocksConfig::new(dir.path().join("db"))).unwrap());
        let gate = Gate::new(backend);
        let (store, rec) = Store::open(
            gate.clone(),
            GroupConfig::default(),
            RecoverOptions {
                now_ms: Clock::new().now_ms(),
                idem_window_ms: rc.idempotency_window_ms,
            },
        )
        .unwrap();
        let directory = Arc::new(directory());
        let presence = Presence::new();
        presence.connected(&CentreId::new(CENTRE));
        let router = Router::start(
            rc.clone(),
            store.clone(),
            rec,
            directory.clone(),
            presence.clone(),
            Clock::new(),
        );
        let server =
            SipServer::start(&cfg, listen, router.clone(), directory, Clock::new()).unwrap();
        Env {
            dir,
            release: ReleaseOnDrop(gate.clone()),
            gate,
            store,
            router,
            presence,
            cfg,
            rc,
            server,
        }
    }

    pub fn udp(&self) -> SocketAddr {
        self.server.addrs().udp.unwrap()
    }
    pub fn tcp(&self) -> SocketAddr {
        self.server.addrs().tcp.unwrap()
    }
    pub fn tls(&self) -> SocketAddr {
        self.server.addrs().tls.unwrap()
    }
    pub fn server_ca(&self) -> PathBuf {
        self.dir.path().join("certs/server-ca.pem")
    }

    pub fn stored_events(&self) -> Vec<StoredEvent> {
        let mut out = Vec::new();
        self.gate
            .scan(Cf::Events, &[], &mut |_, v| {
                out.push(postcard::from_bytes::<StoredEvent>(v).unwrap());
                true
            })
            .unwrap();
        out
    }

    /// Heartbeat intervals recorded for devices (what supervision uses instead of the config).
    pub fn heartbeat_intervals(&self) -> Vec<(DeviceKey, u32)> {
        vaka_store::load_heartbeat_intervals(self.gate.as_ref()).unwrap()
    }

    pub fn alarms(&self) -> Vec<Alarm> {
        let mut out = Vec::new();
        self.gate
            .scan(Cf::Alarms, &[], &mut |_, v| {
                out.push(postcard::from_bytes::<Alarm>(v).unwrap());
                true
            })
            .unwrap();
        out
    }

    pub fn alarm(&self, id: AlarmId) -> Option<Alarm> {
        vaka_store::load_alarm(self.gate.as_ref(), id).unwrap()
    }

    pub async fn stop(self) {
        self.server.shutdown().await;
        self.router.shutdown().await;
        self.store.close().unwrap();
    }
}

/// An `<mrq>` body.
pub fn mrq(reference: &str, cid: &str, extra: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><mrq><ref>{reference}</ref><cid>{cid}</cid><dty>0003</dty>{extra}</mrq>")
}

/// A SCAIP device over UDP, written with the codec: challenge, credentials, `<mrs>` answers.
pub struct UdpDevice {
    pub sock: UdpSocket,
    pub server: SocketAddr,
    pub user: String,
    pub password: String,
    pub challenge: Option<Challenge>,
    nc: u32,
    seq: u32,
}

impl UdpDevice {
    pub async fn new(server: SocketAddr, user: &str, password: &str) -> UdpDevice {
        UdpDevice {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
            user: user.into(),
            password: password.into(),
            challenge: None,
            nc: 0,
            seq: 0,
        }
    }

    pub fn local(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// A MESSAGE carrying `body` (with credentials when a challenge is known).
    pub fn message(&mut self, call_id: &str, body: &str) -> SipMessage {
        self.seq += 1;
        let uri = format!("sip:alarm@{}", self.server);
        let local = self.local();
        let mut m = NewRequest {
            request_uri: &uri,
            transport: "UDP",
            sent_by: &local.to_string(),
            branch: &format!("dev{}x{}", self.seq, rand::random::<u32>()),
            from_uri: &format!("sip:{}@{}", self.user, local.ip()),
            from_tag: "devtag",
            to_uri: &uri,
            call_id,
            cseq: self.seq,
            ..NewRequest::default()
        }
        .scaip_message(body)
        .unwrap();
        m.push_header("Contact", &format!("<sip:{}@{local}>", self.user))
            .unwrap();
        if let Some(c) = &self.challenge {
            self.nc += 1;
            let a = authorize(
                c,
                "MESSAGE",
                &uri,
                &self.user,
                &self.password,
                "c0ffee",
                self.nc,
            );
            m.push_header("Authorization", &a.to_header_value())
                .unwrap();
        }
        m
    }

    pub async fn send(&self, m: &SipMessage) {
        self.sock.send_to(&m.to_bytes(), self.server).await.unwrap();
    }

    pub async fn send_raw(&self, bytes: &[u8]) {
        self.sock.send_to(bytes, self.server).await.unwrap();
    }

    /// The next message (panics after `secs`).
    pub async fn recv(&self, secs: u64) -> SipMessage {
        let mut buf = vec![0u8; 65536];
        let (n, _) = within(secs, self.sock.recv_from(&mut buf)).await.unwrap();
        SipMessage::parse(&buf[..n]).unwrap()
    }

    /// Nothing arrives for `ms`.
    pub async fn silent(&self, ms: u64) -> bool {
        let mut buf = vec![0u8; 65536];
        tokio::time::timeout(Duration::from_millis(ms), self.sock.recv_from(&mut buf))
            .await
            .is_err()
    }

    /// MESSAGE without credentials -> 401 (kept), MESSAGE with them -> the final status.
    pub async fn authenticated(&mut self, call_id: &str, body: &str) -> u16 {
        if self.challenge.is_none() {
            let m = self.message(call_id, body);
            self.send(&m).await;
            let r = self.recv(5).await;
            assert_eq!(r.status(), Some(401), "challenge expected");
            self.challenge = Some(Challenge::parse(r.www_authenticate().unwrap()).unwrap());
        }
        let m = self.message(call_id, body);
        self.send(&m).await;
        self.recv(5).await.status().unwrap()
    }

    /// Waits for the `<mrs>` MESSAGE, answers it 200, returns it and the request.
    pub async fn mrs(&self, secs: u64) -> (Mrs, SipMessage) {
        let m = self.recv(secs).await;
        assert!(
            m.is_request(),
            "expected the <mrs> MESSAGE, got {:?}",
            m.status()
        );
        let ok = SipMessage::response(&m, 200, "OK", "dev");
        self.sock
            .send_to(&ok.to_bytes(), self.server)
            .await
            .unwrap();
        (Mrs::parse(m.body_str().unwrap()).unwrap(), m)
    }

    /// One full exchange: the `<mrs>` for `body`.
    pub async fn exchange(&mut self, call_id: &str, body: &str) -> Mrs {
        assert_eq!(self.authenticated(call_id, body).await, 200);
        self.mrs(10).await.0
    }
}

/// A SCAIP device on a stream (TCP or TLS).
pub struct StreamDevice<S> {
    pub io: S,
    pub buf: Vec<u8>,
    pub transport: &'static str,
}

impl<S: AsyncRead + AsyncWrite + Unpin> StreamDevice<S> {
    pub async fn send(&mut self, m: &SipMessage) {
        self.io.write_all(&m.to_bytes()).await.unwrap();
    }

    pub async fn recv(&mut self) -> SipMessage {
        within(10, async {
            loop {
                match find_message(&self.buf, 65_536).unwrap() {
                    Frame::Message(n) => {
                        let m = SipMessage::parse(&self.buf[..n]).unwrap();
                        self.buf.drain(..n);
                        return m;
                    }
                    Frame::KeepAlive(n) => {
                        self.buf.drain(..n);
                    }
                    Frame::Incomplete => {
                        let mut chunk = [0u8; 4096];
                        let n = self.io.read(&mut chunk).await.unwrap();
                        assert!(n > 0, "connection closed");
                        self.buf.extend_from_slice(&chunk[..n]);
                    }
                }
            }
        })
        .await
    }

    pub fn message(&self, cseq: u32, body: &str, challenge: Option<&Challenge>) -> SipMessage {
        let uri = "sip:alarm@localhost";
        let mut m = NewRequest {
            request_uri: uri,
            transport: self.transport,
            sent_by: "device.invalid:5060",
            branch: &format!("s{cseq}x{}", rand::random::<u32>()),
            from_uri: &format!("sip:{TRIGGER}@device.invalid"),
            from_tag: "st",
            to_uri: uri,
            call_id: "stream-call",
            cseq,
            ..NewRequest::default()
        }
        .scaip_message(body)
        .unwrap();
        if let Some(c) = challenge {
            let a = authorize(c, "MESSAGE", uri, TRIGGER, PASSWORD, "abc", cseq);
            m.push_header("Authorization", &a.to_header_value())
                .unwrap();
        }
        m
    }

    /// 401, 200, then the `<mrs>` on the same connection (answered 200).
    pub async fn exchange(&mut self, body: &str) -> Mrs {
        let m = self.message(1, body, None);
        self.send(&m).await;
        let r = self.recv().await;
        assert_eq!(r.status(), Some(401));
        let c = Challenge::parse(r.www_authenticate().unwrap()).unwrap();
        self.answered(2, body, &c).await
    }

    /// The request with credentials from `c` gets 200, then the `<mrs>` comes (answered 200).
    pub async fn answered(&mut self, cseq: u32, body: &str, c: &Challenge) -> Mrs {
        let m = self.message(cseq, body, Some(c));
        self.send(&m).await;
        assert_eq!(self.recv().await.status(), Some(200));
        let mrs = self.recv().await;
        assert!(mrs.is_request());
        assert_eq!(mrs.top_via().transport, self.transport);
        let ok = SipMessage::response(&mrs, 200, "OK", "x");
        self.io.write_all(&ok.to_bytes()).await.unwrap();
        Mrs::parse(mrs.body_str().unwrap()).unwrap()
    }
}

/// Fails the test instead of hanging.
pub async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("test step timed out")
}

/// Waits (polling) until `cond` holds; fails the test after `secs`.
pub async fn until(secs: u64, mut cond: impl FnMut() -> bool) {
    within(secs, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// The sipp scenarios of the repository.
pub fn scenario(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR: run by cargo"))
        .join("../../tests/sipp")
        .join(name)
}

/// Runs the repository's scenario `scenario_file` once (see `sipp_runner::run_sipp`).
pub async fn sipp(
    scenario_file: &str,
    transport: &str,
    server: SocketAddr,
    user: &str,
    password: &str,
    mrq: &str,
    keys: &[(&str, &str)],
) -> SippRun {
    run_sipp(
        &scenario(scenario_file),
        transport,
        server,
        user,
        password,
        mrq,
        keys,
    )
    .await
}
