//! The way a request came in, and so the way its answers go out: the shared UDP socket or a
//! TCP/TLS connection's write queue. It owns what sending needs (the socket or queue and the
//! two send counters), so sending needs neither the front's shared state nor the transport code.
use std::net::SocketAddr;
use std::sync::Arc;

use metrics::Counter;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::shared::Metrics;

/// The transport a request arrived on; answers go back the same way.
#[derive(Clone)]
pub(crate) struct Link {
    path: Path,
    /// The bound address of the socket or connection (for Via).
    local: SocketAddr,
    bytes_sent: Counter,
    send_failed: Counter,
}

#[derive(Clone)]
enum Path {
    /// The front's one UDP socket.
    Udp(Arc<UdpSocket>),
    /// A TCP or TLS connection's write queue.
    Stream {
        tx: mpsc::Sender<Vec<u8>>,
        tls: bool,
    },
}

impl Link {
    pub fn udp(socket: Arc<UdpSocket>, local: SocketAddr, metrics: &Metrics) -> Link {
        Link::new(Path::Udp(socket), local, metrics)
    }

    pub fn stream(
        tx: mpsc::Sender<Vec<u8>>,
        tls: bool,
        local: SocketAddr,
        metrics: &Metrics,
    ) -> Link {
        Link::new(Path::Stream { tx, tls }, local, metrics)
    }

    fn new(path: Path, local: SocketAddr, metrics: &Metrics) -> Link {
        Link {
            path,
            local,
            bytes_sent: metrics.bytes_sent.clone(),
            send_failed: metrics.send_failed.clone(),
        }
    }

    /// TCP or TLS: no retransmission of our own requests.
    pub fn reliable(&self) -> bool {
        matches!(self.path, Path::Stream { .. })
    }

    /// The Via transport token.
    pub fn transport(&self) -> &'static str {
        match self.path {
            Path::Udp(_) => "UDP",
            Path::Stream { tls: false, .. } => "TCP",
            Path::Stream { tls: true, .. } => "TLS",
        }
    }

    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Sends without waiting: UDP datagrams that would block and messages to a connection
    /// whose queue is full are dropped (and counted); SIP retransmission recovers them.
    pub fn send(&self, to: SocketAddr, bytes: Vec<u8>) -> bool {
        let n = bytes.len() as u64;
        let ok = match &self.path {
            // The syscall itself, not tokio's `try_send_to`: that one refuses (WouldBlock)
            // until the reactor has seen the socket writable, so the first answers of a
            // front just (re)started were dropped when its runtime was busy: the devices
            // coming back after a restart. The socket is non-blocking; a full buffer fails.
            Path::Udp(socket) => socket2::SockRef::from(socket.as_ref())
                .send_to(&bytes, &to.into())
                .is_ok(),
            Path::Stream { tx, .. } => tx.try_send(bytes).is_ok(),
        };
        if ok {
            self.bytes_sent.increment(n);
        } else {
            self.send_failed.increment(1);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reactor has not turned since the socket was registered (a front just started on a
    /// busy runtime): the answer still goes out.
    #[tokio::test]
    async fn a_udp_answer_goes_out_before_the_reactor_has_seen_the_socket() {
        let device = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let local = front.local_addr().unwrap();
        let link = Link::udp(front, local, &Metrics::new());
        assert!(link.send(device.local_addr().unwrap(), b"SIP/2.0 401".to_vec()));
        let mut buf = [0u8; 32];
        device
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let (n, from) = device.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"SIP/2.0 401"[..], local));
    }
}
