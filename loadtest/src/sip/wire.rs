//! The wire: UDP sockets shared by many devices and a TCP connection per device, the readers that
//! hand what arrives to the device it is for, connecting, and the OPTIONS probe before a UDP run.
//! Nothing here knows about transactions: a device asks its `Wire` to send bytes and gets
//! messages back in its inbox.
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use vaka_scaip::sip::{find_message, Frame, Method, NewRequest, SipMessage};

use super::inbox::Input;
use super::mapping::parse_call_id;
use crate::record::Recorder;

/// Largest SIP message read from a connection or socket.
pub const MAX_MESSAGE: usize = 65_536;

/// Aborts the task when dropped (a TCP reader outlives nothing it serves).
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How a device reaches the server.
pub enum Wire {
    Udp {
        sock: Arc<UdpSocket>,
        local: Arc<str>,
    },
    Tcp {
        /// `None` while disconnected.
        conn: Option<TcpConn>,
        generation: u32,
        /// The device's own queue, for the readers of its connections.
        me: mpsc::UnboundedSender<Input>,
    },
}

pub struct TcpConn {
    writer: OwnedWriteHalf,
    local: String,
    _reader: AbortOnDrop,
}

impl Wire {
    /// A device on one of the shared UDP sockets.
    pub fn udp(sock: Arc<UdpSocket>, local: Arc<str>) -> Wire {
        Wire::Udp { sock, local }
    }

    /// A device on its own TCP connection; `me` is its inbox, for the connection's readers.
    pub fn tcp(conn: TcpConn, me: mpsc::UnboundedSender<Input>) -> Wire {
        Wire::Tcp {
            conn: Some(conn),
            generation: 0,
            me,
        }
    }

    /// The Via transport.
    pub fn transport(&self) -> &'static str {
        match self {
            Wire::Udp { .. } => "UDP",
            Wire::Tcp { .. } => "TCP",
        }
    }

    /// TCP: nothing is resent (RFC 3261 §17.1.2.2).
    pub fn reliable(&self) -> bool {
        matches!(self, Wire::Tcp { .. })
    }

    /// The Contact of device `user` reached at `local`.
    pub fn contact(&self, user: &str, local: &str) -> String {
        match self {
            Wire::Udp { .. } => format!("<sip:{user}@{local}>"),
            Wire::Tcp { .. } => format!("<sip:{user}@{local};transport=tcp>"),
        }
    }

    /// The local address for Via and Contact; over TCP connects first if needed.
    pub async fn ready(
        &mut self,
        server: SocketAddr,
        rec: &Arc<Recorder>,
    ) -> Result<String, std::io::Error> {
        match self {
            Wire::Udp { local, .. } => Ok(local.to_string()),
            Wire::Tcp {
                conn,
                generation,
                me,
            } => {
                if conn.is_none() {
                    *generation += 1;
                    // Boxed: a reconnect is rare, and its future would otherwise be part of
                    // every device task.
                    *conn = Some(Box::pin(connect_tcp(server, me, *generation, rec)).await?);
                }
                Ok(conn.as_ref().map(|c| c.local.clone()).unwrap_or_default())
            }
        }
    }

    /// Sends bytes to `to`; false if the connection broke (TCP).
    pub async fn send(&mut self, bytes: &[u8], to: SocketAddr) -> bool {
        match self {
            Wire::Udp { sock, .. } => {
                // A lost datagram is recovered by retransmission like any other loss.
                let _ = sock.send_to(bytes, to).await;
                true
            }
            Wire::Tcp { conn, .. } => match conn {
                Some(c) => {
                    if c.writer.write_all(bytes).await.is_ok() {
                        true
                    } else {
                        *conn = None;
                        false
                    }
                }
                None => false,
            },
        }
    }

    /// Drops the TCP connection (it broke); the next [`Self::ready`] makes a new one.
    pub fn disconnect(&mut self) {
        if let Wire::Tcp { conn, .. } = self {
            *conn = None;
        }
    }

    /// The TCP connection of `generation` is the one in use (its reader's `Closed` is news).
    pub fn is_current(&self, generation: u32) -> bool {
        matches!(self, Wire::Tcp { generation: g, conn: Some(_), .. } if *g == generation)
    }
}

/// The local address a socket uses to reach `server` (so that Via and Contact name an address
/// the server can send to, not 0.0.0.0).
pub fn local_ip_towards(server: SocketAddr) -> std::io::Result<IpAddr> {
    let any: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(any)?;
    s.connect(server)?;
    Ok(s.local_addr()?.ip())
}

pub fn bind_udp(ip: IpAddr) -> std::io::Result<UdpSocket> {
    let addr = SocketAddr::new(ip, 0);
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Many devices share a socket: bursts of answers must not overflow it.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// 200 OK (405 for anything but MESSAGE) to a request of the server.
pub fn answer(req: &SipMessage) -> Vec<u8> {
    let tag = format!("{:08x}", rand::random::<u32>());
    let (code, reason) = if *req.method() == Method::Message {
        (200, "OK")
    } else {
        (405, "Method Not Allowed")
    };
    SipMessage::response(req, code, reason, &tag).to_bytes()
}

/// Asks the server OPTIONS over UDP (no credentials needed) so that a server that is not there
/// is reported before the load, not as thousands of timeouts.
pub async fn probe_udp(sock: &UdpSocket, server: SocketAddr, uri: &str) -> Result<(), String> {
    let local = sock.local_addr().map_err(|e| e.to_string())?.to_string();
    let call = format!("probe{:08x}@vaka-load", rand::random::<u32>());
    let req = NewRequest {
        method: Method::Options,
        request_uri: uri,
        transport: "UDP",
        sent_by: &local,
        branch: &format!("z9hG4bK{:016x}", rand::random::<u64>()),
        from_uri: &format!("sip:vaka-load@{local}"),
        from_tag: "probe",
        to_uri: uri,
        call_id: &call,
        cseq: 1,
        ..NewRequest::default()
    }
    .build(None)
    .map_err(|e| format!("SIP OPTIONS: {e}"))?
    .to_bytes();
    let mut buf = vec![0u8; MAX_MESSAGE];
    for wait in [500, 1000, 2000] {
        let _ = sock.send_to(&req, server).await;
        let until = Instant::now() + Duration::from_millis(wait);
        while Instant::now() < until {
            let Ok(r) = tokio::time::timeout_at(until, sock.recv_from(&mut buf)).await else {
                break;
            };
            let Ok((n, _)) = r else {
                tokio::task::yield_now().await;
                continue;
            };
            if SipMessage::parse(&buf[..n]).is_ok_and(|m| !m.is_request() && m.call_id() == call) {
                return Ok(());
            }
        }
    }
    Err(format!(
        "no SIP answer from {server} over UDP within 3.5 s: is the server running with \
         [sip] udp = true on that address?"
    ))
}

/// Reads one shared UDP socket and hands each message to its device (by Call-ID). Requests of
/// devices that have ended are answered here, so that the server stops retransmitting.
pub async fn udp_reader(
    sock: Arc<UdpSocket>,
    queues: Arc<Vec<mpsc::UnboundedSender<Input>>>,
    rec: Arc<Recorder>,
) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            // e.g. ICMP unreachable from an earlier send
            tokio::task::yield_now().await;
            continue;
        };
        let Ok(msg) = SipMessage::parse(&buf[..n]) else {
            rec.error_kind("malformed_sip", 1);
            continue;
        };
        let Some(q) = parse_call_id(msg.call_id()).and_then(|(_, d)| queues.get(d)) else {
            continue; // not one of ours (a late probe answer)
        };
        if let Err(mpsc::error::SendError(Input::Sip(b))) =
            q.send(Input::Sip(Box::new((msg, from))))
        {
            if b.0.is_request() {
                let _ = sock.send_to(&answer(&b.0), from).await;
            }
        }
    }
}

/// Reads one device's TCP connection: Content-Length frames to the device; the end of the
/// connection as `Closed(generation)`.
async fn tcp_reader(
    rd: OwnedReadHalf,
    me: mpsc::UnboundedSender<Input>,
    peer: SocketAddr,
    generation: u32,
    rec: Arc<Recorder>,
) {
    // Empty while idle: thousands of quiet connections hold no buffers.
    let mut buf: Vec<u8> = Vec::new();
    loop {
        if rd.readable().await.is_err() {
            break;
        }
        buf.reserve(4096);
        match rd.try_read_buf(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        }
        loop {
            match find_message(&buf, MAX_MESSAGE) {
                Ok(Frame::Message(n)) => {
                    match SipMessage::parse(&buf[..n]) {
                        Ok(m) => {
                            if me.send(Input::Sip(Box::new((m, peer)))).is_err() {
                                return;
                            }
                        }
                        Err(_) => rec.error_kind("malformed_sip", 1),
                    }
                    buf.drain(..n);
                }
                Ok(Frame::KeepAlive(n)) => {
                    buf.drain(..n);
                }
                Ok(Frame::Incomplete) => break,
                Err(_) => {
                    rec.error_kind("malformed_sip", 1);
                    let _ = me.send(Input::Closed(generation));
                    return;
                }
            }
        }
        if buf.is_empty() {
            buf = Vec::new();
        }
    }
    let _ = me.send(Input::Closed(generation));
}

/// Connects a device to the server over TCP, with its reader.
pub async fn connect_tcp(
    server: SocketAddr,
    me: &mpsc::UnboundedSender<Input>,
    generation: u32,
    rec: &Arc<Recorder>,
) -> std::io::Result<TcpConn> {
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(server))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr()?.to_string();
    let (rd, writer) = stream.into_split();
    let reader = tokio::spawn(tcp_reader(rd, me.clone(), server, generation, rec.clone()));
    Ok(TcpConn {
        writer,
        local,
        _reader: AbortOnDrop(reader),
    })
}
