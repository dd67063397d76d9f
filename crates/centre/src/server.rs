//! The gRPC server: the AlarmCentre service plus gRPC health and reflection (so grpcurl and any
//! gRPC client can find their way), optionally over TLS with client certificates.
use crate::pb;
use crate::service::CentreService;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

/// TLS for the centre API. With `client_ca`, a centre may authenticate with a certificate issued
/// by that CA whose subject CN is its centre id; bearer tokens keep working over TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn server_config(&self) -> Result<ServerTlsConfig, String> {
        let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let mut cfg = ServerTlsConfig::new()
            .identity(Identity::from_pem(read(&self.cert)?, read(&self.key)?));
        if let Some(ca) = &self.client_ca {
            cfg = cfg
                .client_ca_root(Certificate::from_pem(read(ca)?))
                .client_auth_optional(true);
        }
        Ok(cfg)
    }
}

/// A running centre API server.
pub struct CentreServer {
    addr: SocketAddr,
    service: CentreService,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl CentreServer {
    /// Binds `addr` and serves on the current tokio runtime.
    pub fn start(
        addr: SocketAddr,
        service: CentreService,
        tls: Option<&TlsFiles>,
    ) -> Result<CentreServer, String> {
        let listener = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|_| l))
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(|e| format!("centre API on {addr}: {e}"))?;
        Self::serve(listener, service, tls)
    }

    /// Serves on a listener the caller bound (tests bind port 0).
    pub fn serve(
        listener: tokio::net::TcpListener,
        service: CentreService,
        tls: Option<&TlsFiles>,
    ) -> Result<CentreServer, String> {
        let addr = listener
            .local_addr()
            .map_err(|e| format!("centre API listener: {e}"))?;
        let keepalive = service.shared.cfg.keepalive;
        let mut builder = Server::builder()
            .http2_keepalive_interval(keepalive)
            .http2_keepalive_timeout(keepalive)
            .concurrency_limit_per_connection(64);
        if let Some(tls) = tls {
            builder = builder
                .tls_config(tls.server_config()?)
                .map_err(|e| format!("centre API TLS: {e}"))?;
        }
        let (reporter, health) = tonic_health::server::health_reporter();
        // Both reflection versions: v1, and v1alpha, which older grpcurl, Postman, Evans and
        // the Python grpcio-reflection client speak.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection()
            .build_v1()
            .map_err(|e| format!("reflection service: {e}"))?;
        let reflection_v1alpha = reflection()
            .build_v1alpha()
            .map_err(|e| format!("reflection service (v1alpha): {e}"))?;
        let routes = builder
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(service.clone().into_server());
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let (stop, stopped) = oneshot::channel::<()>();
        let store_state = service.shared.store.state();
        let task = tokio::spawn(async move {
            tokio::spawn(follow_store(reporter, store_state));
            routes
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(%addr, tls = tls.is_some(), "centre API listening");
        Ok(CentreServer {
            addr,
            service,
            stop: Some(stop),
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn service(&self) -> &CentreService {
        &self.service
    }

    /// Ends every centre stream (UNAVAILABLE, nothing escalated for it), stops accepting and
    /// waits up to `bound` for connections to close.
    pub async fn shutdown(mut self, bound: Duration) {
        self.service.stop_streams();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(bound, &mut self.task).await {
            Ok(Ok(Ok(()))) => tracing::info!("centre API stopped"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "centre API ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "centre API task failed"),
            Err(_) => {
                tracing::warn!(
                    bound_ms = bound.as_millis() as u64,
                    "centre API did not stop in time; connections dropped"
                );
                self.task.abort();
            }
        }
    }
}

/// gRPC health follows the store (invariant 12): NOT_SERVING while a storage error keeps
/// commits failing, SERVING again once it recovers; for the service and the server as a whole.
async fn follow_store(
    reporter: tonic_health::server::HealthReporter,
    mut state: tokio::sync::watch::Receiver<vaka_store::StoreState>,
) {
    type Service = pb::alarm_centre_server::AlarmCentreServer<CentreService>;
    loop {
        let serving = *state.borrow_and_update() == vaka_store::StoreState::Serving;
        if serving {
            reporter.set_serving::<Service>().await;
            reporter
                .set_service_status("", tonic_health::ServingStatus::Serving)
                .await;
        } else {
            reporter.set_not_serving::<Service>().await;
            reporter
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}
