//! Endpoints, the accept loops, the connection limit and shutdown.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::{EndpointConfig, IdleTimeout, TransportConfig, VarInt};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vaka_core::DeviceKey;
use vaka_proto::codes;
use vaka_router::{Clock, LiveDirectory, Router};

use super::shared::{Metrics, Shared};
use super::tls::{self, TenantVerifier};
use super::{conn, QuicConfig, QuicError};
use crate::low_priority::LowPriorityThread;

/// On every directory change, closes with `IDENTITY` the connections of devices that are no
/// longer enabled in it. One task for the front: a connection's own task never waits on the
/// directory (that would touch a shared waiter list at every wake-up of every connection).
async fn close_removed(shared: Arc<Shared>) {
    let mut changes = shared.directory.watch();
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = shared.token.cancelled() => return,
        }
        let dir = shared.directory.load();
        let gone: Vec<quinn::Connection> = shared
            .connected()
            .iter()
            .filter(|(device, _)| dir.device(device).is_none())
            .flat_map(|(_, conns)| conns.iter().map(|(c, _)| c.clone()))
            .collect();
        for c in gone {
            c.close(VarInt::from_u32(codes::IDENTITY), conn::REMOVED.as_bytes());
        }
    }
}

/// The running QUIC front. Dropping it without [`shutdown`](Self::shutdown) leaves the tasks
/// running until the runtime ends.
pub struct QuicServer {
    /// Taken (and so dropped, freeing the UDP ports) by `shutdown`.
    endpoints: Mutex<Vec<quinn::Endpoint>>,
    addrs: Vec<SocketAddr>,
    telemetry_addr: Option<SocketAddr>,
    /// The telemetry port's thread, stopped by `shutdown`.
    telemetry_thread: Mutex<Option<LowPriorityThread>>,
    shared: Arc<Shared>,
    accept: Mutex<Vec<JoinHandle<()>>>,
    tracker: TaskTracker,
}

impl QuicServer {
    /// Reads the certificates, binds the endpoints and starts accepting, on the current tokio
    /// runtime. Errors name the configuration key at fault.
    pub fn start(
        cfg: &QuicConfig,
        router: Arc<Router>,
        directory: impl Into<LiveDirectory>,
    ) -> Result<QuicServer, QuicError> {
        Self::start_with_clock(cfg, router, directory, Clock::new())
    }

    /// [`start`](Self::start) with the clock that stamps `received_ms` (the router's, in tests
    /// with paused time).
    pub fn start_with_clock(
        cfg: &QuicConfig,
        router: Arc<Router>,
        directory: impl Into<LiveDirectory>,
        clock: Clock,
    ) -> Result<QuicServer, QuicError> {
        let directory = directory.into();
        cfg.validate()?;
        let provider = tls::provider();
        let verifier = Arc::new(TenantVerifier::load(
            cfg,
            directory.clone(),
            provider.clone(),
        )?);
        let certs = tls::load_certs(&cfg.server_cert, "quic.server_cert")?;
        let key = tls::load_key(&cfg.server_key, "quic.server_key")?;
        let mut tls_cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| config_err("quic", e))?
            .with_client_cert_verifier(verifier.clone())
            .with_single_cert(certs, key)
            .map_err(|e| config_err("quic.server_key", e))?;
        tls_cfg.alpn_protocols = vec![vaka_proto::ALPN.to_vec()];
        let quic_tls = quinn::crypto::rustls::QuicServerConfig::try_from(tls_cfg)
            .map_err(|e| config_err("quic", e))?;
        let mut server_cfg = quinn::ServerConfig::with_crypto(Arc::new(quic_tls));
        server_cfg.transport_config(Arc::new(transport(cfg)?));

        // One endpoint config for all: the same stateless-reset key, so a device whose packets
        // reach another endpoint (SO_REUSEPORT after an address change) gets a reset it trusts
        // and reconnects at once instead of waiting for its idle timeout.
        let endpoint_cfg = EndpointConfig::default();
        let mut endpoints = Vec::with_capacity(cfg.endpoints);
        let mut addrs = Vec::with_capacity(cfg.endpoints);
        for i in 0..cfg.endpoints {
            let addr = match (i, cfg.reuse_port) {
                (0, _) => cfg.listen,
                (_, true) => addrs[0],
                (_, false) if cfg.listen.port() == 0 => cfg.listen,
                (_, false) => SocketAddr::new(cfg.listen.ip(), cfg.listen.port() + i as u16),
            };
            let socket = bind(
                addr,
                cfg.reuse_port && cfg.endpoints > 1,
                cfg.socket_buffer_bytes,
            )
            .map_err(|source| QuicError::Bind { addr, source })?;
            let ep = quinn::Endpoint::new(
                endpoint_cfg.clone(),
                Some(server_cfg.clone()),
                socket,
                Arc::new(quinn::TokioRuntime),
            )
            .map_err(|source| QuicError::Bind { addr, source })?;
            addrs.push(
                ep.local_addr()
                    .map_err(|source| QuicError::Bind { addr, source })?,
            );
            endpoints.push(ep);
        }

        // The telemetry port: its endpoint is made inside its thread's runtime, so that
        // quinn's driver for it runs there.
        let telemetry = match cfg.telemetry_listen {
            None => None,
            Some(addr) => {
                let thread = LowPriorityThread::start("vaka-quic-telem", cfg.telemetry_nice)
                    .map_err(|source| QuicError::Bind { addr, source })?;
                let socket = bind(addr, false, cfg.socket_buffer_bytes)
                    .map_err(|source| QuicError::Bind { addr, source })?;
                let ep = {
                    let _in_its_runtime = thread.handle().enter();
                    quinn::Endpoint::new(
                        endpoint_cfg.clone(),
                        Some(server_cfg.clone()),
                        socket,
                        Arc::new(quinn::TokioRuntime),
                    )
                    .map_err(|source| QuicError::Bind { addr, source })?
                };
                let bound = ep
                    .local_addr()
                    .map_err(|source| QuicError::Bind { addr, source })?;
                Some((thread, ep, bound))
            }
        };

        let shared = Arc::new(Shared {
            router,
            directory,
            verifier,
            clock,
            token: CancellationToken::new(),
            max_frame_bytes: cfg.max_frame_bytes,
            max_events_per_frame: cfg.max_events_per_frame,
            max_inflight_events: cfg.max_inflight_events,
            hello_timeout: cfg.hello_timeout(),
            drain_timeout: cfg.drain_timeout(),
            metrics: Metrics::new(),
            flow: super::alarm_flow::AlarmFlow::new(),
            connected: Mutex::new(std::collections::HashMap::new()),
        });
        let limit = Arc::new(Semaphore::new(cfg.max_connections));
        let tracker = TaskTracker::new();
        let mut accept: Vec<JoinHandle<()>> = endpoints
            .iter()
            .map(|ep| {
                tokio::spawn(accept_loop(
                    ep.clone(),
                    shared.clone(),
                    limit.clone(),
                    tracker.clone(),
                ))
            })
            .collect();
        accept.push(tokio::spawn(close_removed(shared.clone())));
        let (telemetry_thread, telemetry_addr) = match telemetry {
            None => (None, None),
            Some((thread, ep, bound)) => {
                // Its own connection limit: telemetry never takes an alarm device's place.
                let limit = Arc::new(Semaphore::new(cfg.telemetry_max_connections));
                accept.push(thread.handle().spawn(accept_loop(
                    ep.clone(),
                    shared.clone(),
                    limit,
                    tracker.clone(),
                )));
                endpoints.push(ep);
                tracing::info!(addr = %bound, nice = cfg.telemetry_nice, "quic: telemetry port listening");
                (Some(thread), Some(bound))
            }
        };
        tracing::info!(addrs = ?addrs, endpoints = cfg.endpoints, tenants = cfg.tenant_cas.len(), "quic: listening (vaka/1)");
        Ok(QuicServer {
            endpoints: Mutex::new(endpoints),
            addrs,
            telemetry_addr,
            telemetry_thread: Mutex::new(telemetry_thread),
            shared,
            accept: Mutex::new(accept),
            tracker,
        })
    }

    /// The bound address of each endpoint (the first is `quic.listen` with its port resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Looks up a device's open connections: remote address and since when (unix ms).
    pub fn connection_lookup(
        &self,
    ) -> impl Fn(&DeviceKey) -> Vec<(SocketAddr, i64)> + Send + Sync + 'static {
        let shared = self.shared.clone();
        move |device| {
            shared
                .connected()
                .get(device)
                .map(|v| v.iter().map(|(c, t)| (c.remote_address(), *t)).collect())
                .unwrap_or_default()
        }
    }

    /// The telemetry port's bound address (`listen.quic_telemetry`), if it has one.
    pub fn telemetry_addr(&self) -> Option<SocketAddr> {
        self.telemetry_addr
    }

    /// The first endpoint's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Open connections now.
    pub fn connections(&self) -> usize {
        self.tracker.len()
    }

    /// Stops accepting, lets every connection answer what it already submitted (bounded by
    /// `drain_timeout_secs`), closes them with [`codes::SHUTDOWN`] and waits (about a second at
    /// most) for the closes to be sent, and releases the UDP ports. Call before
    /// `Router::shutdown`. Idempotent.
    pub async fn shutdown(&self) {
        self.shared.token.cancel();
        let endpoints: Vec<_> = self
            .endpoints
            .lock()
            .expect("endpoints lock")
            .drain(..)
            .collect();
        for ep in &endpoints {
            ep.set_server_config(None);
        }
        let accept: Vec<_> = self.accept.lock().expect("accept lock").drain(..).collect();
        for t in accept {
            let _ = t.await;
        }
        self.tracker.close();
        let grace = self.shared.drain_timeout + Duration::from_secs(1);
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                connections = self.tracker.len(),
                "quic: connections still draining at the deadline: closing them"
            );
        }
        for ep in &endpoints {
            ep.close(VarInt::from_u32(codes::SHUTDOWN), b"server shutting down");
        }
        for ep in &endpoints {
            let _ = tokio::time::timeout(Duration::from_secs(1), ep.wait_idle()).await;
        }
        if let Some(mut t) = self.telemetry_thread.lock().expect("thread lock").take() {
            t.stop();
        }
        tracing::info!("quic: stopped");
    }
}

fn config_err(key: &str, e: impl std::fmt::Display) -> QuicError {
    QuicError::Config {
        key: key.into(),
        reason: e.to_string(),
    }
}

fn transport(cfg: &QuicConfig) -> Result<TransportConfig, QuicError> {
    let mut t = TransportConfig::default();
    t.max_idle_timeout(Some(
        IdleTimeout::try_from(cfg.idle_timeout())
            .map_err(|e| config_err("quic.idle_timeout_secs", e))?,
    ));
    t.keep_alive_interval(
        (cfg.keep_alive_secs > 0).then(|| Duration::from_secs(cfg.keep_alive_secs)),
    );
    // One stream per connection; no datagrams.
    t.max_concurrent_bidi_streams(VarInt::from_u32(1));
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    t.datagram_receive_buffer_size(None);
    if !cfg.mtu_discovery {
        t.mtu_discovery_config(None);
    }
    // Room for a few frames in flight each way; a limit, not an allocation.
    let window = (cfg.max_frame_bytes as u64 * 4).clamp(256 * 1024, 64 * 1024 * 1024);
    let window = VarInt::from_u64(window).map_err(|e| config_err("quic.max_frame_bytes", e))?;
    t.stream_receive_window(window);
    t.receive_window(window);
    t.send_window(window.into_inner());
    Ok(t)
}

fn bind(addr: SocketAddr, reuse_port: bool, buffer: usize) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        #[cfg(unix)]
        s.set_reuse_port(true)?;
    }
    if buffer > 0 {
        // Best effort: the kernel caps these at net.core.{r,w}mem_max.
        let _ = s.set_recv_buffer_size(buffer);
        let _ = s.set_send_buffer_size(buffer);
    }
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

async fn accept_loop(
    ep: quinn::Endpoint,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    tracker: TaskTracker,
) {
    loop {
        let incoming = tokio::select! {
            _ = shared.token.cancelled() => break,
            i = ep.accept() => match i {
                Some(i) => i,
                None => break,
            },
        };
        match limit.clone().try_acquire_owned() {
            Ok(permit) => {
                // Boxed: the task keeps its arguments for its whole life, and an Incoming is large.
                tracker.spawn(conn::handle(Box::new(incoming), permit, shared.clone()));
            }
            Err(_) => {
                shared.metrics.connections_refused.increment(1);
                tracing::debug!(remote = %incoming.remote_address(), "quic: connection limit reached, refused");
                incoming.refuse();
            }
        }
    }
}
