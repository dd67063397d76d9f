//! Erasure of one person's data: a device and everything it sent (GDPR art. 17), on a tenant
//! admin's request. The device leaves the directory (its fronts refuse it from then on), its
//! data is erased from the store and the database compacted so no file keeps it
//! (`vaka_store::erase_device`); alarm records keep their non-personal facts, so the tenant's
//! statistics stay right. The admin audit log keeps the tombstone: when, by whom, what.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use vaka_core::access::{Action, Resource};
use vaka_core::directory::Change;
use vaka_core::DeviceKey;
use vaka_store::directory::{put_audit, AdminAuditEntry};
use vaka_store::{Erased, WriteSet};

use super::auth::Caller;
use super::problem::Problem;
use super::state::Api;
use crate::control::Request;

/// What was erased, per kind, and the tombstone's when and by whom.
#[derive(Serialize, ToSchema)]
pub struct Erasure {
    pub tenant: String,
    pub device: String,
    pub at_ms: i64,
    /// The token that asked for it.
    pub by: String,
    /// Whether the device was still in the directory (it is removed first).
    pub removed_from_directory: bool,
    /// Events the device sent (each with its raw message), deleted.
    pub events: u64,
    /// Position history rows, deleted.
    pub positions: u64,
    /// GPS record, last heard, announced interval, rule states, idempotency entries, deleted.
    pub device_rows: u64,
    /// Alarms kept with their free text, callback numbers and closing note removed.
    pub alarms: u64,
    /// Audit records whose free text (closing notes, refusal reasons) was removed.
    pub audit_texts: u64,
    /// Outbox notices rewritten with the erased alarm.
    pub notices: u64,
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/devices/{device}/erasure", tag = "devices",
    params(("tenant" = String, Path), ("device" = String, Path)),
    responses((status = 200, body = Erasure), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the device has open alarms")))]
pub async fn erase_device(
    State(api): State<Api>,
    caller: Caller,
    Path((tenant, device)): Path<(String, String)>,
) -> Result<Json<Erasure>, Problem> {
    let what = format!("device \"{tenant}/{device}\"");
    let key = DeviceKey::new(&tenant, &device);
    let listed = {
        let dir = api.control.live().load();
        caller.may(Action::Write, Resource::Tenant(&tenant), &dir, &what)?;
        dir.records
            .devices
            .contains_key(&(tenant.clone(), device.clone()))
    };
    let store = api.control.store().clone();
    let open = store.open_alarms_of(&key).map_err(store_problem)?;
    if !open.is_empty() {
        let ids: Vec<String> = open.iter().map(|a| a.id.0.to_string()).collect();
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "open-alarms",
            format!(
                "{what} has open alarms ({}): a person may be waiting for help; close them first",
                ids.join(", ")
            ),
        ));
    }
    if listed {
        let gone = Change::DeleteDevice {
            tenant: tenant.clone(),
            id: device.clone(),
        };
        let request = Request {
            change: gone,
            if_match: None,
        };
        api.control.apply_one(&caller.actor(), request).await?;
    }
    let erasing = store.clone();
    let k = key.clone();
    let erased: Erased = tokio::task::spawn_blocking(move || erasing.erase_device(&k))
        .await
        .map_err(|e| store_problem(format!("erasure task: {e}")))?
        .map_err(store_problem)?;
    if !listed && erased == Erased::default() {
        return Err(Problem::not_found(what));
    }
    let at_ms = api.control.now_ms();
    let out = Erasure {
        tenant: tenant.clone(),
        device: device.clone(),
        at_ms,
        by: caller.actor(),
        removed_from_directory: listed,
        events: erased.events,
        positions: erased.positions,
        device_rows: erased.device_rows,
        alarms: erased.alarms,
        audit_texts: erased.audit_texts,
        notices: erased.notices,
    };
    let mut set = WriteSet::new();
    put_audit(
        &mut set,
        &[AdminAuditEntry {
            revision: api.control.live().load().revision,
            at_ms,
            actor: caller.actor(),
            tenant: Some(tenant.clone()),
            action: "erase device".into(),
            resource: format!("devices/{tenant}/{device}"),
            before: None,
            after: Some(serde_json::to_value(&out).expect("an erasure serialises")),
        }],
    );
    store.write_control(set).map_err(store_problem)?;
    metrics::counter!("vaka_erasures_total", "tenant" => tenant).increment(1);
    tracing::warn!(device = %key, by = %out.by, events = out.events, positions = out.positions,
        alarms = out.alarms, "device's personal data erased");
    Ok(Json(out))
}

fn store_problem(e: impl std::fmt::Display) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store-unavailable",
        format!("the erasure did not complete: {e}; ask again (it is safe to repeat)"),
    )
}
