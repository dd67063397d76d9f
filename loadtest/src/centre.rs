//! The alarm-centre simulator: a gRPC client of `vaka.centre.v1.AlarmCentre` that says Hello
//! (resuming after a cursor if asked), matches every offer to the alarm the fleet sent (by device
//! and reference = the event's key; a "repeated" update delivers the device's oldest waiting
//! alarm), sends a receipt at once, accepts after the operator delay and then closes, so that the
//! device's next alarm opens a new one. It acknowledges each cursor once handled and reconnects
//! (resuming after its last acknowledged cursor) when the stream breaks.
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use vaka_centre::console::{self, ClientTls};

use crate::record::Recorder;

pub use vaka_centre::pb;

use pb::centre_message::Msg as Out;
use pb::server_message::Msg as In;

#[derive(Clone, Debug)]
pub struct CentreOptions {
    pub addr: SocketAddr,
    pub token: String,
    /// How long the operator takes between receipt and accept.
    pub operator_delay: Duration,
    /// Hello's resume cursor for the first connection (`None`: after the last acknowledged).
    pub resume_after: Option<u64>,
    /// The server CA to trust: TLS to the centre API (`None`: plaintext, loopback only).
    pub ca: Option<std::path::PathBuf>,
}

/// The gRPC status name for an `InputResult` code, as an error kind.
fn input_error_kind(code: i32) -> String {
    let name = match code {
        3 => "invalid_argument",
        5 => "not_found",
        8 => "resource_exhausted",
        9 => "failed_precondition",
        14 => "unavailable",
        _ => return format!("centre_input_{code}"),
    };
    format!("centre_{name}")
}

pub struct Sim {
    task: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
}

type Session = (
    mpsc::Sender<pb::CentreMessage>,
    tonic::Streaming<pb::ServerMessage>,
);

async fn open(opts: &CentreOptions, resume_after: Option<u64>) -> Result<Session, String> {
    let mut client = tokio::time::timeout(
        Duration::from_secs(5),
        console::connect(
            &opts.addr.to_string(),
            Some(&opts.token),
            ClientTls {
                ca: opts.ca.as_deref(),
                ..ClientTls::default()
            },
        ),
    )
    .await
    .map_err(|_| format!("centre {}: connect timed out", opts.addr))??;
    let (tx, rx) = mpsc::channel(4096);
    let hello = Out::Hello(pb::Hello {
        resume_after,
        client: format!("vaka-load {}", env!("CARGO_PKG_VERSION")),
    });
    tx.send(pb::CentreMessage { msg: Some(hello) })
        .await
        .map_err(|_| "centre stream closed".to_string())?;
    let mut stream = client
        .session(ReceiverStream::new(rx))
        .await
        .map_err(|s| format!("centre session: {}", s.message()))?
        .into_inner();
    match stream.message().await {
        Ok(Some(pb::ServerMessage {
            msg: Some(In::Welcome(_)),
        })) => Ok((tx, stream)),
        Ok(other) => Err(format!("centre session: expected Welcome, got {other:?}")),
        Err(s) => Err(format!("centre session: {}", s.message())),
    }
}

impl Sim {
    /// Connects (failing if the first connection fails) and runs until [`stop`](Self::stop).
    pub async fn start(opts: CentreOptions, rec: Arc<Recorder>) -> Result<Sim, String> {
        let first = open(&opts, opts.resume_after).await?;
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(opts, first, rec, stop_rx));
        Ok(Sim { task, stop })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn run(
    opts: CentreOptions,
    first: Session,
    rec: Arc<Recorder>,
    mut stop: watch::Receiver<bool>,
) {
    let next_request = Arc::new(AtomicU64::new(1));
    // Alarms already being handled: a second offer of one (at-least-once) is only acknowledged.
    let mut handled: HashSet<u64> = HashSet::new();
    let mut session = Some(first);
    loop {
        let (tx, mut stream) = match session.take() {
            Some(s) => s,
            None => {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                match open(&opts, None).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!("centre reconnect: {e}");
                        rec.error_kind("centre_connect", 1);
                        continue;
                    }
                }
            }
        };
        loop {
            let msg = tokio::select! {
                _ = stop.changed() => return,
                m = stream.message() => m,
            };
            let msg = match msg {
                Ok(Some(pb::ServerMessage { msg: Some(m) })) => m,
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => {
                    rec.error_kind("centre_stream", 1);
                    break;
                }
            };
            let send = |m: Out| {
                let tx = tx.clone();
                async move { tx.send(pb::CentreMessage { msg: Some(m) }).await.is_ok() }
            };
            match msg {
                In::Offer(o) => {
                    let Some(alarm) = o.alarm else { continue };
                    rec.offered(&alarm.device, &alarm.reference);
                    if handled.insert(alarm.alarm_id) {
                        // Three requests: receipt, accept, close.
                        let id = next_request.fetch_add(3, Ordering::Relaxed);
                        send(Out::Receipt(pb::Receipt {
                            request_id: id,
                            alarm_id: alarm.alarm_id,
                        }))
                        .await;
                        tokio::spawn(operator(
                            tx.clone(),
                            alarm.alarm_id,
                            id + 1,
                            opts.operator_delay,
                        ));
                    }
                    send(Out::Ack(pb::Ack { cursor: o.cursor })).await;
                }
                In::Update(u) => {
                    if u.kind() == pb::UpdateKind::Repeated {
                        if let Some(a) = &u.alarm {
                            rec.repeated(&a.device);
                        }
                    }
                    if matches!(
                        u.kind(),
                        pb::UpdateKind::Closed | pb::UpdateKind::CancelledByDevice
                    ) {
                        if let Some(a) = &u.alarm {
                            handled.remove(&a.alarm_id);
                        }
                    }
                    send(Out::Ack(pb::Ack { cursor: u.cursor })).await;
                }
                In::Result(r) if r.code != 0 => rec.error_kind(&input_error_kind(r.code), 1),
                In::Result(_) | In::Heartbeat(_) | In::Welcome(_) => {}
            }
        }
    }
}

/// The operator: accepts after the delay, then closes the alarm.
async fn operator(tx: mpsc::Sender<pb::CentreMessage>, alarm_id: u64, id: u64, delay: Duration) {
    tokio::time::sleep(delay).await;
    let accept = Out::Accept(pb::Accept {
        request_id: id,
        alarm_id,
        operator_id: "vaka-load".into(),
    });
    let close = Out::Close(pb::Close {
        request_id: id + 1,
        alarm_id,
        outcome: "load-test".into(),
        note: String::new(),
    });
    for m in [accept, close] {
        if tx.send(pb::CentreMessage { msg: Some(m) }).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_errors_are_named_by_their_grpc_status() {
        assert_eq!(input_error_kind(9), "centre_failed_precondition");
        assert_eq!(input_error_kind(42), "centre_input_42");
    }
}
