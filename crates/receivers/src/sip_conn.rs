//! The SCAIP forwarder's connection to the far receiver: a connected UDP socket, or a TCP or TLS
//! stream framed by Content-Length (`vaka_scaip::find_message`). Responses and the far side's
//! `<mrs>` come back on it.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use vaka_scaip::{find_message, Frame, SipMessage};

/// Largest message taken from the far side.
const MAX_MESSAGE: usize = 65_536;
/// Connecting (and the TLS handshake) may take this long.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);

/// How the forwarder reaches the far receiver (`receiver.transport`).
#[derive(Clone, Debug)]
pub(crate) enum Transport {
    Udp,
    Tcp,
    /// TLS to the host named in the receiver's URI, checked against these roots.
    Tls(Arc<tokio_rustls::rustls::ClientConfig>),
}

/// A byte stream: TCP, or TLS over TCP.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

pub(crate) enum Conn {
    Udp(UdpSocket),
    Stream {
        io: Box<dyn Stream>,
        buf: Vec<u8>,
        local: SocketAddr,
        tls: bool,
    },
}

impl Conn {
    /// Connects to `far`; `host` (the URI's host) is the name a TLS certificate must carry.
    pub(crate) async fn open(far: SocketAddr, host: &str, t: &Transport) -> Result<Conn, String> {
        let tls = match t {
            Transport::Udp => return Conn::udp(far).await,
            Transport::Tcp => None,
            Transport::Tls(config) => Some(config.clone()),
        };
        let connect = async {
            let tcp = TcpStream::connect(far)
                .await
                .map_err(|e| format!("connecting to {far}: {e}"))?;
            let _ = tcp.set_nodelay(true);
            let local = tcp.local_addr().map_err(|e| e.to_string())?;
            let Some(config) = tls else {
                let io: Box<dyn Stream> = Box::new(tcp);
                return Ok((io, local));
            };
            let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|e| format!("{host}: not a name a certificate can carry: {e}"))?;
            let stream = TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {far}: {e}"))?;
            let io: Box<dyn Stream> = Box::new(stream);
            Ok::<_, String>((io, local))
        };
        let (io, local) = tokio::time::timeout(CONNECT_WITHIN, connect)
            .await
            .map_err(|_| format!("connecting to {far}: timed out"))??;
        Ok(Conn::Stream {
            io,
            buf: Vec::new(),
            local,
            tls: matches!(t, Transport::Tls(_)),
        })
    }

    async fn udp(far: SocketAddr) -> Result<Conn, String> {
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
        matches!(self, Conn::Stream { .. })
    }

    /// "UDP", "TCP" or "TLS", for the Via header.
    pub(crate) fn transport(&self) -> &'static str {
        match self {
            Conn::Udp(_) => "UDP",
            Conn::Stream { tls: false, .. } => "TCP",
            Conn::Stream { tls: true, .. } => "TLS",
        }
    }

    pub(crate) fn local_addr(&self) -> Result<SocketAddr, String> {
        match self {
            Conn::Udp(s) => s.local_addr().map_err(|e| e.to_string()),
            Conn::Stream { local, .. } => Ok(*local),
        }
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self {
            Conn::Udp(s) => s.send(bytes).await.map(|_| ()),
            Conn::Stream { io, .. } => match io.write_all(bytes).await {
                Ok(()) => io.flush().await,
                Err(e) => Err(e),
            },
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
            Conn::Stream { io, buf, .. } => loop {
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
                        match tokio::time::timeout_at(end, io.read(&mut chunk)).await {
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
