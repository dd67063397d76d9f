//! `GET /api/v1/tenants/{t}/export`: all of one tenant's data as a tar (`crate::archive`),
//! streamed as it is made: a blocking task writes the archive into a bounded channel that the
//! answer's body reads, so memory holds a few chunks whatever the tenant's size. An export is
//! personal data leaving the engine: it is in the tenant's admin audit log (who, when).
use std::io::{self, Write};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use vaka_core::access::{Action, Resource};
use vaka_store::directory::AdminAuditEntry;

use crate::data::DataAction;

use super::auth::Caller;
use super::problem::Problem;
use super::state::Api;
use crate::archive::write::{write_archive, TenantRecords};

/// Bytes per chunk of the answer; chunks in flight: `CHUNKS`.
const CHUNK: usize = 256 << 10;
const CHUNKS: usize = 8;

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/export", tag = "tenants",
    params(("tenant" = String, Path)),
    responses((status = 200, content_type = "application/x-tar",
        description = "the tenant's archive: JSON Lines per kind, a JSON Schema per kind, README.md, manifest.json last"),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn export_tenant(
    State(api): State<Api>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Response, Problem> {
    let what = format!("tenant \"{tenant}\"");
    let records = {
        let dir = api.control.live().load();
        // Its devices' credentials are in it: the tenant's admins and the platform only.
        caller.may(Action::Write, Resource::Tenant(&tenant), &dir, &what)?;
        TenantRecords::of(&dir.records, &tenant).ok_or_else(|| Problem::not_found(&what))?
    };
    let store = api.control.store().clone();
    let now_ms = api.control.now_ms();
    // Who read what, in every node's audit log.
    let entry = AdminAuditEntry {
        revision: api.control.live().load().revision,
        at_ms: now_ms,
        actor: caller.actor(),
        tenant: Some(tenant.clone()),
        action: "export tenant".into(),
        resource: format!("tenants/{tenant}"),
        before: None,
        after: None,
    };
    let outcome = api
        .control
        .act(&caller.actor(), Vec::new(), vec![DataAction::Audit(entry)])
        .await?;
    if outcome.done.is_empty() {
        return Err(Problem::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            "the export's audit entry was not written; ask again",
        ));
    }
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHUNKS);
    let t = tenant.clone();
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let out = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let done = write_archive(out, &store, &records, now_ms, &mut |file, n| {
            tracing::debug!(tenant = %t, file, lines = n, "export: file written");
        })
        .map_err(|e| io::Error::other(e.to_string()))
        .and_then(|(mut out, m)| out.flush().map(|()| m));
        match done {
            Ok(m) => {
                metrics::counter!("vaka_exports_total", "tenant" => t.clone()).increment(1);
                tracing::info!(tenant = %t, lines = ?m.lines, took = ?started.elapsed(), "tenant exported");
            }
            Err(e) => {
                // The body ends in an error, so the client sees a broken transfer, not a
                // short archive that looks whole (and a whole one has its manifest last).
                tracing::warn!(tenant = %t, error = %e, "export failed");
                let _ = tx.blocking_send(Err(e));
            }
        }
    });
    let name = format!("vaka-export-{tenant}-{now_ms}.tar");
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
        .into_response())
}

/// A `Write` into the answer's body: chunks of `CHUNK` bytes, waiting while the channel is
/// full (the client reads slower than the store is read).
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
