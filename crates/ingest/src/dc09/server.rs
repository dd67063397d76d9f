//! The DC-09 listeners: UDP datagrams and TCP connections, each message through `receive`.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vaka_dc09::stream::{next_frame, Framed};
use vaka_router::{Clock, LiveDirectory, Router};

use super::receive::{receive, Answer};
use super::shared::{Metrics, Shared};
use super::{Dc09Config, Dc09StartError};

/// The running DC-09 front.
pub struct Dc09Server {
    sh: Arc<Shared>,
    udp: Option<SocketAddr>,
    tcp: Option<SocketAddr>,
}

fn bind_err(key: &'static str, addr: SocketAddr) -> impl FnOnce(std::io::Error) -> Dc09StartError {
    move |source| Dc09StartError::Bind { key, addr, source }
}

impl Dc09Server {
    /// Binds the configured sockets and starts reading. Must be called inside a tokio runtime.
    pub fn start(
        cfg: &Dc09Config,
        router: Arc<Router>,
        directory: LiveDirectory,
        clock: Clock,
    ) -> Result<Dc09Server, Dc09StartError> {
        cfg.validate()
            .map_err(|(key, reason)| Dc09StartError::Config { key, reason })?;
        let sh = Arc::new(Shared {
            cfg: cfg.clone(),
            router,
            directory,
            clock,
            pending: Arc::new(Semaphore::new(cfg.max_pending)),
            link_tests: Arc::new(Semaphore::new((cfg.max_pending / 2).max(1))),
            connections: Arc::new(Semaphore::new(cfg.max_connections)),
            intake: CancellationToken::new(),
            token: CancellationToken::new(),
            tracker: TaskTracker::new(),
            metrics: Metrics::new(),
        });
        let mut server = Dc09Server {
            sh: sh.clone(),
            udp: None,
            tcp: None,
        };
        if let Some(addr) = cfg.udp {
            let std = std::net::UdpSocket::bind(addr).map_err(bind_err("dc09.udp", addr))?;
            std.set_nonblocking(true)
                .map_err(bind_err("dc09.udp", addr))?;
            let sock = UdpSocket::from_std(std).map_err(bind_err("dc09.udp", addr))?;
            server.udp = sock.local_addr().ok();
            sh.tracker.spawn(udp_loop(sh.clone(), Arc::new(sock)));
        }
        if let Some(addr) = cfg.tcp {
            let std = std::net::TcpListener::bind(addr).map_err(bind_err("dc09.tcp", addr))?;
            std.set_nonblocking(true)
                .map_err(bind_err("dc09.tcp", addr))?;
            let listener = TcpListener::from_std(std).map_err(bind_err("dc09.tcp", addr))?;
            server.tcp = listener.local_addr().ok();
            sh.tracker.spawn(accept_loop(sh.clone(), listener));
        }
        tracing::info!(udp = ?server.udp, tcp = ?server.tcp, "DC-09 front listening");
        Ok(server)
    }

    /// Where it listens (UDP, TCP); port 0 in the configuration gives an ephemeral port.
    pub fn local_addrs(&self) -> (Option<SocketAddr>, Option<SocketAddr>) {
        (self.udp, self.tcp)
    }

    /// Stops reading, waits (bounded by `answer_within_ms`) for the messages being stored to be
    /// answered, then ends every task. Call it before `Router::shutdown`.
    pub async fn shutdown(&self) {
        self.sh.intake.cancel();
        let all = self.sh.cfg.max_pending as u32;
        let wait = Duration::from_millis(self.sh.cfg.answer_within_ms);
        let _ = tokio::time::timeout(wait, self.sh.pending.acquire_many(all)).await;
        self.sh.token.cancel();
        self.sh.tracker.close();
        self.sh.tracker.wait().await;
    }
}

/// Reads datagrams until intake stops; each is stored and answered in its own task.
async fn udp_loop(sh: Arc<Shared>, sock: Arc<UdpSocket>) {
    // One byte more than allowed tells an oversized datagram from one of exactly the limit.
    let mut buf = vec![0u8; sh.cfg.max_frame_bytes + 1];
    loop {
        let (n, peer) = tokio::select! {
            _ = sh.intake.cancelled() => return,
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "DC-09/UDP receive error");
                    continue;
                }
            },
        };
        let datagram = trim(&buf[..n]);
        if datagram.is_empty() {
            continue;
        }
        if n > sh.cfg.max_frame_bytes {
            sh.metrics.error("too_large");
            continue;
        }
        let Some(permit) = sh.admit(datagram) else {
            // Full: answered at once, without decoding, so the panel tries again or elsewhere.
            sh.metrics.error("busy");
            sh.metrics.reply("DUH", "busy");
            send_udp(&sh, &sock, peer, n, vaka_dc09::duh(None), true).await;
            continue;
        };
        let (sh2, sock2, bytes) = (sh.clone(), sock.clone(), datagram.to_vec());
        sh.tracker.spawn(async move {
            let _permit = permit;
            if let Some(a) = receive(&sh2, &bytes, peer).await {
                send_udp(&sh2, &sock2, peer, n, a.bytes, a.unproven).await;
            }
        });
    }
}

async fn send_udp(
    sh: &Shared,
    sock: &UdpSocket,
    peer: SocketAddr,
    request_len: usize,
    answer: Vec<u8>,
    unproven: bool,
) {
    if unproven && answer.len() > request_len {
        sh.metrics.error("answer_larger_than_request");
        return;
    }
    match sock.send_to(&answer, peer).await {
        Ok(n) => sh.metrics.sent(n),
        Err(e) => {
            sh.metrics.error("send_failed");
            tracing::debug!(%peer, error = %e, "DC-09/UDP answer not sent");
        }
    }
}

/// Panels put whitespace or NULs around a frame; the frame is LF to CR.
fn trim(b: &[u8]) -> &[u8] {
    let filler = |c: &u8| *c == 0 || (c.is_ascii_whitespace() && *c != b'\n' && *c != b'\r');
    let start = b.iter().position(|c| !filler(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !filler(c)).map_or(start, |i| i + 1);
    &b[start..end]
}

async fn accept_loop(sh: Arc<Shared>, listener: TcpListener) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = sh.intake.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "DC-09 accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = sh.connections.clone().try_acquire_owned() else {
            sh.metrics.connections_refused.increment(1);
            drop(stream);
            continue;
        };
        sh.metrics.connections_accepted.increment(1);
        let _ = stream.set_nodelay(true);
        let sh2 = sh.clone();
        sh.tracker.spawn(async move {
            let _permit = permit;
            sh2.metrics.connections_active.increment(1.0);
            tokio::select! {
                _ = sh2.token.cancelled() => {}
                _ = connection(&sh2, stream, peer) => {}
            }
            sh2.metrics.connections_active.decrement(1.0);
        });
    }
}

/// One TCP connection: frames in order, each answered before the next is read (a panel sends
/// one message and waits for its answer).
async fn connection(sh: &Shared, mut stream: TcpStream, peer: SocketAddr) {
    let max = sh.cfg.max_frame_bytes;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = vec![0u8; 4096];
    loop {
        match next_frame(&buf, max) {
            Ok(Framed::Skip(n)) => {
                buf.drain(..n);
                continue;
            }
            Ok(Framed::Frame(n)) => {
                let frame: Vec<u8> = buf.drain(..n).collect();
                let Some(permit) = sh.admit(&frame) else {
                    sh.metrics.error("busy");
                    sh.metrics.reply("DUH", "busy");
                    if write(sh, &mut stream, &vaka_dc09::duh(None)).await.is_err() {
                        return;
                    }
                    continue;
                };
                let answer = receive(sh, &frame, peer).await;
                drop(permit);
                if let Some(Answer { bytes, .. }) = answer {
                    if write(sh, &mut stream, &bytes).await.is_err() {
                        return;
                    }
                }
                continue;
            }
            Ok(Framed::Incomplete) => {}
            Err(_) => {
                // No frame end within the limit: the stream cannot be resynchronised.
                sh.metrics.error("too_large");
                return;
            }
        }
        if sh.intake.is_cancelled() {
            return;
        }
        let read = tokio::time::timeout(sh.cfg.idle_timeout(), stream.read(&mut chunk));
        match read.await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {
                sh.metrics.error("idle_timeout");
                return;
            }
        }
    }
}

async fn write(sh: &Shared, stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    sh.metrics.sent(bytes.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::trim;

    #[test]
    fn filler_around_a_frame_is_dropped() {
        assert_eq!(trim(b"\0 \n0000\r\0"), b"\n0000\r");
        assert_eq!(trim(b"\n0000\r"), b"\n0000\r");
        assert_eq!(trim(b" \0 "), b"");
    }
}
