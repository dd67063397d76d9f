//! The running front: binding the listeners, starting their tasks, the handle and shutdown.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vaka_core::directory::SipCredential;
use vaka_core::DeviceKey;
use vaka_router::{Clock, LiveDirectory, Router};
use vaka_scaip::{DigestAlgorithm, NonceIssuer};

use super::shared::{Metrics, Shared, State};
use super::{transport, udp_lanes, SipConfig, SipListen, SipStartError};

/// SIP digest credentials for the directory, from a password: the HA1 values for `realm` under
/// both algorithms (the password itself is not kept).
pub fn sip_credential(
    username: &str,
    realm: &str,
    password: &str,
    single_use_nonce: bool,
) -> SipCredential {
    SipCredential {
        realm: realm.to_owned(),
        ha1_md5: DigestAlgorithm::Md5.ha1(username, realm, password),
        ha1_sha256: DigestAlgorithm::Sha256.ha1(username, realm, password),
        single_use_nonce,
    }
}

/// The bound addresses of the running transports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SipAddrs {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
}

/// The running SCAIP front. Call [`shutdown`](Self::shutdown) before `Router::shutdown`.
pub struct SipServer {
    addrs: SipAddrs,
    shared: Arc<Shared>,
}

impl SipServer {
    /// Binds the configured transports and starts serving on the current tokio runtime.
    /// The devices' digest credentials are read from `directory` (username = device id).
    /// `clock` stamps `received_ms` and drives timers (the router's, in paused-time tests).
    pub fn start(
        cfg: &SipConfig,
        listen: SipListen,
        router: Arc<Router>,
        directory: impl Into<LiveDirectory>,
        clock: Clock,
    ) -> Result<SipServer, SipStartError> {
        let directory = directory.into();
        cfg.validate()?;
        let algorithm = cfg.algorithm().ok_or_else(|| SipStartError::Config {
            key: "sip.digest_algorithm".into(),
            reason: "unsupported".into(),
        })?;
        let secret: [u8; 32] = rand::random();
        let issuer = NonceIssuer::new(&secret, cfg.nonce_lifetime_secs * 1000);
        let tls = match listen.tls {
            Some(_) => Some(transport::tls_acceptor(cfg)?),
            None => None,
        };
        let bind_err = |key: &'static str, addr: SocketAddr| {
            move |source| SipStartError::Bind { key, addr, source }
        };
        let udp = match listen.udp {
            Some(a) => Some(Arc::new(
                transport::bind_udp(a).map_err(bind_err("listen.sip_udp", a))?,
            )),
            None => None,
        };
        let tcp = match listen.tcp {
            Some(a) => Some(transport::bind_tcp(a).map_err(bind_err("listen.sip_tcp", a))?),
            None => None,
        };
        let tls_listener = match listen.tls {
            Some(a) => Some(transport::bind_tcp(a).map_err(bind_err("listen.sip_tls", a))?),
            None => None,
        };
        let local = |l: &Option<TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
        let addrs = SipAddrs {
            udp: udp.as_ref().and_then(|u| u.local_addr().ok()),
            tcp: local(&tcp),
            tls: local(&tls_listener),
        };
        let shared = Arc::new(Shared {
            cfg: cfg.clone(),
            algorithm,
            issuer,
            router,
            directory,
            clock,
            state: Mutex::new(State::new(cfg)),
            pending: Arc::new(Semaphore::new(cfg.max_pending)),
            telemetry_pending: Arc::new(Semaphore::new((cfg.max_pending / 2).max(1))),
            connections: Arc::new(Semaphore::new(cfg.max_connections)),
            unauthenticated: Arc::new(Semaphore::new((cfg.max_connections / 2).max(1))),
            intake: CancellationToken::new(),
            token: CancellationToken::new(),
            tracker: TaskTracker::new(),
            unsent: AtomicUsize::new(0),
            deciding: AtomicUsize::new(0),
            first_deciding: AtomicUsize::new(0),
            metrics: Metrics::new(),
        });
        if let (Some(u), Some(a)) = (udp, listen.udp) {
            udp_lanes::start(&shared, u).map_err(bind_err("listen.sip_udp", a))?;
        }
        if let Some(l) = tcp {
            shared
                .tracker
                .spawn(transport::accept_loop(shared.clone(), l, None));
        }
        if let (Some(l), Some(acceptor)) = (tls_listener, tls) {
            shared
                .tracker
                .spawn(transport::accept_loop(shared.clone(), l, Some(acceptor)));
        }
        tracing::info!(udp = ?addrs.udp, tcp = ?addrs.tcp, tls = ?addrs.tls, realm = %cfg.realm, "SCAIP front listening");
        Ok(SipServer { addrs, shared })
    }

    /// The bound addresses (useful with port 0).
    /// Looks up a device's registration (its Contact URI and when it lapses, unix ms); the
    /// function keeps the front's state alive and may outlive this handle.
    pub fn registration_lookup(
        &self,
    ) -> impl Fn(&DeviceKey) -> Option<(String, u64)> + Send + Sync + 'static {
        let shared = self.shared.clone();
        move |device| {
            let now = shared.now_ms();
            let b = shared
                .state()
                .registrar
                .lookup(device.device.as_str(), now)?;
            Some((b.uri, b.expires_at_ms))
        }
    }

    pub fn addrs(&self) -> SipAddrs {
        self.addrs
    }

    /// Registered contacts held now.
    pub fn registrations(&self) -> usize {
        self.shared.state().registrar.len()
    }

    /// Server transactions held now (only authenticated requests make one).
    pub fn transactions(&self) -> usize {
        self.shared.state().transactions.len()
    }

    /// Nonces held for the replay check (used with qop, or single-use ones).
    pub fn nonces_tracked(&self) -> usize {
        self.shared.state().nonces.len()
    }

    /// Stops taking requests, lets answers already underway go out (bounded by
    /// `drain_timeout_secs`), then stops every task. Call before `Router::shutdown`.
    pub async fn shutdown(&self) {
        let sh = &self.shared;
        sh.intake.cancel();
        // Answers underway: wait until each has sent its `<mrs>` once (not for the device's
        // response to it, nor for retransmissions).
        let drain = std::time::Duration::from_secs(sh.cfg.drain_timeout_secs);
        let settled = async {
            while sh.unsent.load(Ordering::Acquire) > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        if tokio::time::timeout(drain, settled).await.is_err() {
            tracing::warn!(
                unsent = sh.unsent.load(Ordering::Acquire),
                "SCAIP answers still pending at shutdown; those devices will resend"
            );
        }
        sh.token.cancel();
        sh.tracker.close();
        let _ = tokio::time::timeout(drain, sh.tracker.wait()).await;
        tracing::info!("SCAIP front stopped");
    }
}
