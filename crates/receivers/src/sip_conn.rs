//! The SCAIP forwarder's connection to the far receiver: a connected UDP socket, or a TCP stream
//! framed by Content-Length (`vaka_scaip::find_message`). Responses and the far side's `<mrs>`
//! come back on it.
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;
use vaka_scaip::{find_message, Frame, SipMessage};

/// Largest message taken from the far side.
const MAX_MESSAGE: usize = 65_536;

pub(crate) enum Conn {
    Udp(UdpSocket),
    Tcp { stream: TcpStream, buf: Vec<u8> },
}

impl Conn {
    pub(crate) async fn open(far: SocketAddr, tcp: bool) -> Result<Conn, String> {
        if tcp {
            let stream =
                tokio::time::timeout(std::time::Duration::from_secs(5), TcpStream::connect(far))
                    .await
                    .map_err(|_| format!("connecting to {far}: timed out"))?
                    .map_err(|e| format!("connecting to {far}: {e}"))?;
            let _ = stream.set_nodelay(true);
            return Ok(Conn::Tcp {
                stream,
                buf: Vec::new(),
            });
        }
        let local = if far.ip().is_loopback() {
            "127.0.0.1:0"
        } else {
            "0.0.0.0:0"
        };
        let s = UdpSocket::bind(local)
            .await
            .map_err(|e| format!("SIP socket: {e}"))?;
        s.connect(far)
            .await
            .map_err(|e| format!("SIP socket: {e}"))?;
        Ok(Conn::Udp(s))
    }

    pub(crate) fn is_stream(&self) -> bool {
        matches!(self, Conn::Tcp { .. })
    }

    /// "UDP" or "TCP", for the Via header.
    pub(crate) fn transport(&self) -> &'static str {
        match self {
            Conn::Udp(_) => "UDP",
            Conn::Tcp { .. } => "TCP",
        }
    }

    pub(crate) fn local_addr(&self) -> Result<SocketAddr, String> {
        match self {
            Conn::Udp(s) => s.local_addr(),
            Conn::Tcp { stream, .. } => stream.local_addr(),
        }
        .map_err(|e| e.to_string())
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self {
            Conn::Udp(s) => s.send(bytes).await.map(|_| ()),
            Conn::Tcp { stream, .. } => stream.write_all(bytes).await,
        }
        .map_err(|e| format!("send: {e}"))
    }

    /// The next message before `end` (`None`: nothing came). A datagram that does not parse
    /// is skipped; a stream that cannot be framed or closes is an error (reconnect).
    pub(crate) async fn recv_until(&mut self, end: Instant) -> Result<Option<SipMessage>, String> {
        match self {
            Conn::Udp(s) => {
                let mut buf = vec![0u8; MAX_MESSAGE];
                loop {
                    match tokio::time::timeout_at(end, s.recv(&mut buf)).await {
                        Err(_) => return Ok(None),
                        Ok(Err(e)) => return Err(format!("receive: {e}")),
                        Ok(Ok(n)) => {
                            if let Ok(m) = SipMessage::parse(&buf[..n]) {
                                return Ok(Some(m));
                            }
                        }
                    }
                }
            }
            Conn::Tcp { stream, buf } => loop {
                match find_message(buf, MAX_MESSAGE).map_err(|e| format!("framing: {e}"))? {
                    Frame::Message(n) => {
                        let m = SipMessage::parse(&buf[..n]);
                        buf.drain(..n);
                        if let Ok(m) = m {
                            return Ok(Some(m));
                        }
                    }
                    Frame::KeepAlive(n) => {
                        buf.drain(..n);
                    }
                    Frame::Incomplete => {
                        let mut chunk = [0u8; 8192];
                        match tokio::time::timeout_at(end, stream.read(&mut chunk)).await {
                            Err(_) => return Ok(None),
                            Ok(Err(e)) => return Err(format!("receive: {e}")),
                            Ok(Ok(0)) => return Err("the receiver closed the connection".into()),
                            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                }
            },
        }
    }
}
