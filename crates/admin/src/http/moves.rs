//! A device moving to another tenant with both tenants' consent: the owner's admin offers it
//! (`POST /api/v1/tenants/{tenant}/devices/{device}/move`, `{"to", "history"}`), the receiving
//! tenant's admin accepts it (`POST /api/v1/tenants/{tenant}/device-moves/{device}`,
//! `{"from", "history"}`). On acceptance the device leaves the first tenant's directory and
//! enters the second's in one change, without its own chain, policy and gateway list (those
//! named the first tenant's centres and devices): its alarms from then on follow the new
//! tenant's chain. Its history (events, alarms, positions) moves only when both said so;
//! otherwise it stays with the first owner. Both tenants' admin audit logs record each step.
//! Refused while the device has an open alarm (a person may be waiting: it is handled where
//! it is).
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use vaka_core::access::{Action, Resource};
use vaka_core::directory::Change;
use vaka_core::DeviceKey;
use vaka_store::moves::MoveOffer;

use super::auth::Caller;
use super::problem::{FieldError, Problem};
use super::state::Api;
use crate::control::Request;
pub use crate::data::MoveDone;
use crate::data::{DataAction, DataDone};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferBody {
    /// The tenant the device moves to.
    pub to: String,
    /// The owner consents to the device's history moving with it.
    #[serde(default)]
    pub history: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    /// The tenant that offered it.
    pub from: String,
    /// The receiver consents to take its history (it moves only if the owner offered it).
    #[serde(default)]
    pub history: bool,
}

fn unavailable(e: impl std::fmt::Display) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store-unavailable",
        e.to_string(),
    )
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| Problem::body(&e))
}

async fn refuse_open_alarms(api: &Api, key: &DeviceKey, what: &str) -> Result<(), Problem> {
    let store = api.control.store().clone();
    let k = key.clone();
    let open = tokio::task::spawn_blocking(move || store.open_listed_of(&k))
        .await
        .map_err(unavailable)?
        .map_err(unavailable)?;
    if open.is_empty() {
        return Ok(());
    }
    let ids: Vec<u64> = open.iter().map(|l| l.alarm.id.0).collect();
    Err(Problem::open_alarms(
        what,
        &ids,
        "a person may be waiting; they are handled where they are, close them first",
    ))
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/devices/{device}/move", tag = "devices",
    params(("tenant" = String, Path), ("device" = String, Path)), request_body = OfferBody,
    responses((status = 202, description = "offered; the receiving tenant's admin accepts it"),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn offer_move(
    State(api): State<Api>,
    caller: Caller,
    Path((tenant, device)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<StatusCode, Problem> {
    let what = format!("device \"{tenant}/{device}\"");
    {
        let dir = api.control.live().load();
        caller.may(Action::Write, Resource::Tenant(&tenant), &dir, &what)?;
        if !dir
            .records
            .devices
            .contains_key(&(tenant.clone(), device.clone()))
        {
            return Err(Problem::not_found(&what));
        }
    }
    let b: OfferBody = parse(&body)?;
    if b.to == tenant {
        return Err(Problem::invalid(vec![FieldError {
            field: "to".into(),
            reason: "the device is in this tenant already".into(),
        }]));
    }
    refuse_open_alarms(&api, &DeviceKey::new(&tenant, &device), &what).await?;
    let offer = MoveOffer {
        from: tenant.clone(),
        device: device.clone(),
        to: b.to,
        history: b.history,
        by: caller.actor(),
        at_ms: api.control.now_ms(),
    };
    let outcome = api
        .control
        .act(
            &caller.actor(),
            Vec::new(),
            vec![DataAction::OfferMove(offer)],
        )
        .await?;
    match outcome.done.first() {
        Some(DataDone::Recorded) => Ok(StatusCode::ACCEPTED),
        _ => Err(unavailable(
            "the offer was not recorded on this node; offer it again",
        )),
    }
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/device-moves/{device}", tag = "devices",
    params(("tenant" = String, Path, description = "the receiving tenant"), ("device" = String, Path)),
    request_body = AcceptBody,
    responses((status = 200, body = MoveDone), (status = 404, body = Problem, description = "no such offer to this tenant"),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn accept_move(
    State(api): State<Api>,
    caller: Caller,
    Path((tenant, device)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<MoveDone>, Problem> {
    let what = format!("an offer of device \"{device}\" to tenant \"{tenant}\"");
    {
        let dir = api.control.live().load();
        caller.may(Action::Write, Resource::Tenant(&tenant), &dir, &what)?;
    }
    let b: AcceptBody = parse(&body)?;
    let store = api.control.store().clone();
    // Only an offer addressed to this tenant exists for it: any other is "not found".
    let offer = store
        .move_offer(&b.from, &device)
        .map_err(unavailable)?
        .filter(|o| o.to == tenant)
        .ok_or_else(|| Problem::not_found(&what))?;
    let from_key = DeviceKey::new(&b.from, &device);
    refuse_open_alarms(&api, &from_key, &format!("device \"{}/{device}\"", b.from)).await?;
    let record = {
        let dir = api.control.live().load();
        if dir
            .records
            .devices
            .contains_key(&(tenant.clone(), device.clone()))
        {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("tenant \"{tenant}\" has a device \"{device}\" already"),
            ));
        }
        dir.records
            .devices
            .get(&(b.from.clone(), device.clone()))
            .cloned()
            .ok_or_else(|| Problem::not_found(&what))?
    };
    let mut moved = record;
    moved.tenant = tenant.clone();
    // These named the first tenant's centres, policies and devices.
    moved.centres.clear();
    moved.chains_by_kind.clear();
    moved.deadline_policy = None;
    moved.gateway_for.clear();
    let actor = caller.actor();
    let changes = vec![
        Change::DeleteDevice {
            tenant: b.from.clone(),
            id: device.clone(),
        },
        Change::PutDevice(Box::new(moved)),
    ];
    {
        // Both or neither: checked on a copy first (the control plane applies each on its own).
        let mut copy = vaka_core::directory::Directory::clone(&api.control.live().snapshot());
        let revision = copy.revision + 1;
        for c in &changes {
            copy.apply(c.clone(), revision)
                .map_err(|e| Problem::from(crate::control::ControlError::from(e)))?;
        }
    }
    let action = DataAction::AcceptMove {
        from: b.from.clone(),
        to: tenant.clone(),
        device: device.clone(),
        history: offer.history && b.history,
    };
    let requests = changes.into_iter().map(Request::from).collect();
    let outcome = api.control.act(&actor, requests, vec![action]).await?;
    if let Some(Err(e)) = outcome.results.into_iter().find(Result::is_err) {
        return Err(e.into());
    }
    match outcome.done.into_iter().next() {
        Some(DataDone::Moved(out)) => Ok(Json(out)),
        Some(DataDone::Waiting(open)) => {
            let ids: Vec<String> = open.iter().map(u64::to_string).collect();
            Err(Problem::new(
                StatusCode::CONFLICT,
                "open-alarms",
                format!(
                    "the device moved, and its history moves once its open alarms ({}) are closed",
                    ids.join(", ")
                ),
            ))
        }
        _ => Err(unavailable(
            "the device moved; its history and the audit follow when this node can run them",
        )),
    }
}
