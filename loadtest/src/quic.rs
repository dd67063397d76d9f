//! The vaka/1 fleet: one QUIC connection per device (`vaka_device::Client`), spread over a few
//! shared client endpoints (quinn drives each endpoint's I/O on one task). Each device has a task
//! that submits what the dispatcher queued for it, without waiting for replies (pipelining), and
//! records every reply as it comes.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use vaka_device::{events, pb, Client, ClientError, DeviceConfig};

use crate::fleet::Fleet;
use crate::queues::{DeviceQueues, GiveUp};
use crate::record::{Path, Recorder};
use crate::scenario::{Kind, Planned};

/// One event for a device task: what, when it was scheduled, where its path ends.
pub struct Job {
    pub planned: Planned,
    pub at: Instant,
    pub path: Path,
}

#[derive(Clone, Debug)]
pub struct QuicOptions {
    pub server: std::net::SocketAddr,
    pub certs: PathBuf,
    /// Client endpoints (UDP sockets) the connections are spread over.
    pub endpoints: usize,
    /// Connections being set up at once.
    pub connect_parallel: usize,
}

/// The vaka/1 event for a planned event.
pub fn to_event(p: &Planned) -> pb::Event {
    let key = p.key.clone();
    match &p.kind {
        Kind::Alarm { code, priority } => events::alarm(key, *code, *priority),
        Kind::Technical { code, restoral } => events::technical(key, *code, *restoral),
        Kind::Heartbeat => events::heartbeat(key),
        Kind::Position {
            time_ms,
            lat,
            lon,
            accuracy_m,
        } => events::position(key, *time_ms, *lat, *lon, Some(*accuracy_m)),
        Kind::Telemetry { name, value } => events::telemetry(key, *name, *value),
    }
}

/// The error kind an event is counted under when the client fails it.
pub fn client_error_kind(e: &ClientError) -> &'static str {
    match e {
        ClientError::Config(_) => "config",
        ClientError::Refused(_) => "refused",
        ClientError::ClosedByServer { .. } => "closed_by_server",
        ClientError::Connection(_) => "connection",
        ClientError::Protocol(_) => "protocol",
        ClientError::InvalidEvent(_) => "invalid_event",
        ClientError::Closed => "closed",
        ClientError::Disconnected(_) => "disconnected",
    }
}

pub struct QuicFleet {
    queues: DeviceQueues<Job>,
}

impl QuicFleet {
    /// Connects the first `n` devices of `fleet`; `connected(k)` is called as connections come
    /// up. Devices that fail to connect are counted as `connect` errors; the run goes on
    /// without them unless none connected (given up after a first wave of failures).
    pub async fn connect(
        fleet: &Fleet,
        n: usize,
        opts: &QuicOptions,
        recorder: Arc<Recorder>,
        connected: impl Fn(usize),
    ) -> Result<QuicFleet, String> {
        let bind = if opts.server.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        let endpoints = (0..opts.endpoints.max(1))
            .map(|_| vaka_device::client_endpoint(bind.parse().expect("valid address")))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| format!("client endpoint: {e}"))?;
        let ca = opts.certs.join("server-ca.pem");
        let server_ca = std::fs::read(&ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        let names = fleet.devices.iter().take(n).map(|d| d.id.clone()).collect();
        let mut queues = DeviceQueues::new(names, recorder.clone());
        let stop = queues.stop_signal();
        queues
            .connect_each(
                opts.connect_parallel,
                GiveUp::AfterFailedFirstWave,
                |i, name| {
                    let ep = endpoints[i % endpoints.len()].clone();
                    let (cert, key) = fleet.cert_paths(&opts.certs, name);
                    let (server, server_ca) = (opts.server, server_ca.clone());
                    async move {
                        let read = |p: &std::path::Path| {
                            std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
                        };
                        let mut cfg =
                            DeviceConfig::new(server, server_ca, read(&cert)?, read(&key)?);
                        cfg.software = "vaka-load".into();
                        cfg.reconnect_max = Duration::from_secs(1);
                        Client::connect_with(ep, cfg)
                            .await
                            .map_err(|e| format!("device {name}: {e}"))
                    }
                },
                |_, name, client| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    let task = device_task(client, name.into(), rx, recorder.clone(), stop.clone());
                    (tx, tokio::spawn(task))
                },
                connected,
            )
            .await?;
        Ok(QuicFleet { queues })
    }

    /// Hands a due event to its device's task; never waits.
    pub fn send(&self, job: Job) {
        self.queues.send(job);
    }

    /// Stops sending and waits for the replies still due, at most until `deadline`; events
    /// still unanswered then are counted as `unanswered`. Closes every connection.
    pub async fn finish(self, deadline: Instant) {
        self.queues.finish(deadline).await;
    }
}

type Answer = Result<pb::EventReply, ClientError>;

async fn device_task(
    client: Client,
    name: String,
    mut queue: mpsc::UnboundedReceiver<Job>,
    rec: Arc<Recorder>,
    mut stop: watch::Receiver<bool>,
) {
    let mut waiting = FuturesUnordered::new();
    let mut open = true;
    while open || !waiting.is_empty() {
        tokio::select! {
            job = queue.recv(), if open => {
                let Some(job) = job else {
                    open = false;
                    continue;
                };
                // Everything queued meanwhile goes in the same submit (fewer, fuller frames).
                let mut batch = vec![job];
                while let Ok(j) = queue.try_recv() {
                    batch.push(j);
                }
                let events = batch.iter().map(|j| to_event(&j.planned)).collect();
                match client.submit(events).await {
                    Ok(futs) => {
                        for (job, fut) in batch.into_iter().zip(futs) {
                            waiting.push(async move { (job, fut.await) });
                        }
                    }
                    Err(e) => {
                        for job in batch {
                            rec.error(&name, &job.planned.key, client_error_kind(&e));
                        }
                    }
                }
            }
            Some((job, answer)) = waiting.next(), if !waiting.is_empty() => {
                record(&rec, &name, &job, answer);
            }
            _ = stop.changed() => break,
        }
    }
    // Closing fails what is still waiting with `Closed`: those got no answer in time.
    client.close().await;
    while let Ok(job) = queue.try_recv() {
        rec.error(&name, &job.planned.key, "unanswered");
    }
    while let Some((job, answer)) = waiting.next().await {
        match answer {
            Err(ClientError::Closed) => rec.error(&name, &job.planned.key, "unanswered"),
            other => record(&rec, &name, &job, other),
        }
    }
}

fn record(rec: &Recorder, device: &str, job: &Job, answer: Answer) {
    let key = &job.planned.key;
    match answer {
        Ok(r) => match r.status() {
            pb::Status::Ok => rec.acked(device, key, job.at, job.path, false),
            pb::Status::NotTreated => rec.acked(device, key, job.at, job.path, true),
            pb::Status::Busy => rec.error(device, key, "busy"),
            pb::Status::Rejected => rec.error(device, key, "rejected"),
            pb::Status::Error => rec.error(device, key, "error"),
            pb::Status::Unspecified => rec.error(device, key, "unspecified"),
        },
        Err(e) => rec.error(device, key, client_error_kind(&e)),
    }
}
