//! Shared scaffolding for the centre API tests: a directory with three tenants, a router and the
//! gRPC server on 127.0.0.1:0, and a scripted centre client speaking the real protocol.
#![allow(dead_code)]
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use vaka_centre::console::{self, ClientTls};
use vaka_centre::pb::{self, centre_message::Msg as In, server_message::Msg as Out};
use vaka_centre::{CentreApiConfig, CentreServer, CentreService, Credentials};
use vaka_core::directory::{Centre as CentreInfo, Device, Directory, Tenant};
use vaka_core::gps::Fix;
use vaka_core::{AlarmId, AlarmInfo, CentreId, DeviceKey, Event, EventKind};
use vaka_router::{Clock, Presence, Reply, Router, RouterConfig};
use vaka_store::{Backend, GroupConfig, RecoverOptions, Store};

pub const T0: i64 = 1_700_000_000_000;

/// Tenant `a`: chain ca1 -> ca2. Tenant `b`: chain cb. Tenant `c`: chain cc alone.
/// Every centre's token is `token-of-<centre>`.
pub fn directory(devices: usize) -> Directory {
    let mut d = Directory::default();
    for (t, chain) in [
        ("a", vec!["ca1", "ca2"]),
        ("b", vec!["cb"]),
        ("c", vec!["cc"]),
    ] {
        d.insert_tenant(Tenant::new(t, &chain));
        for i in 0..devices {
            d.insert_device(Device::new(DeviceKey::new(t, format!("d{i}")), "0003"));
        }
    }
    for (c, t) in [("ca1", "a"), ("ca2", "a"), ("cb", "b"), ("cc", "c")] {
        d.insert_centre(CentreInfo::new(c, &[t]));
    }
    d
}

pub fn token(centre: &str) -> String {
    format!("token-of-{centre}")
}

pub fn credentials() -> Credentials {
    Credentials::new(
        ["ca1", "ca2", "cb", "cc"]
            .into_iter()
            .map(|c| (CentreId::new(c), Some(token(c)))),
    )
}

/// Centre API settings for tests: no HTTP/2 pings (paused time would make them time out).
pub fn test_config() -> CentreApiConfig {
    CentreApiConfig {
        keepalive: None,
        ack_timeout: Duration::from_secs(3600),
        heartbeat: Duration::from_secs(3600),
        ..CentreApiConfig::default()
    }
}

pub struct World {
    pub backend: Arc<dyn Backend>,
    pub store: Store,
    pub router: Arc<Router>,
    pub server: Option<CentreServer>,
    pub addr: SocketAddr,
}

impl World {
    pub async fn start(backend: Arc<dyn Backend>, clock: Clock, cfg: CentreApiConfig) -> World {
        Self::start_with(backend, clock, cfg, None).await
    }

    pub async fn start_with(
        backend: Arc<dyn Backend>,
        clock: Clock,
        cfg: CentreApiConfig,
        tls: Option<&vaka_centre::TlsFiles>,
    ) -> World {
        Self::start_sized(backend, clock, cfg, tls, 50).await
    }

    /// `devices` devices per tenant.
    pub async fn start_sized(
        backend: Arc<dyn Backend>,
        clock: Clock,
        cfg: CentreApiConfig,
        tls: Option<&vaka_centre::TlsFiles>,
        devices: usize,
    ) -> World {
        let grace = RouterConfig::default().reconnect_grace_ms;
        Self::start_full(backend, clock, cfg, tls, devices, grace).await
    }

    /// Without a reconnect grace: a centre whose stream closes is passed at once.
    pub async fn start_without_grace(
        backend: Arc<dyn Backend>,
        clock: Clock,
        cfg: CentreApiConfig,
    ) -> World {
        Self::start_full(backend, clock, cfg, None, 50, 0).await
    }

    async fn start_full(
        backend: Arc<dyn Backend>,
        clock: Clock,
        cfg: CentreApiConfig,
        tls: Option<&vaka_centre::TlsFiles>,
        devices: usize,
        reconnect_grace_ms: i64,
    ) -> World {
        let (store, rec) = Store::open(
            backend.clone(),
            GroupConfig::default(),
            RecoverOptions {
                now_ms: clock.now_ms(),
                idem_window_ms: 60_000,
            },
        )
        .unwrap();
        let dir = Arc::new(directory(devices));
        let rc = RouterConfig {
            shards: 2,
            reconnect_grace_ms,
            ..RouterConfig::default()
        };
        let router = Router::start(rc, store.clone(), rec, dir.clone(), Presence::new(), clock);
        let service = CentreService::new(
            store.clone(),
            router.clone(),
            dir,
            credentials(),
            cfg,
            clock,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = CentreServer::serve(listener, service, tls).unwrap();
        let addr = server.local_addr();
        World {
            backend,
            store,
            router,
            server: Some(server),
            addr,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A device of `tenant` raises an alarm; returns its id once durable.
    pub async fn raise(&self, tenant: &str, device: &str, key: &str) -> (AlarmId, bool) {
        match self
            .router
            .submit(alarm(tenant, device, key))
            .await
            .unwrap()
        {
            Reply::Accepted {
                alarm: Some(a),
                centre_available,
                ..
            } => (a, centre_available),
            other => panic!("{other:?}"),
        }
    }

    pub fn is_reachable(&self, centre: &str) -> bool {
        self.router.presence().is_reachable(&CentreId::new(centre))
    }

    pub async fn client(&self, centre: &str) -> console::Client {
        console::connect(&self.url(), Some(&token(centre)), ClientTls::default())
            .await
            .unwrap()
    }

    pub async fn shutdown(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown(Duration::from_secs(2)).await;
        }
        self.router.shutdown().await;
        self.store.close().unwrap();
    }
}

pub fn alarm(tenant: &str, device: &str, key: &str) -> Event {
    Event {
        device: DeviceKey::new(tenant, device),
        key: key.into(),
        received_ms: 1,
        kind: EventKind::Alarm(AlarmInfo {
            code: "0010".into(),
            priority: 2,
            text: Some("fallen in the kitchen".into()),
            callback: vec!["gsm:+46701234567".into()],
        }),
        fix: Some(Fix::at(T0, 57.7089, 11.9746).with_accuracy(15.0)),
        raw: b"<mrq/>".to_vec(),
        occurred_ms: None,
    }
}

/// A future that completes after `d` of real time, whatever tokio's clock does.
pub fn real_time(d: Duration) -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        let _ = tx.send(());
    });
    rx
}

/// A scripted centre on one stream.
pub struct Centre {
    pub up: mpsc::Sender<pb::CentreMessage>,
    pub down: Streaming<pb::ServerMessage>,
    pub welcome: pb::Welcome,
    next_request: u64,
    /// Messages that arrived while waiting for an input's result, in order.
    buffered: std::collections::VecDeque<Out>,
}

impl Centre {
    pub async fn connect(world: &World, centre: &str, resume_after: Option<u64>) -> Centre {
        Self::try_connect(&world.url(), &token(centre), resume_after)
            .await
            .unwrap()
    }

    pub async fn try_connect(
        url: &str,
        token: &str,
        resume_after: Option<u64>,
    ) -> Result<Centre, tonic::Status> {
        let mut client = console::connect(url, Some(token), ClientTls::default())
            .await
            .unwrap();
        Self::open(&mut client, resume_after).await
    }

    pub async fn open(
        client: &mut console::Client,
        resume_after: Option<u64>,
    ) -> Result<Centre, tonic::Status> {
        let (up, rx) = mpsc::channel(64);
        up.send(pb::CentreMessage {
            msg: Some(In::Hello(pb::Hello {
                resume_after,
                client: "test".into(),
            })),
        })
        .await
        .unwrap();
        let mut down = client.session(ReceiverStream::new(rx)).await?.into_inner();
        let first = down.message().await?;
        match first.and_then(|m| m.msg) {
            Some(Out::Welcome(welcome)) => Ok(Centre {
                up,
                down,
                welcome,
                next_request: 0,
                buffered: Default::default(),
            }),
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    /// The next message that is not a heartbeat, within 10 s of real time.
    pub async fn next(&mut self) -> Result<Out, tonic::Status> {
        if let Some(m) = self.buffered.pop_front() {
            return Ok(m);
        }
        self.receive().await
    }

    async fn receive(&mut self) -> Result<Out, tonic::Status> {
        let mut deadline = real_time(Duration::from_secs(10));
        loop {
            tokio::select! {
                m = self.down.message() => match m? {
                    Some(pb::ServerMessage { msg: Some(Out::Heartbeat(_)) }) => continue,
                    Some(pb::ServerMessage { msg: Some(m) }) => return Ok(m),
                    Some(_) => panic!("empty server message"),
                    None => return Err(tonic::Status::cancelled("stream ended")),
                },
                _ = &mut deadline => panic!("no message from the server within 10 s"),
            }
        }
    }

    pub async fn offer(&mut self) -> pb::Offer {
        match self.next().await.unwrap() {
            Out::Offer(o) => o,
            other => panic!("expected an offer, got {other:?}"),
        }
    }

    pub async fn update(&mut self) -> pb::Update {
        match self.next().await.unwrap() {
            Out::Update(u) => u,
            other => panic!("expected an update, got {other:?}"),
        }
    }

    /// Nothing but heartbeats arrives for `d` of real time.
    pub async fn quiet_for(&mut self, d: Duration) {
        assert!(
            self.buffered.is_empty(),
            "expected silence, have {:?}",
            self.buffered
        );
        let mut deadline = real_time(d);
        loop {
            tokio::select! {
                m = self.down.message() => match m {
                    Ok(Some(pb::ServerMessage { msg: Some(Out::Heartbeat(_)) })) => continue,
                    other => panic!("expected silence, got {other:?}"),
                },
                _ = &mut deadline => return,
            }
        }
    }

    pub async fn send(&self, msg: In) {
        self.up
            .send(pb::CentreMessage { msg: Some(msg) })
            .await
            .unwrap();
    }

    pub async fn ack(&self, cursor: u64) {
        self.send(In::Ack(pb::Ack { cursor })).await;
    }

    /// Sends an input and waits for its result; what arrives meanwhile is kept for `next`.
    pub async fn act(&mut self, msg: In) -> pb::InputResult {
        self.next_request += 1;
        let id = self.next_request;
        let msg = match msg {
            In::Receipt(mut r) => {
                r.request_id = id;
                In::Receipt(r)
            }
            In::Accept(mut a) => {
                a.request_id = id;
                In::Accept(a)
            }
            In::Close(mut c) => {
                c.request_id = id;
                In::Close(c)
            }
            In::Refuse(mut r) => {
                r.request_id = id;
                In::Refuse(r)
            }
            other => other,
        };
        self.send(msg).await;
        loop {
            match self.receive().await.unwrap() {
                Out::Result(r) if r.request_id == id => return r,
                o => self.buffered.push_back(o),
            }
        }
    }

    pub async fn receipt(&mut self, alarm: u64) -> pb::InputResult {
        self.act(In::Receipt(pb::Receipt {
            request_id: 0,
            alarm_id: alarm,
        }))
        .await
    }

    pub async fn accept(&mut self, alarm: u64, operator: &str) -> pb::InputResult {
        self.act(In::Accept(pb::Accept {
            request_id: 0,
            alarm_id: alarm,
            operator_id: operator.into(),
        }))
        .await
    }

    pub async fn close(&mut self, alarm: u64, outcome: &str, note: &str) -> pb::InputResult {
        self.act(In::Close(pb::Close {
            request_id: 0,
            alarm_id: alarm,
            outcome: outcome.into(),
            note: note.into(),
        }))
        .await
    }

    /// The status the stream ended with.
    pub async fn ended(&mut self) -> tonic::Status {
        loop {
            match self.next().await {
                Ok(_) => continue,
                Err(s) => return s,
            }
        }
    }
}

pub fn code(r: &pb::InputResult) -> tonic::Code {
    tonic::Code::from(r.code)
}

/// Keeps a paused runtime busy so its clock moves only when the test advances it (the store's
/// committer is a thread the runtime cannot see).
pub fn hold_clock() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        loop {
            tokio::task::yield_now().await;
        }
    })
}

/// Waits (real time, bounded) until `f` holds.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting: {what}"
        );
        // Never tokio's sleep: with paused time and a busy runtime it would not end.
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}
