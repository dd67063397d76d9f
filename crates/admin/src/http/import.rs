//! Bulk import of devices: CSV or JSON Lines, applied in durable batches, answered with one JSON
//! line per row as each batch lands (row number, device, what happened or which field was wrong),
//! then a summary line. A bad row costs only itself; a row that matches what is stored changes
//! nothing, so running the same file twice changes nothing the second time.
use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use utoipa::ToSchema;
use vaka_core::access::Action;
use vaka_core::directory::{Change, DirectoryError};

use super::auth::Caller;
use super::directory::DeviceInput;
use super::problem::Problem;
use super::state::Api;
use crate::control::{Applied, ControlError, Request};

/// Rows made durable together: one synced write, one directory swap.
pub const BATCH: usize = 1_000;

/// One line of the answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RowResult {
    /// 1-based data row (a CSV header is row 0).
    pub row: usize,
    pub device: Option<String>,
    /// created, updated, unchanged or error.
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The last line of the answer.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct ImportSummary {
    pub rows: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub errors: usize,
    /// The directory revision after the import.
    pub revision: u64,
}

fn error(row: usize, device: Option<String>, field: &str, reason: impl Into<String>) -> RowResult {
    RowResult {
        row,
        device,
        result: "error".into(),
        field: Some(field.to_owned()),
        reason: Some(reason.into()),
    }
}

/// One row as a JSON object, or `(field, why)` it cannot be read.
type RowParse = Result<Map<String, Value>, (String, String)>;

/// CSV columns whose cells are lists (`;`-separated), numbers or booleans.
const LISTS: [&str; 2] = ["centres", "gateway_for"];
const NUMBERS: [&str; 4] = [
    "heartbeat_secs",
    "receipt_deadline_secs",
    "accept_deadline_secs",
    "revision",
];
const BOOLS: [&str; 2] = ["enabled", "single_use_nonce"];

/// CSV rows as JSON objects (empty cells left out), or why a row cannot be read.
fn csv_rows(body: &[u8]) -> Vec<RowParse> {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers: Vec<String> = match r.headers() {
        Ok(h) => h.iter().map(str::to_owned).collect(),
        Err(e) => return vec![Err((String::new(), format!("CSV header: {e}")))],
    };
    r.records()
        .map(|rec| {
            let rec = rec.map_err(|e| (String::new(), format!("CSV: {e}")))?;
            let mut obj = Map::new();
            for (name, cell) in headers.iter().zip(rec.iter()) {
                if cell.is_empty() {
                    continue;
                }
                let v = if LISTS.contains(&name.as_str()) {
                    Value::Array(
                        cell.split(';')
                            .map(|s| Value::String(s.trim().into()))
                            .collect(),
                    )
                } else if NUMBERS.contains(&name.as_str()) {
                    Value::Number(
                        cell.parse::<u64>()
                            .map_err(|_| {
                                (name.clone(), format!("\"{cell}\" is not a whole number"))
                            })?
                            .into(),
                    )
                } else if BOOLS.contains(&name.as_str()) {
                    Value::Bool(match cell {
                        "true" | "yes" | "1" => true,
                        "false" | "no" | "0" => false,
                        _ => {
                            return Err((name.clone(), format!("\"{cell}\" is not true or false")))
                        }
                    })
                } else {
                    Value::String(cell.to_owned())
                };
                obj.insert(name.clone(), v);
            }
            Ok(obj)
        })
        .collect()
}

fn jsonl_rows(body: &[u8]) -> Vec<RowParse> {
    body.split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(|l| match serde_json::from_slice::<Value>(l) {
            Ok(Value::Object(o)) => Ok(o),
            Ok(_) => Err((String::new(), "a row must be a JSON object".into())),
            Err(e) => Err((String::new(), format!("JSON: {e}"))),
        })
        .collect()
}

/// A row's device id and input, or what is wrong with it.
fn parse_row(
    mut obj: Map<String, Value>,
) -> Result<(String, DeviceInput), (Option<String>, String, String)> {
    let id = match obj.remove("id") {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => return Err((None, "id".into(), "every row needs its device id".into())),
    };
    obj.remove("tenant");
    obj.remove("revision");
    let input: DeviceInput = serde_path_to_error::deserialize(Value::Object(obj)).map_err(|e| {
        (
            Some(id.clone()),
            super::problem::error_field(&e),
            e.inner().to_string(),
        )
    })?;
    Ok((id, input))
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/device-imports", tag = "devices",
    params(("tenant" = String, Path)),
    request_body(content = String, description = "CSV with a header row (id,type,password,heartbeat_secs,centres,...; lists `;`-separated) with Content-Type text/csv, or JSON Lines (one device object with `id` per line) with Content-Type application/x-ndjson", content_type = "text/csv"),
    responses((status = 200, description = "One RowResult per line, then an ImportSummary line (application/x-ndjson)", body = ImportSummary),
        (status = 404, body = Problem), (status = 415, body = Problem)))]
pub async fn import_devices(
    State(api): State<Api>,
    caller: Caller,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    caller.may_on_tenant(
        &api,
        Action::Write,
        &tenant,
        &format!("tenant \"{tenant}\""),
    )?;
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let rows = if kind.starts_with("text/csv") {
        csv_rows(&body)
    } else if kind.contains("ndjson") || kind.contains("jsonl") || kind.contains("json-seq") {
        jsonl_rows(&body)
    } else {
        return Err(Problem::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send text/csv or application/x-ndjson",
        ));
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(run(api, caller.actor(), tenant, rows, tx));
    let stream = futures::StreamExt::map(
        tokio_stream::wrappers::ReceiverStream::new(rx),
        Ok::<Bytes, std::io::Error>,
    );
    let mut r = Body::from_stream(stream).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(r)
}

fn line<T: Serialize>(v: &T) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// Applies the rows batch by batch, sending each row's result as its batch lands.
async fn run(
    api: Api,
    actor: String,
    tenant: String,
    rows: Vec<RowParse>,
    tx: mpsc::Sender<Bytes>,
) {
    let mut sum = ImportSummary {
        rows: rows.len(),
        revision: api.control.live().load().revision,
        ..ImportSummary::default()
    };
    let numbered: Vec<(usize, _)> = rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| (i + 1, r))
        .collect();
    for chunk in numbered.chunks(BATCH) {
        let mut out: BTreeMap<usize, RowResult> = BTreeMap::new();
        let mut requests = Vec::new();
        let mut which = Vec::new();
        {
            let dir = api.control.live().load();
            for (row, r) in chunk {
                let parsed = r
                    .clone()
                    .map_err(|(f, why)| (None, f, why))
                    .and_then(parse_row);
                let (id, input) = match parsed {
                    Ok(x) => x,
                    Err((device, field, why)) => {
                        out.insert(*row, error(*row, device, &field, why));
                        continue;
                    }
                };
                let current = dir.records.devices.get(&(tenant.clone(), id.clone()));
                match input.into_record(&tenant, &id, &api.realm, current) {
                    Ok(rec) => {
                        requests.push(Request::from(Change::PutDevice(Box::new(rec))));
                        which.push((*row, id));
                    }
                    Err(p) => {
                        let field = p
                            .errors
                            .first()
                            .map(|e| e.field.clone())
                            .unwrap_or_default();
                        out.insert(*row, error(*row, Some(id), &field, p.detail));
                    }
                }
            }
        }
        if !requests.is_empty() {
            match api.control.apply(&actor, requests).await {
                Ok(outcome) => {
                    sum.revision = outcome.revision;
                    for ((row, id), result) in which.into_iter().zip(outcome.results) {
                        out.insert(row, row_result(row, id, result));
                    }
                }
                Err(e) => {
                    // The batch was not written: every row of it is named, none half-done.
                    for (row, id) in which {
                        out.insert(row, error(row, Some(id), "", format!("not stored: {e}")));
                    }
                }
            }
        }
        for r in out.values() {
            match r.result.as_str() {
                "created" => sum.created += 1,
                "updated" => sum.updated += 1,
                "unchanged" => sum.unchanged += 1,
                _ => sum.errors += 1,
            }
            if tx.send(line(r)).await.is_err() {
                // The caller went away; what is applied stays applied (each batch is whole).
                return;
            }
        }
    }
    metrics::counter!("vaka_admin_import_rows_total").increment(sum.rows as u64);
    let _ = tx.send(line(&serde_json::json!({ "summary": sum }))).await;
}

fn row_result(row: usize, id: String, result: Result<Applied, ControlError>) -> RowResult {
    let word = |w: &str| RowResult {
        row,
        device: Some(id.clone()),
        result: w.into(),
        field: None,
        reason: None,
    };
    match result {
        Ok(Applied::Created) => word("created"),
        Ok(Applied::Updated | Applied::Deleted) => word("updated"),
        Ok(Applied::Unchanged) => word("unchanged"),
        Err(ControlError::Directory(DirectoryError::Invalid(p))) => {
            let (field, reason) = p.into_iter().next().unwrap_or_default();
            error(row, Some(id), &field, reason)
        }
        Err(e) => error(row, Some(id.clone()), "", e.to_string()),
    }
}
