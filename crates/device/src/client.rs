//! The client: a handle ([`Client`]) and a driver task that owns the connection, reconnects and
//! resends. A separate reader task per connection matches replies to waiting events, so that
//! writing (which QUIC flow control may slow) never stops replies from being read.
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::BytesMut;
use quinn::{RecvStream, SendStream, VarInt};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;
use vaka_proto::pb::{self, server_frame};
use vaka_proto::{
    codes, encode_events_frame, encode_frame, event_entry_len, events_frame_len, split_frame,
    Message,
};

use crate::{tls, ClientError, DeviceConfig};

const READ_CHUNK: usize = 64 * 1024;

type Answer = Result<pb::EventReply, ClientError>;

/// The reply to one submitted event, once the server answers it.
pub struct ReplyFuture(oneshot::Receiver<Answer>);

impl Future for ReplyFuture {
    type Output = Answer;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ClientError::Closed)))
    }
}

struct Entry {
    seq: u64,
    event: pb::Event,
    tx: oneshot::Sender<Answer>,
}

struct State {
    /// Connection generation: writes encoded for an older connection are dropped (the resend
    /// on reconnect already carried their events).
    gen: u64,
    connected: bool,
    welcome: pb::Welcome,
    next_seq: u64,
    /// device field -> key -> waiting event.
    pending: HashMap<String, HashMap<String, Entry>>,
    count: usize,
    /// Set when the driver has ended: every later call fails with it.
    failed: Option<ClientError>,
}

struct Inner {
    state: Mutex<State>,
    /// Room for waiting events (`max_pending` permits; one per waiting event).
    room: Arc<Semaphore>,
    max_pending: usize,
    reconnects: AtomicU64,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers waiting events from a reply frame.
    fn answer(&self, replies: Vec<pb::EventReply>) {
        let mut freed = 0;
        let mut st = self.lock();
        for r in replies {
            let Some(by_key) = st.pending.get_mut(&r.device) else {
                continue;
            };
            let Some(e) = by_key.remove(&r.key) else {
                continue;
            };
            if by_key.is_empty() {
                st.pending.remove(&r.device);
            }
            st.count -= 1;
            freed += 1;
            let _ = e.tx.send(Ok(r));
        }
        drop(st);
        self.room.add_permits(freed);
    }

    /// Ends the client: every waiting event and every later call fails with `err`.
    fn fail_all(&self, err: ClientError) {
        let mut st = self.lock();
        st.failed.get_or_insert(err.clone());
        st.connected = false;
        st.count = 0;
        for (_, by_key) in st.pending.drain() {
            for (_, e) in by_key {
                let _ = e.tx.send(Err(err.clone()));
            }
        }
        drop(st);
        self.room.close();
    }
}

/// Splits events into frames within the server's limits and appends them to `out`.
fn encode_frames<'a>(
    events: impl Iterator<Item = &'a pb::Event>,
    w: &pb::Welcome,
    out: &mut Vec<u8>,
) {
    let max_events = (w.max_events_per_frame as usize).max(1);
    let max_bytes = w.max_frame_bytes as usize;
    let mut chunk: Vec<&pb::Event> = Vec::new();
    let mut entries = 0;
    for ev in events {
        let len = event_entry_len(ev);
        if !chunk.is_empty()
            && (chunk.len() == max_events || events_frame_len(entries + len) > max_bytes)
        {
            encode_events_frame(chunk.iter().copied(), out);
            chunk.clear();
            entries = 0;
        }
        chunk.push(ev);
        entries += len;
    }
    if !chunk.is_empty() {
        encode_events_frame(chunk.iter().copied(), out);
    }
}

enum Cmd {
    Write { gen: u64, bytes: Vec<u8> },
    Reconnect,
    Close(oneshot::Sender<()>),
}

/// A connected device. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Client {
    inner: Arc<Inner>,
    cmd: mpsc::UnboundedSender<Cmd>,
}

impl Client {
    /// Connects with an endpoint of its own. Fails if this first connection fails (for example
    /// [`ClientError::Refused`] when the server does not accept the certificate); later
    /// connection losses are handled by reconnecting.
    pub async fn connect(cfg: DeviceConfig) -> Result<Client, ClientError> {
        let bind = if cfg.servers.first().is_some_and(|a| a.is_ipv6()) {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        let ep = tls::client_endpoint(bind.parse().expect("valid address"))
            .map_err(|e| ClientError::Config(format!("client endpoint: {e}")))?;
        Self::connect_with(ep, cfg).await
    }

    /// Connects over a shared endpoint (see [`client_endpoint`](crate::client_endpoint)).
    pub async fn connect_with(
        endpoint: quinn::Endpoint,
        cfg: DeviceConfig,
    ) -> Result<Client, ClientError> {
        if cfg.servers.is_empty() {
            return Err(ClientError::Config("no server address".into()));
        }
        if cfg.max_pending == 0 {
            return Err(ClientError::Config("max_pending must be at least 1".into()));
        }
        let quic = tls::quic_client_config(&cfg)?;
        let link = open(&endpoint, &quic, &cfg, cfg.servers[0]).await?;
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                gen: 1,
                connected: true,
                welcome: link.welcome.clone(),
                next_seq: 0,
                pending: HashMap::new(),
                count: 0,
                failed: None,
            }),
            room: Arc::new(Semaphore::new(cfg.max_pending)),
            max_pending: cfg.max_pending,
            reconnects: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let driver = Driver {
            inner: inner.clone(),
            endpoint,
            quic,
            cfg,
            server: 0,
        };
        let active = link.start(inner.clone());
        tokio::spawn(driver.run(active, rx));
        Ok(Client { inner, cmd: tx })
    }

    /// The server's Welcome on the current connection: identity and limits.
    pub fn welcome(&self) -> pb::Welcome {
        self.inner.lock().welcome.clone()
    }

    /// Successful reconnections so far.
    pub fn reconnects(&self) -> u64 {
        self.inner.reconnects.load(Ordering::Relaxed)
    }

    /// Events waiting for their replies.
    pub fn pending(&self) -> usize {
        self.inner.lock().count
    }

    /// Sends one event (a frame of its own) and waits for its reply.
    pub async fn send(&self, event: pb::Event) -> Answer {
        let mut futs = self.submit(vec![event]).await?;
        futs.pop().expect("one reply future per event").await
    }

    /// Sends events (in as few frames as the server's limits allow) and waits for every reply;
    /// replies come back in the order of `events`.
    pub async fn send_batch(
        &self,
        events: Vec<pb::Event>,
    ) -> Result<Vec<pb::EventReply>, ClientError> {
        let futs = self.submit(events).await?;
        let mut out = Vec::with_capacity(futs.len());
        for f in futs {
            out.push(f.await?);
        }
        Ok(out)
    }

    /// Queues events for sending and returns at once (after waiting for room if
    /// `max_pending` events already wait) with one future per event. Each event's key must be
    /// non-empty and not already waiting for the same device field.
    pub async fn submit(&self, events: Vec<pb::Event>) -> Result<Vec<ReplyFuture>, ClientError> {
        let n = events.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        if n > self.inner.max_pending {
            return Err(ClientError::InvalidEvent(format!(
                "{n} events in one call, more than max_pending {}",
                self.inner.max_pending
            )));
        }
        for (i, e) in events.iter().enumerate() {
            if e.key.is_empty() {
                return Err(ClientError::InvalidEvent("empty key".into()));
            }
            if events[..i]
                .iter()
                .any(|o| o.key == e.key && o.device == e.device)
            {
                return Err(ClientError::InvalidEvent(format!(
                    "key {:?} twice in one call",
                    e.key
                )));
            }
        }
        let permit = match self.inner.room.clone().acquire_many_owned(n as u32).await {
            Ok(p) => p,
            Err(_) => {
                return Err(self
                    .inner
                    .lock()
                    .failed
                    .clone()
                    .unwrap_or(ClientError::Closed))
            }
        };
        let mut st = self.inner.lock();
        if let Some(e) = &st.failed {
            return Err(e.clone());
        }
        let max_frame = st.welcome.max_frame_bytes as usize;
        for e in &events {
            if st
                .pending
                .get(&e.device)
                .is_some_and(|m| m.contains_key(&e.key))
            {
                return Err(ClientError::InvalidEvent(format!(
                    "key {:?} already waiting for its reply",
                    e.key
                )));
            }
            if events_frame_len(event_entry_len(e)) > max_frame {
                return Err(ClientError::InvalidEvent(format!(
                    "event {:?} larger than the server's frame limit of {max_frame} bytes",
                    e.key
                )));
            }
        }
        let mut bytes = Vec::new();
        if st.connected {
            encode_frames(events.iter(), &st.welcome, &mut bytes);
        }
        let mut futs = Vec::with_capacity(n);
        for event in events {
            let (tx, rx) = oneshot::channel();
            let seq = st.next_seq;
            st.next_seq += 1;
            st.pending
                .entry(event.device.clone())
                .or_default()
                .insert(event.key.clone(), Entry { seq, event, tx });
            futs.push(ReplyFuture(rx));
        }
        st.count += n;
        permit.forget();
        let (gen, connected) = (st.gen, st.connected);
        drop(st);
        // While disconnected the events just wait: the resend after reconnecting carries them.
        if connected {
            let _ = self.cmd.send(Cmd::Write { gen, bytes });
        }
        Ok(futs)
    }

    /// Drops the current connection and reconnects at once, resending what is unanswered
    /// (after a network change; also how tests simulate a lost connection).
    pub fn force_reconnect(&self) {
        let _ = self.cmd.send(Cmd::Reconnect);
    }

    /// Closes the connection; events still waiting fail with [`ClientError::Closed`].
    pub async fn close(self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// An open connection after Welcome.
struct Link {
    conn: quinn::Connection,
    send: SendStream,
    recv: RecvStream,
    /// Bytes read past the Welcome frame.
    buf: BytesMut,
    welcome: pb::Welcome,
    max_frame: usize,
}

impl Link {
    /// Starts the reader task.
    fn start(self, inner: Arc<Inner>) -> Active {
        let reader = tokio::spawn(read_replies(self.recv, self.buf, inner, self.max_frame));
        Active {
            conn: self.conn,
            send: self.send,
            reader,
        }
    }
}

struct Active {
    conn: quinn::Connection,
    send: SendStream,
    reader: JoinHandle<ClientError>,
}

fn read_error(e: quinn::ReadError) -> ClientError {
    match e {
        quinn::ReadError::ConnectionLost(c) => ClientError::from_connection(&c),
        other => ClientError::Connection(other.to_string()),
    }
}

fn write_error(e: quinn::WriteError) -> ClientError {
    match e {
        quinn::WriteError::ConnectionLost(c) => ClientError::from_connection(&c),
        other => ClientError::Connection(other.to_string()),
    }
}

/// Connects, says Hello, waits for Welcome.
async fn open(
    endpoint: &quinn::Endpoint,
    quic: &quinn::ClientConfig,
    cfg: &DeviceConfig,
    addr: std::net::SocketAddr,
) -> Result<Link, ClientError> {
    let attempt = async {
        let conn = endpoint
            .connect_with(quic.clone(), addr, &cfg.server_name)
            .map_err(|e| ClientError::Connection(e.to_string()))?
            .await
            .map_err(|e| ClientError::from_connection(&e))?;
        let (mut send, mut recv) = conn
            .open_bi()
            .await
            .map_err(|e| ClientError::from_connection(&e))?;
        let mut hello = Vec::new();
        encode_frame(
            &pb::ClientFrame {
                kind: Some(pb::client_frame::Kind::Hello(pb::Hello {
                    software: cfg.software.clone(),
                    version: cfg.version.clone(),
                    gateway: cfg.gateway,
                })),
            },
            &mut hello,
        );
        send.write_all(&hello).await.map_err(write_error)?;
        let mut buf = BytesMut::new();
        let frame = loop {
            match split_frame(&mut buf, cfg.max_server_frame_bytes) {
                Ok(Some(f)) => break f,
                Ok(None) => {}
                Err(e) => return Err(ClientError::Protocol(e.to_string())),
            }
            match recv.read_chunk(READ_CHUNK, true).await {
                Ok(Some(c)) => buf.extend_from_slice(&c.bytes),
                Ok(None) => {
                    return Err(ClientError::Protocol("stream ended before Welcome".into()))
                }
                Err(e) => return Err(read_error(e)),
            }
        };
        let welcome = match pb::ServerFrame::decode(frame) {
            Ok(pb::ServerFrame {
                kind: Some(server_frame::Kind::Welcome(w)),
            }) => w,
            Ok(_) => return Err(ClientError::Protocol("expected Welcome".into())),
            Err(e) => return Err(ClientError::Protocol(format!("bad Welcome: {e}"))),
        };
        Ok(Link {
            conn,
            send,
            recv,
            buf,
            welcome,
            max_frame: cfg.max_server_frame_bytes,
        })
    };
    tokio::time::timeout(cfg.connect_timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(ClientError::Connection("connect timed out".into())))
}

/// Reads server frames until the connection ends; returns why it ended.
async fn read_replies(
    mut recv: RecvStream,
    mut buf: BytesMut,
    inner: Arc<Inner>,
    max: usize,
) -> ClientError {
    loop {
        loop {
            let frame = match split_frame(&mut buf, max) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return ClientError::Protocol(e.to_string()),
            };
            match pb::ServerFrame::decode(frame) {
                Ok(pb::ServerFrame {
                    kind: Some(server_frame::Kind::Replies(r)),
                }) => inner.answer(r.replies),
                Ok(pb::ServerFrame {
                    kind: Some(server_frame::Kind::Error(e)),
                }) => {
                    tracing::warn!(reason = %e.reason, "vaka-device: the server could not decode a frame")
                }
                Ok(_) => {}
                Err(e) => return ClientError::Protocol(format!("bad server frame: {e}")),
            }
        }
        match recv.read_chunk(READ_CHUNK, true).await {
            Ok(Some(c)) => buf.extend_from_slice(&c.bytes),
            Ok(None) => return ClientError::Connection("the server finished its stream".into()),
            Err(e) => return read_error(e),
        }
    }
}

struct Driver {
    inner: Arc<Inner>,
    endpoint: quinn::Endpoint,
    quic: quinn::ClientConfig,
    cfg: DeviceConfig,
    /// Index of the server in use.
    server: usize,
}

impl Driver {
    async fn run(mut self, mut active: Active, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        loop {
            let gen = self.inner.lock().gen;
            let why = loop {
                tokio::select! {
                    cmd = rx.recv() => match cmd {
                        None | Some(Cmd::Close(_)) => {
                            active.conn.close(VarInt::from_u32(codes::NO_ERROR), b"bye");
                            active.reader.abort();
                            self.inner.fail_all(ClientError::Closed);
                            if let Some(Cmd::Close(ack)) = cmd {
                                let _ = ack.send(());
                            }
                            return;
                        }
                        Some(Cmd::Reconnect) => {
                            active.conn.close(VarInt::from_u32(codes::NO_ERROR), b"reconnecting");
                            break ClientError::Connection("reconnect requested".into());
                        }
                        Some(Cmd::Write { gen: g, bytes }) => {
                            if g == gen {
                                if let Err(e) = active.send.write_all(&bytes).await {
                                    break write_error(e);
                                }
                            }
                        }
                    },
                    r = &mut active.reader => {
                        break r.unwrap_or_else(|e| ClientError::Connection(e.to_string()));
                    }
                }
            };
            active.reader.abort();
            self.inner.lock().connected = false;
            tracing::debug!(error = %why, "vaka-device: connection lost, reconnecting");
            match self.reconnect(&mut rx).await {
                Some(a) => active = a,
                None => return,
            }
        }
    }

    /// Reconnects with backoff and resends every waiting event; `None` when the client was
    /// closed or gave up.
    async fn reconnect(&mut self, rx: &mut mpsc::UnboundedReceiver<Cmd>) -> Option<Active> {
        let mut delay = self.cfg.reconnect_min;
        let mut failures: u32 = 0;
        loop {
            if failures > 0 {
                let sleep = tokio::time::sleep(delay);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        cmd = rx.recv() => match cmd {
                            None | Some(Cmd::Close(_)) => {
                                self.inner.fail_all(ClientError::Closed);
                                if let Some(Cmd::Close(ack)) = cmd {
                                    let _ = ack.send(());
                                }
                                return None;
                            }
                            // Writes for the lost connection: their events are resent below.
                            Some(_) => {}
                        },
                    }
                }
                delay = (delay * 2).min(self.cfg.reconnect_max);
            }
            let addr = self.cfg.servers[self.server];
            let err = match open(&self.endpoint, &self.quic, &self.cfg, addr).await {
                Ok(link) => {
                    let welcome = link.welcome.clone();
                    let mut active = link.start(self.inner.clone());
                    let mut bytes = Vec::new();
                    {
                        let mut st = self.inner.lock();
                        st.gen += 1;
                        st.connected = true;
                        st.welcome = welcome;
                        let mut all: Vec<&Entry> =
                            st.pending.values().flat_map(|m| m.values()).collect();
                        all.sort_unstable_by_key(|e| e.seq);
                        encode_frames(all.iter().map(|e| &e.event), &st.welcome, &mut bytes);
                    }
                    match active.send.write_all(&bytes).await {
                        Ok(()) => {
                            self.inner.reconnects.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%addr, resent = bytes.len(), "vaka-device: reconnected");
                            return Some(active);
                        }
                        Err(e) => {
                            active.reader.abort();
                            self.inner.lock().connected = false;
                            write_error(e)
                        }
                    }
                }
                Err(e) => e,
            };
            failures += 1;
            tracing::debug!(%addr, error = %err, failures, "vaka-device: reconnect failed");
            self.server = (self.server + 1) % self.cfg.servers.len();
            if self
                .cfg
                .max_reconnect_attempts
                .is_some_and(|m| failures >= m)
            {
                self.inner
                    .fail_all(ClientError::Disconnected(err.to_string()));
                return None;
            }
        }
    }
}
