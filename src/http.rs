//! The engine's HTTP server on `listen.http`: Prometheus text at `/metrics` from the first moment,
//! and the admin API (`/api/v1`) once the engine has started (503 before). HTTPS when
//! `admin.tls_cert`/`tls_key` are set (rustls), plain HTTP otherwise.
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tower_service::Service;

/// HTTPS settings: certificate, key, and the CA clients' certificates must come from (mTLS).
pub struct Tls<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    pub client_ca: Option<&'a Path>,
}

/// Where the admin API is plugged in once the engine runs.
pub type ApiSlot = Arc<OnceLock<Router>>;

/// Binds `addr` (an error names it) and serves until the process ends.
pub async fn start(
    addr: SocketAddr,
    metrics: PrometheusHandle,
    tls: Option<Tls<'_>>,
) -> Result<(ApiSlot, SocketAddr), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("listen.http {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let slot: ApiSlot = Arc::new(OnceLock::new());
    let api = slot.clone();
    let app = Router::new()
        .route("/metrics", get(move || async move { metrics.render() }))
        .fallback(move |req: Request| {
            let api = api.clone();
            async move {
                match api.get() {
                    Some(r) => r.clone().call(req).await.into_response(),
                    None => starting(),
                }
            }
        });
    match tls {
        None => {
            tokio::spawn(async move {
                // The peer's address goes with each request (the responder page's rate limit).
                let app = app.into_make_service_with_connect_info::<SocketAddr>();
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "HTTP server ended");
                }
            });
        }
        Some(tls) => {
            let acceptor = tls_acceptor(&tls)?;
            tokio::spawn(serve_tls(listener, acceptor, app));
        }
    }
    Ok((slot, local))
}

fn starting() -> Response {
    let mut r = (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        r#"{"type":"urn:vaka:problem:starting","title":"Service Unavailable","status":503,"detail":"the engine is starting"}"#,
    )
        .into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/problem+json"),
    );
    r
}

fn tls_acceptor(tls: &Tls<'_>) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pems = |path: &Path, key: &str| {
        CertificateDer::pem_file_iter(path)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{key} {}: {e}", path.display()))
    };
    let certs = pems(tls.cert, "admin.tls_cert")?;
    let key = PrivateKeyDer::from_pem_file(tls.key)
        .map_err(|e| format!("admin.tls_key {}: {e}", tls.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("admin TLS: {e}"))?;
    let builder = match tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in pems(ca, "admin.client_ca")? {
                roots.add(c).map_err(|e| format!("admin.client_ca: {e}"))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| format!("admin.client_ca: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("admin.tls_key: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// Accepts connections, completes TLS (bounded in time) and serves each with hyper.
async fn serve_tls(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor, app: Router) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let handshake =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp));
            let tls = match handshake.await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "HTTPS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let app = app.layer(axum::Extension(axum::extract::ConnectInfo(remote)));
            let service = TowerToHyperService::new(app);
            if let Err(e) = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%remote, error = %e, "HTTPS connection ended");
            }
        });
    }
}
