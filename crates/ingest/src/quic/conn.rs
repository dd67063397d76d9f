//! One device connection: identity, Hello/Welcome, then frames in and replies out, pipelined.
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::future::{join_all, Either};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use quinn::{RecvStream, SendStream, VarInt};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tracing::Instrument;
use vaka_core::{DeviceKey, Event};
use vaka_proto::pb::{self, server_frame, Status};
use vaka_proto::{
    codes, encode_frame, parse_client_frame, split_frame, ClientFrameRef, FramingError, Message,
    ParseError,
};

use super::alarm_flow::HELD_PER_CONNECTION;
use super::convert::{self, Head, Refusal};
use super::shared::Shared;

/// Bytes asked of quinn per read.
const READ_CHUNK: usize = 64 * 1024;
/// Replies gathered into one reply frame at most.
const REPLY_BATCH: usize = 4096;
/// Buffers above this are given back when they empty, so idle connections stay small.
const KEEP_BUFFER: usize = 64 * 1024;

/// One connection's task. Each phase runs in its own box, so that what an idle connection keeps
/// is the serving loop's state alone, not the largest state of the handshake or the Hello.
pub(crate) async fn handle(
    incoming: Box<quinn::Incoming>,
    _permit: OwnedSemaphorePermit,
    shared: Arc<Shared>,
) {
    let Some((conn, own)) = Box::pin(establish(incoming, &shared)).await else {
        return;
    };
    shared.metrics.connections_accepted.increment(1);
    let link = conn.stable_id();
    let since = shared.clock.now_ms();
    shared
        .connected()
        .entry(own.clone())
        .or_default()
        .push((conn.clone(), since));
    // Registered first, checked second: a removal published before the registration is seen
    // here, one after it by the server's directory watcher (`server::close_removed`).
    if shared.directory.load().device(&own).is_none() {
        conn.close(VarInt::from_u32(codes::IDENTITY), REMOVED.as_bytes());
    }
    shared.metrics.connections_active.increment(1.0);
    let span = tracing::debug_span!("quic", device = %own, remote = %conn.remote_address());
    let mut c = Conn {
        conn: conn.clone(),
        own,
        shared: shared.clone(),
        buf: BytesMut::new(),
        out: Vec::new(),
        inflight: 0,
    };
    let own = c.own.clone();
    let end = match Box::pin(c.hello().instrument(span.clone())).await {
        Ok((send, recv)) => Box::pin(c.serve(send, recv).instrument(span.clone())).await,
        Err(end) => end,
    };
    shared.metrics.connections_active.decrement(1.0);
    {
        let mut connected = shared.connected();
        if let Some(v) = connected.get_mut(&own) {
            v.retain(|(other, _)| other.stable_id() != link);
            if v.is_empty() {
                connected.remove(&own);
            }
        }
    }
    let _enter = span.enter();
    match end {
        End::Lost(e) => tracing::debug!(error = %e, "quic: connection ended"),
        End::Closed(code, reason) => {
            if code != codes::NO_ERROR && code != codes::SHUTDOWN {
                shared.metrics.protocol_errors.increment(1);
                tracing::info!(
                    code = codes::name(code.into()),
                    reason,
                    "quic: connection closed"
                );
            }
            conn.close(VarInt::from_u32(code), reason.as_bytes());
        }
    }
}

/// Why a removed or disabled device's connection is closed (with `IDENTITY`).
pub(crate) const REMOVED: &str = "device removed or disabled in the directory";

/// The handshake and the device's identity; `None` when the connection is refused (and closed).
async fn establish(
    incoming: Box<quinn::Incoming>,
    shared: &Shared,
) -> Option<(quinn::Connection, DeviceKey)> {
    let remote = incoming.remote_address();
    let conn = match (*incoming).await {
        Ok(c) => c,
        Err(e) => {
            shared.metrics.handshake_errors.increment(1);
            tracing::debug!(%remote, error = %e, "quic: handshake failed");
            return None;
        }
    };
    let alpn_ok = conn
        .handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .is_some_and(|h| h.protocol.as_deref() == Some(vaka_proto::ALPN));
    if !alpn_ok {
        shared.metrics.protocol_errors.increment(1);
        conn.close(VarInt::from_u32(codes::PROTOCOL), b"ALPN vaka/1 required");
        return None;
    }
    // Checked again after the handshake: a resumed TLS session skips the certificate verifier,
    // and the directory may have changed since.
    let chain = conn.peer_identity().and_then(|p| {
        p.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
            .ok()
    });
    match chain.map(|c| shared.verifier.identify_chain(&c)) {
        Some(Ok(key)) => Some((conn, key)),
        other => {
            shared.metrics.handshake_errors.increment(1);
            tracing::debug!(%remote, result = ?other.map(|r| r.map(|_| ())), "quic: identity refused after handshake");
            conn.close(
                VarInt::from_u32(codes::IDENTITY),
                b"certificate identity not valid",
            );
            None
        }
    }
}

/// How a connection ended.
enum End {
    /// The peer closed, timed out, or the network failed: nothing to send.
    Lost(String),
    /// Close it with this application code.
    Closed(u32, String),
}

/// An event decoded and checked, ready to submit; or its reply at once.
type Prepared = Result<(Head, Event), pb::EventReply>;

/// What a frame asks for.
enum Step {
    /// Submit these now (the number of events).
    Submit(Vec<Prepared>),
    /// Telemetry alone while alarms flow: submit them when it is their turn (`alarm_flow`);
    /// the number of telemetry events among them.
    Hold(Vec<Prepared>, usize),
    /// Nothing to do (an empty event frame).
    Nothing,
    /// Answer `ServerFrame.error`, go on.
    FrameError(String),
    /// Close the connection.
    Close(u32, String),
}

/// The held frames' turn (`alarm_flow::AlarmFlow::telemetry_turn`).
type Turn = std::pin::Pin<Box<dyn Future<Output = Option<OwnedSemaphorePermit>> + Send>>;

struct Conn {
    conn: quinn::Connection,
    own: DeviceKey,
    shared: Arc<Shared>,
    /// Received bytes not yet split into frames.
    buf: BytesMut,
    /// Encoded frames not yet written.
    out: Vec<u8>,
    /// Events submitted and not yet answered.
    inflight: usize,
}

impl Conn {
    /// Waits for the stream and the Hello, answers Welcome.
    async fn hello(&mut self) -> Result<(SendStream, RecvStream), End> {
        let deadline = Instant::now() + self.shared.hello_timeout;
        let token = self.shared.token.clone();
        let stream = tokio::select! {
            _ = token.cancelled() => return Err(End::Closed(codes::SHUTDOWN, "server shutting down".into())),
            s = tokio::time::timeout_at(deadline, self.conn.accept_bi()) => s,
        };
        let (mut send, mut recv) = match stream {
            Err(_) => {
                return Err(End::Closed(
                    codes::PROTOCOL,
                    "no stream opened in time".into(),
                ))
            }
            Ok(Err(e)) => return Err(End::Lost(e.to_string())),
            Ok(Ok(s)) => s,
        };
        let hello = loop {
            match split_frame(&mut self.buf, self.shared.max_frame_bytes) {
                Ok(Some(f)) => break f,
                Ok(None) => {}
                Err(e) => return Err(framing_end(e)),
            }
            let read = tokio::select! {
                _ = token.cancelled() => return Err(End::Closed(codes::SHUTDOWN, "server shutting down".into())),
                r = tokio::time::timeout_at(deadline, recv.read_chunk(READ_CHUNK, true)) => r,
            };
            match read {
                Err(_) => return Err(End::Closed(codes::PROTOCOL, "no Hello in time".into())),
                Ok(Err(e)) => return Err(End::Lost(e.to_string())),
                Ok(Ok(None)) => {
                    return Err(End::Closed(
                        codes::PROTOCOL,
                        "stream finished before Hello".into(),
                    ))
                }
                Ok(Ok(Some(c))) => self.received(&c.bytes),
            }
        };
        match parse_client_frame(&hello, 0) {
            Ok(ClientFrameRef::Hello(h)) => {
                tracing::debug!(software = %h.software, version = %h.version, gateway = h.gateway, "quic: hello");
            }
            Ok(ClientFrameRef::Events(_)) | Err(ParseError::TooManyEvents { .. }) => {
                return Err(End::Closed(
                    codes::PROTOCOL,
                    "the first frame must be Hello".into(),
                ))
            }
            Err(e) => return Err(End::Closed(codes::PROTOCOL, format!("bad Hello: {e}"))),
        }
        let welcome = pb::Welcome {
            tenant: self.own.tenant.to_string(),
            device: self.own.device.to_string(),
            max_frame_bytes: self.shared.max_frame_bytes as u32,
            max_events_per_frame: self.shared.max_events_per_frame as u32,
            server: concat!("vaka/", env!("CARGO_PKG_VERSION")).into(),
        };
        self.push(server_frame::Kind::Welcome(welcome));
        self.flush(&mut send).await?;
        Ok((send, recv))
    }

    async fn serve(mut self, mut send: SendStream, mut recv: RecvStream) -> End {
        let token = self.shared.token.clone();
        let max_frame = self.shared.max_frame_bytes;
        let max_inflight = self.shared.max_inflight_events;
        let conn = self.conn.clone();
        let mut pending = FuturesUnordered::new();
        // Frames of telemetry waiting for their turn, oldest first, and their events.
        let mut held: VecDeque<(Vec<Prepared>, usize)> = VecDeque::new();
        let mut held_events = 0;
        let mut turn: Option<Turn> = None;
        let mut finished = false;
        loop {
            // Take every complete frame the buffer holds, as far as the in-flight bound and the
            // bound on held telemetry allow. A frame with an alarm goes past held ones.
            while self.inflight < max_inflight && held_events < HELD_PER_CONNECTION {
                let frame = match split_frame(&mut self.buf, max_frame) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => return framing_end(e),
                };
                match self.frame(frame) {
                    Step::Submit(prepared) => {
                        self.inflight += prepared.len();
                        pending.push(submit_frame(&self.shared, prepared, None));
                    }
                    Step::Hold(prepared, telemetry) => {
                        self.inflight += prepared.len();
                        held_events += prepared.len();
                        held.push_back((prepared, telemetry));
                    }
                    Step::Nothing => {}
                    Step::FrameError(reason) => {
                        self.shared.metrics.frame_errors.increment(1);
                        tracing::debug!(%reason, "quic: malformed frame");
                        self.push(server_frame::Kind::Error(pb::FrameError { reason }));
                    }
                    Step::Close(code, reason) => return End::Closed(code, reason),
                }
            }
            if self.buf.is_empty() && self.buf.capacity() > KEEP_BUFFER {
                self.buf = BytesMut::new();
            }
            if !self.out.is_empty() {
                tokio::select! {
                    r = self.flush(&mut send) => if let Err(end) = r { return end },
                    _ = token.cancelled() => return End::Closed(codes::SHUTDOWN, "server shutting down".into()),
                }
            }
            if turn.is_none() {
                if let Some((_, telemetry)) = held.front() {
                    turn = Some(Box::pin(
                        self.shared.flow.clone().telemetry_turn(*telemetry),
                    ));
                }
            }
            if finished && pending.is_empty() && held.is_empty() {
                if !self.buf.is_empty() {
                    return End::Closed(
                        codes::PROTOCOL,
                        "stream finished in the middle of a frame".into(),
                    );
                }
                let _ = send.finish();
                let stopped = tokio::time::timeout(self.shared.drain_timeout, send.stopped());
                let _ = Box::pin(stopped).await;
                return End::Closed(codes::NO_ERROR, "done".into());
            }
            let can_read =
                !finished && self.inflight < max_inflight && held_events < HELD_PER_CONNECTION;
            tokio::select! {
                biased;
                // A held frame was never submitted: nothing of it is answered, the device resends.
                _ = token.cancelled() => return Box::pin(self.drain(pending, send)).await,
                permit = async { turn.as_mut().expect("checked").as_mut().await }, if turn.is_some() => {
                    turn = None;
                    let (prepared, _) = held.pop_front().expect("a turn is for a held frame");
                    held_events -= prepared.len();
                    pending.push(submit_frame(&self.shared, prepared, permit));
                }
                Some(replies) = pending.next(), if !pending.is_empty() => {
                    let mut batch = replies;
                    while batch.len() < REPLY_BATCH {
                        match pending.next().now_or_never() {
                            Some(Some(more)) => batch.extend(more),
                            _ => break,
                        }
                    }
                    self.replies(batch);
                }
                r = recv.read_chunk(READ_CHUNK, true), if can_read => match r {
                    Ok(Some(c)) => self.received(&c.bytes),
                    Ok(None) => finished = true,
                    Err(e) => return End::Lost(e.to_string()),
                },
                e = conn.closed(), if !can_read => return End::Lost(e.to_string()),
            }
        }
    }

    /// Shutdown: read nothing more, answer what was submitted (bounded), then close.
    async fn drain<F>(mut self, mut pending: FuturesUnordered<F>, mut send: SendStream) -> End
    where
        F: Future<Output = Vec<pb::EventReply>>,
    {
        let deadline = Instant::now() + self.shared.drain_timeout;
        while !pending.is_empty() {
            match tokio::time::timeout_at(deadline, pending.next()).await {
                Ok(Some(replies)) => {
                    let mut batch = replies;
                    while let Some(Some(more)) = pending.next().now_or_never() {
                        batch.extend(more);
                    }
                    self.replies(batch);
                    match tokio::time::timeout_at(deadline, self.flush(&mut send)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(end)) => return end,
                        Err(_) => break,
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        let _ = send.finish();
        let _ = tokio::time::timeout_at(deadline, send.stopped()).await;
        End::Closed(codes::SHUTDOWN, "server shutting down".into())
    }

    fn received(&mut self, bytes: &Bytes) {
        self.shared
            .metrics
            .bytes_received
            .increment(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
    }

    fn push(&mut self, kind: server_frame::Kind) {
        encode_frame(&pb::ServerFrame { kind: Some(kind) }, &mut self.out);
    }

    async fn flush(&mut self, send: &mut SendStream) -> Result<(), End> {
        if let Err(e) = send.write_all(&self.out).await {
            return Err(End::Lost(e.to_string()));
        }
        self.shared
            .metrics
            .bytes_sent
            .increment(self.out.len() as u64);
        self.out.clear();
        if self.out.capacity() > KEEP_BUFFER {
            self.out = Vec::new();
        }
        Ok(())
    }

    fn replies(&mut self, replies: Vec<pb::EventReply>) {
        let m = &self.shared.metrics;
        let mut by_status = [0u64; 5];
        for r in &replies {
            let i = match r.status() {
                Status::Ok => 0,
                Status::NotTreated => 1,
                Status::Busy => 2,
                Status::Rejected => 3,
                Status::Error | Status::Unspecified => 4,
            };
            by_status[i] += 1;
        }
        for (i, n) in by_status.iter().enumerate() {
            if *n > 0 {
                m.replies[i].increment(*n);
                if i >= 2 {
                    m.discarded[i - 2].increment(*n);
                }
            }
        }
        self.inflight -= replies.len();
        self.push(server_frame::Kind::Replies(pb::ReplyFrame { replies }));
    }

    fn frame(&mut self, frame: Bytes) -> Step {
        let raws = match parse_client_frame(&frame, self.shared.max_events_per_frame) {
            Ok(ClientFrameRef::Events(raws)) => raws,
            Ok(ClientFrameRef::Hello(_)) => {
                return Step::Close(codes::PROTOCOL, "Hello sent twice".into())
            }
            Err(ParseError::TooManyEvents { max }) => {
                return Step::Close(
                    codes::TOO_MANY_EVENTS,
                    format!("more than {max} events in one frame"),
                )
            }
            Err(e) => return Step::FrameError(e.to_string()),
        };
        if raws.is_empty() {
            return Step::Nothing;
        }
        self.shared
            .metrics
            .events_received
            .increment(raws.len() as u64);
        let now = self.shared.clock.now_ms();
        let prepared: Vec<_> = raws
            .iter()
            .enumerate()
            .map(|(i, raw)| self.prepare(i as u32, raw, now))
            .collect();
        let telemetry = prepared
            .iter()
            .filter(|p| matches!(p, Ok((_, e)) if e.lane() == vaka_core::Lane::Telemetry))
            .count();
        let alarms = prepared.iter().filter(|p| p.is_ok()).count() - telemetry;
        // Alarms first (alarm_flow): a frame of telemetry alone waits its turn while alarms
        // flow; a frame with an alarm in it goes at once, whatever else it carries.
        if alarms > 0 || telemetry == 0 || !self.shared.flow.flowing() {
            Step::Submit(prepared)
        } else {
            Step::Hold(prepared, telemetry)
        }
    }

    /// Decodes and checks one event: the core event to submit, or its reply at once.
    fn prepare(&self, index: u32, raw: &[u8], now: i64) -> Prepared {
        let ev = match pb::Event::decode(raw) {
            Ok(ev) => ev,
            Err(e) => {
                let head = Head {
                    key: String::new(),
                    device: String::new(),
                    index,
                };
                return Err(head.reply(Status::Error, format!("undecodable event: {e}")));
            }
        };
        let head = Head {
            key: ev.key.clone(),
            device: ev.device.clone(),
            index,
        };
        let checked = convert::check_key(&ev.key)
            .and_then(|()| convert::target(&self.own, &ev.device))
            .and_then(|target| {
                if target != self.own
                    && !self.shared.directory.load().may_send_as(&self.own, &target)
                {
                    return Err(Refusal::Forbidden(format!(
                        "{} may not send as {target}",
                        self.own
                    )));
                }
                convert::to_core(ev, target, now, raw.to_vec())
            });
        match checked {
            Ok(e) => Ok((head, e)),
            Err(Refusal::Malformed(reason)) => Err(head.reply(Status::Error, reason)),
            Err(Refusal::Forbidden(reason)) => Err(head.reply(Status::Rejected, reason)),
        }
    }
}

/// Submits a frame's prepared events; the future yields their replies, in order. Its turn (a
/// share of the telemetry budget while alarms flow) is given back once they are answered.
fn submit_frame(
    shared: &Arc<Shared>,
    prepared: Vec<Prepared>,
    turn: Option<OwnedSemaphorePermit>,
) -> impl Future<Output = Vec<pb::EventReply>> + Send + 'static {
    let futs: Vec<_> = prepared.into_iter().map(|p| submit(shared, p)).collect();
    async move {
        let replies = join_all(futs).await;
        drop(turn);
        replies
    }
}

/// Submits one prepared event; the future yields its reply. An alarm-lane event counts as
/// deciding (alarm_flow) until it is answered.
fn submit(
    shared: &Arc<Shared>,
    prepared: Prepared,
) -> impl Future<Output = pb::EventReply> + Send + 'static {
    let (head, event) = match prepared {
        Ok(p) => p,
        Err(reply) => return Either::Left(futures::future::ready(reply)),
    };
    let lane = event.lane();
    shared.metrics.events_sent.increment(1);
    let deciding = (lane == vaka_core::Lane::Alarm).then(|| {
        shared.metrics.alarms_received.increment(1);
        shared.flow.alarm()
    });
    let submitted = shared.router.submit(event);
    Either::Right(async move {
        let reply = convert::reply_of(head, lane, submitted.await);
        drop(deciding);
        reply
    })
}

fn framing_end(e: FramingError) -> End {
    match e {
        FramingError::TooLarge { .. } => End::Closed(codes::FRAME_TOO_LARGE, e.to_string()),
        FramingError::BadLength => End::Closed(codes::PROTOCOL, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_size3<A, B, C, F: Future>(_: impl FnOnce(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// An idle connection keeps its task (`handle`) and the boxed serving loop, nothing else:
    /// the handshake (quinn's `Incoming` alone is ~400 bytes) and the Hello live in boxes freed
    /// when they end. Inlining them again would add ~2 KiB to every idle connection.
    #[test]
    fn an_idle_connection_keeps_small_task_state() {
        let task = state_size3(handle);
        let serving = state_size3(Conn::serve);
        assert!(task <= 512, "connection task state {task} bytes");
        assert!(serving <= 1024, "serving loop state {serving} bytes");
    }
}
