//! `POST /api/v1/tenants/{t}/import`: a tenant's archive (`crate::archive`) brought into this
//! engine. The upload is spooled to a temporary file, then read twice:
//! 1. checked whole before anything is written: every line reads as its kind and is the
//!    tenant's, data lines (alarms with trails, events, positions, admin audit) only from a
//!    platform operator (a tenant's admin could otherwise make up its care record), no alarm
//!    is open, the manifest's counts match (a cut-short archive is refused),
//!    no id is taken here by another record, and the directory records apply (on a copy);
//!    anything wrong is refused as problem+json naming the file and line, and nothing changes;
//! 2. written: ids raised past the archive's, the data in synced chunks (records already here
//!    and equal are skipped, so a repeated import changes nothing), the retention sweeps'
//!    watermarks taken back to the archive's first event (its events are swept like any),
//!    then the directory records through the control plane in one change (devices work from
//!    its answer on).
use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use futures::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;
use vaka_core::access::{Action, Resource};
use vaka_core::directory::{Change, Directory};
use vaka_store::directory::AdminAuditEntry;

use crate::data::DataAction;
use vaka_store::{Found, Imported, Store};

use super::auth::Caller;
use super::problem::{FieldError, Problem};
use super::state::Api;
use crate::archive::read::{walk, Bad, DirRecord, Record};
use crate::control::{Applied, Request};

/// The largest archive taken (spooled to disk, never held in memory).
pub const MAX_ARCHIVE: u64 = 64 << 30;
/// Data records per synced write.
const CHUNK: usize = 5_000;

/// Counts per file: written, and already here (equal, skipped).
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct Counts {
    pub written: u64,
    pub already: u64,
}

/// What an import did.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct TenantImport {
    pub tenant: String,
    /// Directory records created, updated, unchanged.
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Per data file.
    pub files: BTreeMap<String, Counts>,
    /// The directory revision after the import.
    pub revision: u64,
}

fn bad(b: Bad) -> Problem {
    Problem {
        kind: "urn:vaka:problem:bad-archive".into(),
        ..Problem::invalid(vec![FieldError {
            field: match b.line {
                Some(l) => format!("{} line {l}", b.file),
                None => b.file.clone(),
            },
            reason: b.reason,
        }])
    }
}

fn unavailable(e: impl std::fmt::Display) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store-unavailable",
        e.to_string(),
    )
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/import", tag = "tenants",
    params(("tenant" = String, Path)),
    request_body(content_type = "application/x-tar", description = "an archive made by GET /api/v1/tenants/{tenant}/export"),
    responses((status = 200, body = TenantImport),
        (status = 422, body = Problem, description = "the archive is refused, nothing was changed; the problem names the file and line"),
        (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn import_tenant(
    State(api): State<Api>,
    caller: Caller,
    Path(tenant): Path<String>,
    body: Body,
) -> Result<Json<TenantImport>, Problem> {
    let what = format!("tenant \"{tenant}\"");
    let platform = {
        let dir = api.control.live().load();
        // A new tenant is a platform matter (as with PUT); an existing one is its admin's too.
        let exists = dir.records.tenants.contains_key(&tenant);
        let resource = if exists {
            Resource::Tenant(&tenant)
        } else {
            Resource::Platform
        };
        caller.may(Action::Write, resource, &dir, &what)?;
        caller
            .0
            .may(Action::Write, Resource::Platform, &dir)
            .is_ok()
    };
    let spooled = spool(body).await?;
    let path = spooled.path().to_path_buf();
    let store = api.control.store().clone();
    let snapshot = api.control.live().snapshot();
    let t = tenant.clone();
    let checked =
        tokio::task::spawn_blocking(move || check(&path, &t, &store, &snapshot, platform))
            .await
            .map_err(unavailable)??;
    let path = spooled.path().to_path_buf();
    let store = api.control.store().clone();
    let t = tenant.clone();
    let (max_id, min_event) = (checked.max_id, checked.min_event);
    let files = tokio::task::spawn_blocking(move || {
        let files = write_data(&path, &t, &store, max_id)?;
        if let Some(first) = min_event {
            store.rewind_retention(first).map_err(unavailable)?;
        }
        Ok::<_, Problem>(files)
    })
    .await
    .map_err(unavailable)??;
    let actor = caller.actor();
    let outcome = api.control.apply(&actor, checked.changes).await?;
    let mut out = TenantImport {
        tenant: tenant.clone(),
        files,
        revision: outcome.revision,
        ..TenantImport::default()
    };
    for r in outcome.results {
        match r {
            Ok(Applied::Created) => out.created += 1,
            Ok(Applied::Updated) => out.updated += 1,
            Ok(_) => out.unchanged += 1,
            Err(e) => {
                // Checked on a copy a moment ago: the directory changed meanwhile.
                let mut p = Problem::from(e);
                p.detail = format!(
                    "the data was imported but a directory record was not: {}; import the \
                     archive again (what is already here is skipped)",
                    p.detail
                );
                return Err(p);
            }
        }
    }
    let entry = AdminAuditEntry {
        revision: out.revision,
        at_ms: api.control.now_ms(),
        actor: actor.clone(),
        tenant: Some(tenant.clone()),
        action: "import tenant".into(),
        resource: format!("tenants/{tenant}"),
        before: None,
        after: Some(serde_json::to_value(&out).expect("a summary serialises")),
    };
    let outcome = api
        .control
        .act(&actor, Vec::new(), vec![DataAction::Audit(entry)])
        .await?;
    if outcome.done.is_empty() {
        return Err(unavailable(
            "the import's audit entry was not written; import it again (what is here is skipped)",
        ));
    }
    metrics::counter!("vaka_imports_total", "tenant" => tenant).increment(1);
    Ok(Json(out))
}

/// The upload, in a temporary file (deleted when dropped). A blocking task writes what the
/// body gives through a small channel, so a slow disk slows the upload, not the runtime.
async fn spool(body: Body) -> Result<tempfile::NamedTempFile, Problem> {
    let file = tempfile::NamedTempFile::new().map_err(unavailable)?;
    let mut w = std::io::BufWriter::new(file.reopen().map_err(unavailable)?);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<axum::body::Bytes>(4);
    let writer = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        while let Some(chunk) = rx.blocking_recv() {
            w.write_all(&chunk)?;
        }
        w.flush()
    });
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Problem::bad_request(format!("reading the upload: {e}")))?;
        size += chunk.len() as u64;
        if size > MAX_ARCHIVE {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!("an archive is at most {MAX_ARCHIVE} bytes"),
            ));
        }
        if tx.send(chunk).await.is_err() {
            break; // the writer failed: its error is below
        }
    }
    drop(tx);
    writer.await.map_err(unavailable)?.map_err(unavailable)?;
    Ok(file)
}

/// What the first reading found: the directory changes to make and the largest id.
struct Checked {
    changes: Vec<Request>,
    max_id: Option<u64>,
    /// The smallest event id (the retention sweeps' watermarks go back to it).
    min_event: Option<u64>,
}

/// The first reading (see the module docs); nothing is written.
fn check(
    path: &std::path::Path,
    tenant: &str,
    store: &Store,
    current: &Directory,
    platform: bool,
) -> Result<Checked, Problem> {
    let existing = store.import_existing(tenant).map_err(unavailable)?;
    let own_range = store.id_range().map_err(unavailable)?;
    let mut max_id: Option<u64> = None;
    let mut min_event: Option<u64> = None;
    let mut records: Vec<(DirRecord, String, u64)> = Vec::new();
    // The first care-record line a tenant's admin brings (see below).
    let mut care_record: Option<(String, u64)> = None;
    walk(path, tenant, &mut |r, file, line| match r {
        Record::Directory(d) => {
            records.push((d, file.to_owned(), line));
            Ok(())
        }
        Record::Data(_) if !platform => {
            care_record.get_or_insert((file.to_owned(), line));
            Ok(())
        }
        Record::Data(d) => {
            if let Some(problem) = d.id().and_then(|id| another_nodes_range(id, own_range)) {
                return Err(Bad::at(file, Some(line), problem));
            }
            max_id = max_id.max(d.id());
            if let Imported::Event(e) = &d {
                min_event = Some(min_event.map_or(e.id.0, |m| m.min(e.id.0)));
            }
            match store.import_found(&existing, &d) {
                Ok(Found::Other) => Err(Bad::at(file, Some(line), taken(&d))),
                Ok(_) => Ok(()),
                Err(e) => Err(Bad::at(
                    file,
                    Some(line),
                    format!("reading this engine's store: {e}"),
                )),
            }
        }
    })
    .map_err(bad)?;
    // Alarms with their audit trails, device messages and positions are the care record: a
    // tenant's admin writing them could make up history, so only a platform operator imports
    // them (a migration); a tenant's admin may restore its directory from an archive without.
    if let Some((file, line)) = care_record {
        return Err(Problem::forbidden(format!(
            "{file} line {line}: alarm records, audit trails, device messages and positions are \
             imported by a platform operator only; a tenant's admin may import an archive \
             whose data files are empty (its directory)"
        )));
    }
    let changes = directory_changes(records, tenant, current, platform)?;
    Ok(Checked {
        changes,
        max_id,
        min_event,
    })
}

/// On a cluster node (`own` > 0): why `id` may not be imported here, if it lies in another
/// node's id range (`vaka_cluster::id_range`). Written here, the node's next id would be raised
/// past it, into the range the other node gives its ids from, and two nodes would give the
/// same ids to different alarms. Ids of range 0 (a single node's) lie below every node's.
fn another_nodes_range(id: u64, own: u64) -> Option<String> {
    let range = id >> vaka_cluster::id_range::RANGE_BITS;
    (own > 0 && range != 0 && range != own).then(|| {
        format!(
            "id {id} is in id range {range}, and this cluster node gives its ids from range              {own}: the node of range {range} gives (or will give) those ids; import the              archive on that node, or on a single-node engine"
        )
    })
}

fn taken(d: &Imported) -> String {
    let (what, id) = match d {
        Imported::Alarm(a, _) => ("alarm", a.id.0.to_string()),
        Imported::Event(e) => ("event", e.id.0.to_string()),
        Imported::Position(dev, p) => {
            ("position", format!("{} at {}", dev.device.0, p.fix.time_ms))
        }
        Imported::AdminAudit(_) => ("admin audit entry", String::new()),
    };
    format!(
        "{what} {id} is already in this engine with other content: the archive's ids are taken \
         here (import into an engine that never used them, e.g. a new one)"
    )
}

/// The directory changes of the archive's records, in an order that applies (centres before
/// the chains naming them), checked on a copy of the directory; a record that does not apply
/// is refused naming its file and line.
fn directory_changes(
    records: Vec<(DirRecord, String, u64)>,
    tenant: &str,
    current: &Directory,
    platform: bool,
) -> Result<Vec<Request>, Problem> {
    let rank = |d: &DirRecord| match d {
        DirRecord::Centre(_) => 0,
        DirRecord::Tenant(_) => 1,
        DirRecord::Policy(_) => 2,
        DirRecord::Device(_) => 3,
    };
    let mut records = records;
    records.sort_by_key(|(d, _, _)| rank(d));
    if !records
        .iter()
        .any(|(d, _, _)| matches!(d, DirRecord::Tenant(_)))
    {
        return Err(bad(Bad::at("tenant.jsonl", None, "no tenant record")));
    }
    let mut dir = Directory::clone(current);
    let revision = dir.revision + 1;
    let mut changes = Vec::new();
    for (d, file, line) in records {
        let at = |why: String| bad(Bad::at(&file, Some(line), why));
        let change = match d {
            DirRecord::Centre(c) => {
                let serves =
                    |x: &vaka_core::directory::CentreRecord| x.tenants.iter().any(|t| t == tenant);
                // A centre here keeps its own record; it is only told to serve this tenant too
                // (when it served it where the archive was made).
                let rec = match current.records.centres.get(&c.id) {
                    Some(here) if serves(here) || !serves(&c) => continue,
                    Some(here) => {
                        let mut rec = here.clone();
                        rec.tenants.push(tenant.to_owned());
                        rec
                    }
                    None => c.clone(),
                };
                if !platform {
                    return Err(Problem::forbidden(format!(
                        "{file} line {line}: centre \"{}\" is not here or does not serve \"{tenant}\" \
                         here; centres are the platform's: a platform operator imports this \
                         archive, or sets the centre up first",
                        c.id
                    )));
                }
                Change::PutCentre(rec)
            }
            DirRecord::Tenant(t) => Change::PutTenant(t),
            DirRecord::Policy(p) => Change::PutPolicy(p),
            DirRecord::Device(d) => Change::PutDevice(d),
        };
        dir.apply(change.clone(), revision)
            .map_err(|e| at(e.to_string()))?;
        changes.push(Request::from(change));
    }
    Ok(changes)
}

/// The second reading: ids raised past the archive's, then every record not already here
/// written, `CHUNK` per synced write. Counts per file.
fn write_data(
    path: &std::path::Path,
    tenant: &str,
    store: &Store,
    max_id: Option<u64>,
) -> Result<BTreeMap<String, Counts>, Problem> {
    if let Some(id) = max_id {
        store.ids_past(id);
    }
    let existing = store.import_existing(tenant).map_err(unavailable)?;
    let mut files: BTreeMap<String, Counts> = BTreeMap::new();
    let mut chunk: Vec<Imported> = Vec::with_capacity(CHUNK);
    let mut failed: Option<String> = None;
    let partial = |e: String| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "import-incomplete",
            format!(
                "the import stopped part-way: {e}; import the archive again (what is already \
                 here is skipped)"
            ),
        )
    };
    let walked = walk(path, tenant, &mut |r, file, line| {
        let Record::Data(d) = r else { return Ok(()) };
        let counts = files.entry(file.to_owned()).or_default();
        match store.import_found(&existing, &d) {
            Ok(Found::Absent) => {
                counts.written += 1;
                chunk.push(d);
            }
            Ok(Found::Same) => counts.already += 1,
            // Taken since the check: something wrote meanwhile; stop before overwriting.
            Ok(Found::Other) => return Err(Bad::at(file, Some(line), taken(&d))),
            Err(e) => return Err(Bad::at(file, Some(line), e.to_string())),
        }
        if chunk.len() >= CHUNK {
            if let Err(e) = store.import_write(&chunk) {
                failed = Some(e.to_string());
                return Err(Bad::at(file, Some(line), e.to_string()));
            }
            chunk.clear();
        }
        Ok(())
    });
    if let Some(e) = failed {
        return Err(partial(e));
    }
    walked.map_err(|b| partial(b.to_string()))?;
    store
        .import_write(&chunk)
        .map_err(|e| partial(e.to_string()))?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::another_nodes_range;
    use vaka_cluster::id_range::first_id;

    #[test]
    fn a_cluster_node_imports_its_own_ids_and_a_single_nodes_and_no_other_nodes() {
        assert_eq!(
            another_nodes_range(first_id(3) + 5, 0),
            None,
            "a single node"
        );
        assert_eq!(another_nodes_range(12, 2), None, "a single node's export");
        assert_eq!(another_nodes_range(first_id(2) + 7, 2), None, "its own");
        let problem = another_nodes_range(first_id(3) + 1, 2).unwrap();
        assert!(problem.contains("id range 3"), "{problem}");
    }
}
