//! Test scaffolding: a real engine (RocksDB in a temp dir, router, QUIC server on 127.0.0.1),
//! demo certificates, a backend gate, and a raw vaka/1 connection for malformed input.
#![allow(dead_code)]
use bytes::BytesMut;
// The store's test backend: writes can be held at its gate.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use vaka_core::directory::{Centre, Device, Directory, Tenant};
use vaka_core::{DeviceId, DeviceKey};
use vaka_device::{pb, DeviceConfig};
use vaka_ingest::certs::generate_demo;
use vaka_ingest::quic::{QuicConfig, QuicServer};
use vaka_proto::{encode_frame, split_frame, Message};
use vaka_router::{Clock, Presence, Router, RouterConfig};
pub use vaka_store::testing::{ReleaseOnDrop, TestBackend as Gate};
use vaka_store::{
    Backend, Cf, GroupConfig, RecoverOptions, RocksBackend, RocksConfig, Store, StoredEvent,
};

pub const T1_DEVICES: [&str; 9] = ["d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "gw"];

pub fn directory() -> Directory {
    let mut d = Directory::default();
    d.insert_tenant(Tenant::new("t1", &["c1"]));
    d.insert_tenant(Tenant::new("t2", &[]));
    d.insert_centre(Centre::new("c1", &["t1"]));
    let mut add = |t: &str, id: &str, gateway_for: Vec<DeviceId>| {
        d.insert_device(Device {
            gateway_for,
            ..Device::new(DeviceKey::new(t, id), "0003")
        });
    };
    for id in T1_DEVICES {
        let gw = if id == "gw" {
            vec![DeviceId::new("d1"), DeviceId::new("d2")]
        } else {
            vec![]
        };
        add("t1", id, gw);
    }
    add("t2", "x1", vec![]);
    d
}

pub struct Env {
    pub dir: TempDir,
    pub release: ReleaseOnDrop,
    pub certs: PathBuf,
    pub gate: Arc<Gate>,
    pub store: Store,
    pub router: Arc<Router>,
    pub presence: Presence,
    pub directory: Arc<Directory>,
    pub cfg: QuicConfig,
    pub server: QuicServer,
}

impl Env {
    pub async fn start() -> Env {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut QuicConfig)) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        let mut t1 = T1_DEVICES.to_vec();
        t1.push("ghost"); // issued by t1's CA, but not in the directory
        generate_demo(&certs, "t1", &t1).unwrap();
        // t2's CA also issues a "d1": a device id of t1 in another tenant's certificate.
        generate_demo(&certs, "t2", &["x1", "d1"]).unwrap();
        // An unknown CA calling itself t1.
        generate_demo(&dir.path().join("rogue"), "t1", &["d1"]).unwrap();

        let backend: Arc<dyn Backend> =
            Arc::new(RocksBackend::open(&RocksConfig::new(dir.path().join("db"))).unwrap());
        let gate = Gate::new(backend);
        let rc = RouterConfig {
            shards: 2,
            ..RouterConfig::default()
        };
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
        let router = Router::start(
            rc,
            store.clone(),
            rec,
            directory.clone(),
            presence.clone(),
            Clock::new(),
        );
        let mut cfg = QuicConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            server_cert: certs.join("server.pem"),
            server_key: certs.join("server-key.pem"),
            tenant_cas: BTreeMap::from([
                ("t1".to_string(), certs.join("t1/ca.pem")),
                ("t2".to_string(), certs.join("t2/ca.pem")),
            ]),
            drain_timeout_secs: 2,
            ..QuicConfig::default()
        };
        tune(&mut cfg);
        let server = QuicServer::start(&cfg, router.clone(), directory.clone()).unwrap();
        Env {
            dir,
            release: ReleaseOnDrop(gate.clone()),
            certs,
            gate,
            store,
            router,
            presence,
            directory,
            cfg,
            server,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// A device of tenant `tenant` with the certificate from `certs/<tenant>/<device>.pem`.
    pub fn device(&self, tenant: &str, device: &str) -> DeviceConfig {
        device_config(self.addr(), &self.certs, &self.certs, tenant, device)
    }

    /// A device whose certificate comes from the rogue CA (same names, unknown to the server).
    pub fn rogue(&self, device: &str) -> DeviceConfig {
        device_config(
            self.addr(),
            &self.certs,
            &self.dir.path().join("rogue"),
            "t1",
            device,
        )
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

    pub async fn stop(self) {
        self.server.shutdown().await;
        self.router.shutdown().await;
        self.store.close().unwrap();
    }
}

pub fn device_config(
    addr: SocketAddr,
    server_certs: &Path,
    device_certs: &Path,
    tenant: &str,
    device: &str,
) -> DeviceConfig {
    let mut c = DeviceConfig::from_pem_files(
        addr,
        server_certs.join("server-ca.pem"),
        device_certs.join(tenant).join(format!("{device}.pem")),
        device_certs.join(tenant).join(format!("{device}-key.pem")),
    )
    .unwrap();
    c.connect_timeout = Duration::from_secs(5);
    c.reconnect_min = Duration::from_millis(20);
    c.reconnect_max = Duration::from_millis(200);
    c
}

/// vaka/1 on a raw stream, for input the client library would never send.
pub struct Raw {
    pub conn: quinn::Connection,
    pub send: quinn::SendStream,
    pub recv: quinn::RecvStream,
    buf: BytesMut,
}

impl Raw {
    /// Connects and opens the stream; with `hello`, also says Hello and reads Welcome.
    pub async fn open(cfg: &DeviceConfig, hello: bool) -> Raw {
        let ep = vaka_device::client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = ep
            .connect_with(
                vaka_device::quic_client_config(cfg).unwrap(),
                cfg.servers[0],
                "localhost",
            )
            .unwrap()
            .await
            .unwrap();
        let (send, recv) = conn.open_bi().await.unwrap();
        let mut raw = Raw {
            conn,
            send,
            recv,
            buf: BytesMut::new(),
        };
        if hello {
            raw.frame(&pb::ClientFrame {
                kind: Some(pb::client_frame::Kind::Hello(pb::Hello::default())),
            })
            .await;
            match raw.next().await.kind {
                Some(pb::server_frame::Kind::Welcome(_)) => {}
                other => panic!("expected Welcome, got {other:?}"),
            }
        }
        raw
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        self.send.write_all(bytes).await.unwrap();
    }

    pub async fn frame(&mut self, msg: &impl Message) {
        let mut b = Vec::new();
        encode_frame(msg, &mut b);
        self.write(&b).await;
    }

    pub async fn events(&mut self, events: Vec<pb::Event>) {
        self.frame(&pb::ClientFrame {
            kind: Some(pb::client_frame::Kind::Events(pb::EventFrame { events })),
        })
        .await;
    }

    /// The next server frame (panics after 10 s or if the connection ends).
    pub async fn next(&mut self) -> pb::ServerFrame {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(f) = split_frame(&mut self.buf, 1 << 24).unwrap() {
                    return pb::ServerFrame::decode(f).unwrap();
                }
                let c = self
                    .recv
                    .read_chunk(65536, true)
                    .await
                    .unwrap()
                    .expect("stream open");
                self.buf.extend_from_slice(&c.bytes);
            }
        })
        .await
        .expect("a server frame within 10 s")
    }

    /// Replies until `n` event replies have come.
    pub async fn replies(&mut self, n: usize) -> Vec<pb::EventReply> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.next().await.kind {
                Some(pb::server_frame::Kind::Replies(r)) => out.extend(r.replies),
                other => panic!("expected replies, got {other:?}"),
            }
        }
        out
    }

    /// The application error code the server closed the connection with.
    pub async fn closed_code(&self) -> u64 {
        let e = tokio::time::timeout(Duration::from_secs(10), self.conn.closed())
            .await
            .expect("closed within 10 s");
        match e {
            quinn::ConnectionError::ApplicationClosed(c) => c.error_code.into_inner(),
            other => panic!("expected an application close, got {other}"),
        }
    }
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

/// Fails the test instead of hanging.
pub async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("test step timed out")
}
