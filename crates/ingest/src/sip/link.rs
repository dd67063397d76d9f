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
            Path::Udp(socket) => socket.try_send_to(&bytes, to).is_ok(),
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
