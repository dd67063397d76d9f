//! The QUIC client configuration: TLS 1.3 (ring), the device certificate, the server CA.
use std::net::SocketAddr;
use std::sync::Arc;

use quinn::{IdleTimeout, TransportConfig, VarInt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{ClientError, DeviceConfig};

/// A client endpoint (one UDP socket) that many [`Client`](crate::Client)s may share: pass it to
/// [`Client::connect_with`](crate::Client::connect_with). Bind to `0.0.0.0:0` (or `[::]:0`).
///
/// The socket asks for 4 MiB buffers (the kernel caps them at `net.core.{r,w}mem_max`): the
/// default ~200 KiB overflows when thousands of connections share one socket, e.g. a gateway or
/// the load tool, and every dropped datagram costs a retransmission timeout.
pub fn client_endpoint(bind: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    use socket2::{Domain, Protocol, Socket, Type};
    const BUFFER: usize = 4 << 20;
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    if bind.is_ipv6() {
        // As quinn's own client endpoint: reach IPv4 servers too where the platform allows.
        let _ = socket.set_only_v6(false);
    }
    // Best effort: a smaller buffer still works.
    let _ = socket.set_recv_buffer_size(BUFFER);
    let _ = socket.set_send_buffer_size(BUFFER);
    socket.bind(&bind.into())?;
    let runtime =
        quinn::default_runtime().ok_or_else(|| std::io::Error::other("no async runtime found"))?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        socket.into(),
        runtime,
    )
}

/// The quinn client configuration for a device: TLS 1.3 with its certificate, the server CA,
/// ALPN `vaka/1`, its idle timeout and keep-alive. [`Client`](crate::Client) uses it; it is public
/// for tools that speak vaka/1 on raw streams.
pub fn quic_client_config(cfg: &DeviceConfig) -> Result<quinn::ClientConfig, ClientError> {
    let err = |what: &str, e: &dyn std::fmt::Display| ClientError::Config(format!("{what}: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&cfg.server_ca_pem) {
        let c = c.map_err(|e| err("server CA", &e))?;
        roots.add(c).map_err(|e| err("server CA", &e))?;
    }
    if roots.is_empty() {
        return Err(ClientError::Config("server CA: no certificate".into()));
    }
    let chain = CertificateDer::pem_slice_iter(&cfg.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err("device certificate", &e))?;
    if chain.is_empty() {
        return Err(ClientError::Config("device certificate: none found".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&cfg.key_pem).map_err(|e| err("device key", &e))?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| err("tls", &e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| err("device certificate", &e))?;
    tls.alpn_protocols = vec![vaka_proto::ALPN.to_vec()];
    let quic =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| err("tls", &e))?;
    let mut c = quinn::ClientConfig::new(Arc::new(quic));
    let mut t = TransportConfig::default();
    t.max_idle_timeout(Some(
        IdleTimeout::try_from(cfg.idle_timeout).map_err(|e| err("idle_timeout", &e))?,
    ));
    t.keep_alive_interval(cfg.keep_alive);
    // The server opens no streams and there are no datagrams.
    t.max_concurrent_bidi_streams(VarInt::from_u32(0));
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    t.datagram_receive_buffer_size(None);
    c.transport_config(Arc::new(t));
    Ok(c)
}
