//! Erasure of one person's data: a device and everything it sent (GDPR art. 17), on a tenant
//! admin's request. The device leaves the directory (its fronts refuse it from then on), its
//! data is erased from the store and the database compacted so no file keeps it
//! (`vaka_store::erase_device`); alarm records keep their non-personal facts, so the tenant's
//! statistics stay right. The admin audit log keeps the tombstone: when, by whom, what.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use vaka_core::access::{Action, Resource};
use vaka_core::directory::Change;
use vaka_core::DeviceKey;

use super::auth::Caller;
use super::problem::Problem;
use super::state::Api;
use crate::control::Request;
pub use crate::data::Erasure;
use crate::data::{DataAction, DataDone};

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
    let open = api
        .control
        .store()
        .open_listed_of(&key)
        .map_err(store_problem)?;
    if !open.is_empty() {
        let ids: Vec<u64> = open.iter().map(|l| l.alarm.id.0).collect();
        return Err(Problem::open_alarms(
            &what,
            &ids,
            &format!("{WAITING}; close them first"),
        ));
    }
    // The device leaves the directory and its data goes, on every node (in a cluster, each
    // when it applies the batch); this node's erasure is the answer.
    let requests = if listed {
        vec![Request::from(Change::DeleteDevice {
            tenant: tenant.clone(),
            id: device.clone(),
        })]
    } else {
        Vec::new()
    };
    let action = DataAction::Erase {
        tenant: tenant.clone(),
        device: device.clone(),
        removed_from_directory: listed,
    };
    let mut outcome = api
        .control
        .act(&caller.actor(), requests, vec![action])
        .await?;
    if let Some(Err(e)) = outcome.results.pop() {
        return Err(e.into());
    }
    match outcome.done.pop() {
        Some(DataDone::Erased(out)) if !listed && out.is_nothing() => Err(Problem::not_found(what)),
        Some(DataDone::Erased(out)) => Ok(Json(out)),
        Some(DataDone::Waiting(open)) => Err(Problem::open_alarms(
            &what,
            &open,
            &format!("{WAITING}; the erasure runs once they are closed"),
        )),
        _ => Err(store_problem(
            "this node did not run it; it runs when the node can",
        )),
    }
}

/// Why an open alarm stops an erasure.
const WAITING: &str = "a person may be waiting for help";

fn store_problem(e: impl std::fmt::Display) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store-unavailable",
        format!("the erasure did not complete: {e}; ask again (it is safe to repeat)"),
    )
}
