//! Sockets: binding UDP (read in `udp_lanes`), TCP and TLS accept loops and connections (framing by Content-Length),
//! each handing what it reads to the dialogue with the `Link` it came on.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_rustls::TlsAcceptor;
use vaka_scaip::{find_message, Frame};

use super::link::Link;
use super::shared::Shared;
use super::{dialogue, SipConfig, SipStartError};

/// Messages a connection may have queued for writing; past it the connection is too slow and
/// further messages to it are dropped (the device resends).
const WRITE_QUEUE: usize = 256;

pub(crate) fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Alarm bursts arrive together; a larger receive buffer rides them out.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

pub(crate) fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

/// The TLS server configuration from `sip.tls_cert` / `sip.tls_key`.
pub(crate) fn tls_acceptor(cfg: &SipConfig) -> Result<TlsAcceptor, SipStartError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |key: &str, path: &std::path::Path, reason: String| SipStartError::Config {
        key: key.into(),
        reason: format!(
            "{}: {reason} (`vaka certs` writes demo certificates)",
            path.display()
        ),
    };
    let certs = CertificateDer::pem_file_iter(&cfg.tls_cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad("sip.tls_cert", &cfg.tls_cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("sip.tls_cert", &cfg.tls_cert, "no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.tls_key)
        .map_err(|e| bad("sip.tls_key", &cfg.tls_key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("sip.tls_cert", &cfg.tls_cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("sip.tls_key", &cfg.tls_key, e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts TCP (or, with an acceptor, TLS) connections up to `max_connections`.
pub(crate) async fn accept_loop(sh: Arc<Shared>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = sh.intake.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "SIP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Refused before anything is read: a connection costs a descriptor until it closes.
        let all = sh.connections.clone().try_acquire_owned();
        let stranger = sh.unauthenticated.clone().try_acquire_owned();
        let (Ok(permit), Ok(stranger)) = (all, stranger) else {
            sh.metrics.connections_refused.increment(1);
            drop(stream);
            continue;
        };
        sh.metrics.connections_accepted.increment(1);
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or_else(|_| {
            listener
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
        });
        let sh2 = sh.clone();
        let tls = tls.clone();
        let stranger = Some(stranger);
        sh.tracker.spawn(async move {
            let _permit = permit;
            sh2.metrics.connections_active.increment(1.0);
            match tls {
                None => connection(&sh2, stream, peer, local, false, stranger).await,
                Some(acceptor) => {
                    let hs = Duration::from_secs(sh2.cfg.handshake_timeout_secs);
                    match tokio::time::timeout(hs, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => connection(&sh2, s, peer, local, true, stranger).await,
                        Ok(Err(e)) => {
                            sh2.metrics.handshake.increment(1);
                            tracing::debug!(%peer, error = %e, "SIP/TLS handshake failed");
                        }
                        Err(_) => {
                            sh2.metrics.handshake.increment(1);
                            tracing::debug!(%peer, "SIP/TLS handshake timed out");
                        }
                    }
                }
            }
            sh2.metrics.connections_active.decrement(1.0);
        });
    }
}

/// One stream connection: a writer task fed by a bounded queue, and this reader framing
/// messages by Content-Length. A framing error closes the connection (the stream can no longer
/// be delimited); a malformed but framed message costs only itself. A request must be complete
/// within `header_timeout_secs` of its first byte; `stranger` is the connection's place in the
/// unauthenticated share, given back once a request authenticates (until then the connection
/// may stay silent for two header timeouts, not the idle timeout).
async fn connection<S>(
    sh: &Arc<Shared>,
    stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    tls: bool,
    mut stranger: Option<OwnedSemaphorePermit>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    let token = sh.token.clone();
    // The writer outlives the reader while answers underway still hold the queue.
    sh.tracker.spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = token.cancelled() => break,
                m = rx.recv() => match m { Some(m) => m, None => break },
            };
            if wr.write_all(&msg).await.is_err() || wr.flush().await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let link = Link::stream(tx, tls, local, &sh.metrics);
    let max = sh.cfg.max_message_bytes;
    let idle = Duration::from_secs(sh.cfg.idle_timeout_secs);
    let header = Duration::from_secs(sh.cfg.header_timeout_secs);
    // When the first byte of the request not yet complete came.
    let mut started: Option<Instant> = None;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        // Take every complete message already buffered.
        loop {
            match find_message(&buf, max) {
                Ok(Frame::Incomplete) => break,
                Ok(Frame::KeepAlive(n)) => {
                    // RFC 5626: a CRLFCRLF ping gets a CRLF pong.
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        link.send(peer, b"\r\n".to_vec());
                    }
                    buf.drain(..n);
                }
                Ok(Frame::Message(n)) => {
                    if dialogue::handle(sh, &link, peer, &buf[..n]) {
                        drop(stranger.take());
                    }
                    buf.drain(..n);
                    // What is left began arriving with the read that completed this message.
                    started = None;
                }
                Err(vaka_scaip::FramingError::TooLarge) => {
                    // Answered 513 when its headers are in the buffer (Content-Length said it
                    // would pass the limit), then closed all the same: its body is not read,
                    // so the stream cannot be resynchronised to the next message. The writer
                    // sends what is queued (the 513) before it shuts the connection down. The
                    // size rule guards against forged sources, which a stream cannot have: the
                    // request is measured by what it claims, over the limit.
                    sh.metrics.bytes_received.increment(buf.len() as u64);
                    let head = &buf[..buf.len().min(max)];
                    tracing::debug!(%peer, "closing SIP connection: message too large");
                    if dialogue::too_large(sh, &link, peer, head, max + 1) {
                        drop(link);
                        discard_until_closed(sh, &mut rd, &mut chunk, header).await;
                    }
                    return;
                }
                Err(e) => {
                    sh.metrics.framing.increment(1);
                    tracing::debug!(%peer, error = %e, "closing SIP connection: cannot frame");
                    return;
                }
            }
        }
        if buf.is_empty() {
            started = None;
        } else if started.is_none() {
            started = Some(Instant::now());
        }
        // A partial request has until its header deadline; an empty buffer only the idle bound.
        // A stranger must be talking: silent for two header timeouts it is closed, so idle
        // connections cannot hold the unauthenticated share for the whole idle timeout.
        let quiet = if stranger.is_some() {
            idle.min(header * 2)
        } else {
            idle
        };
        let wait = match started {
            Some(at) => header.saturating_sub(at.elapsed()).min(quiet),
            None => quiet,
        };
        let n = tokio::select! {
            _ = sh.intake.cancelled() => return,
            r = tokio::time::timeout(wait, rd.read(&mut chunk)) => match r {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => n,
                Err(_) if started.is_some() => {
                    sh.metrics.header_timeout.increment(1);
                    tracing::debug!(%peer, "closing SIP connection: request not complete in time");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "closing idle SIP connection");
                    return;
                }
            },
        };
        if buf.is_empty() {
            started = Some(Instant::now());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads and throws away what the peer still sends, until it closes or `within` has passed.
/// Closing a socket with unread bytes makes the kernel reset the connection, and a reset can
/// destroy the answer just queued (the 513) before the peer reads it; the write side is shut
/// (once the queued answer is out) while this runs, so the peer sees the answer, then the end.
async fn discard_until_closed<R: AsyncRead + Unpin>(
    sh: &Shared,
    rd: &mut R,
    chunk: &mut [u8],
    within: Duration,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        tokio::select! {
            _ = sh.intake.cancelled() => return,
            r = tokio::time::timeout_at(deadline, rd.read(chunk)) => match r {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            },
        }
    }
}
