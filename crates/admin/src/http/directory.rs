//! Tenants, centres, devices (with their chains and fences) and deadline policies: read, put
//! (create or replace, `If-Match` for optimistic concurrency) and delete. Every handler checks
//! access before it reads the body, so a caller learns nothing of what it may not see.
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vaka_core::access::{Action, Resource};
use vaka_core::directory::{
    CentreRecord, Change, Dc09Credential, DeadlinePolicyRecord, DeviceRecord, FenceRecord,
    SipCredential, TenantRecord,
};
use vaka_core::gps::FilterOverride;

use super::auth::Caller;
use super::problem::Problem;
use super::state::Api;
use crate::control::{Applied, Request};

/// The revision in an `If-Match` header (`"7"` or `7`); `*` or absent: no condition.
pub(crate) fn if_match(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("").trim();
    if s == "*" {
        return Ok(None);
    }
    s.trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map(Some)
        .map_err(|_| Problem::bad_request("If-Match must be a revision, e.g. \"7\""))
}

fn etag(revision: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).expect("digits are a header value")
}

/// A record with its ETag.
pub(crate) fn with_etag<T: Serialize>(revision: u64, value: T) -> Response {
    let mut r = Json(value).into_response();
    r.headers_mut().insert(header::ETAG, etag(revision));
    r
}

/// The answer to a write: 201 created, 200 replaced or unchanged, 204 deleted.
fn written<T: Serialize>(applied: Applied, revision: Option<u64>, value: Option<T>) -> Response {
    let status = match applied {
        Applied::Created => StatusCode::CREATED,
        Applied::Deleted => return StatusCode::NO_CONTENT.into_response(),
        Applied::Updated | Applied::Unchanged => StatusCode::OK,
    };
    let mut r = (status, Json(value)).into_response();
    if let Some(rev) = revision {
        r.headers_mut().insert(header::ETAG, etag(rev));
    }
    r
}

pub(crate) fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Problem> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = serde_path_to_error::deserialize(&mut de).map_err(|e| Problem::body_at(&e))?;
    de.end().map_err(|e| Problem::body(&e))?;
    Ok(v)
}

async fn change(
    api: &Api,
    caller: &Caller,
    change: Change,
    headers: &HeaderMap,
) -> Result<Applied, Problem> {
    let request = Request {
        change,
        if_match: if_match(headers)?,
    };
    let (applied, _) = api.control.apply_one(&caller.actor(), request).await?;
    Ok(applied)
}

// ---- tenants ----

#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants",
    responses((status = 200, body = [TenantRecord]), (status = 401, body = Problem)))]
pub async fn list_tenants(State(api): State<Api>, caller: Caller) -> Json<Vec<TenantRecord>> {
    let dir = api.control.live().load();
    Json(
        dir.records
            .tenants
            .values()
            .filter(|t| caller.0.sees_tenant(&t.id, &dir))
            .cloned()
            .collect(),
    )
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path)),
    responses((status = 200, body = TenantRecord), (status = 404, body = Problem)))]
pub async fn get_tenant(
    State(api): State<Api>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Response, Problem> {
    let dir = api.control.live().load();
    let what = format!("tenant \"{tenant}\"");
    caller.may(Action::Read, Resource::Tenant(&tenant), &dir, &what)?;
    let t = dir
        .records
        .tenants
        .get(&tenant)
        .ok_or_else(|| Problem::not_found(&what))?;
    Ok(with_etag(t.revision, t))
}

#[utoipa::path(put, path = "/api/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = TenantRecord,
    responses((status = 200, body = TenantRecord), (status = 201, body = TenantRecord),
        (status = 412, body = Problem), (status = 422, body = Problem)))]
pub async fn put_tenant(
    State(api): State<Api>,
    caller: Caller,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let what = format!("tenant \"{tenant}\"");
    {
        let dir = api.control.live().load();
        // A new tenant is a platform matter; an existing one is its admin's too.
        let resource = if dir.records.tenants.contains_key(&tenant) {
            Resource::Tenant(&tenant)
        } else {
            Resource::Platform
        };
        caller.may(Action::Write, resource, &dir, &what)?;
    }
    let mut rec: TenantRecord = parse(&body)?;
    rec.id = tenant.clone();
    let applied = change(&api, &caller, Change::PutTenant(rec), &headers).await?;
    let dir = api.control.live().load();
    let t = dir.records.tenants.get(&tenant).cloned();
    Ok(written(applied, t.as_ref().map(|t| t.revision), t))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_tenant(
    State(api): State<Api>,
    caller: Caller,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let what = format!("tenant \"{tenant}\"");
    {
        let dir = api.control.live().load();
        caller.may(Action::Read, Resource::Tenant(&tenant), &dir, &what)?;
        caller.may(Action::Write, Resource::Platform, &dir, &what)?;
    }
    let applied = change(&api, &caller, Change::DeleteTenant(tenant), &headers).await?;
    Ok(written::<()>(applied, None, None))
}

/// An escalation chain: centres tried in order.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Chain {
    pub centres: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/chain", tag = "chains",
    params(("tenant" = String, Path)),
    responses((status = 200, body = Chain), (status = 404, body = Problem)))]
pub async fn get_tenant_chain(
    State(api): State<Api>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Response, Problem> {
    let dir = api.control.live().load();
    let what = format!("tenant \"{tenant}\"");
    caller.may(Action::Read, Resource::Tenant(&tenant), &dir, &what)?;
    let t = dir
        .records
        .tenants
        .get(&tenant)
        .ok_or_else(|| Problem::not_found(&what))?;
    Ok(with_etag(
        t.revision,
        Chain {
            centres: t.centres.clone(),
        },
    ))
}

#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/chain", tag = "chains",
    params(("tenant" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = Chain,
    responses((status = 200, body = Chain), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_tenant_chain(
    State(api): State<Api>,
    caller: Caller,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let what = format!("tenant \"{tenant}\"");
    let current = {
        let dir = api.control.live().load();
        caller.may(Action::Write, Resource::Tenant(&tenant), &dir, &what)?;
        dir.records
            .tenants
            .get(&tenant)
            .cloned()
            .ok_or_else(|| Problem::not_found(&what))?
    };
    let chain: Chain = parse(&body)?;
    let rec = TenantRecord {
        centres: chain.centres,
        ..current
    };
    let applied = change(&api, &caller, Change::PutTenant(rec), &headers).await?;
    let dir = api.control.live().load();
    let t = &dir.records.tenants[&tenant];
    Ok(written(
        applied,
        Some(t.revision),
        Some(Chain {
            centres: t.centres.clone(),
        }),
    ))
}

// ---- centres ----

#[utoipa::path(get, path = "/api/v1/centres", tag = "centres",
    responses((status = 200, body = [CentreRecord]), (status = 401, body = Problem)))]
pub async fn list_centres(State(api): State<Api>, caller: Caller) -> Json<Vec<CentreRecord>> {
    let dir = api.control.live().load();
    Json(
        dir.records
            .centres
            .values()
            .filter(|c| {
                caller
                    .0
                    .may(Action::Read, Resource::Centre(&c.id), &dir)
                    .is_ok()
            })
            .cloned()
            .collect(),
    )
}

#[utoipa::path(get, path = "/api/v1/centres/{centre}", tag = "centres",
    params(("centre" = String, Path)),
    responses((status = 200, body = CentreRecord), (status = 404, body = Problem)))]
pub async fn get_centre(
    State(api): State<Api>,
    caller: Caller,
    Path(centre): Path<String>,
) -> Result<Response, Problem> {
    let dir = api.control.live().load();
    let what = format!("centre \"{centre}\"");
    caller.may(Action::Read, Resource::Centre(&centre), &dir, &what)?;
    let c = dir
        .records
        .centres
        .get(&centre)
        .ok_or_else(|| Problem::not_found(&what))?;
    Ok(with_etag(c.revision, c))
}

#[utoipa::path(put, path = "/api/v1/centres/{centre}", tag = "centres",
    params(("centre" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = CentreRecord,
    responses((status = 200, body = CentreRecord), (status = 201, body = CentreRecord),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn put_centre(
    State(api): State<Api>,
    caller: Caller,
    Path(centre): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let what = format!("centre \"{centre}\"");
    {
        let dir = api.control.live().load();
        caller.may(Action::Write, Resource::Centre(&centre), &dir, &what)?;
    }
    let mut rec: CentreRecord = parse(&body)?;
    rec.id = centre.clone();
    let applied = change(&api, &caller, Change::PutCentre(rec), &headers).await?;
    let dir = api.control.live().load();
    let c = dir.records.centres.get(&centre).cloned();
    Ok(written(applied, c.as_ref().map(|c| c.revision), c))
}

#[utoipa::path(delete, path = "/api/v1/centres/{centre}", tag = "centres",
    params(("centre" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_centre(
    State(api): State<Api>,
    caller: Caller,
    Path(centre): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let what = format!("centre \"{centre}\"");
    {
        let dir = api.control.live().load();
        caller.may(Action::Write, Resource::Centre(&centre), &dir, &what)?;
    }
    let applied = change(&api, &caller, Change::DeleteCentre(centre), &headers).await?;
    Ok(written::<()>(applied, None, None))
}

// ---- devices ----

/// A device as written through the API. The SIP password is turned into HA1 values for the
/// front's realm and not kept; with neither `password` nor `sip`, the stored credentials stay.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceInput {
    /// SCAIP device type (Annex A), four digits.
    #[serde(rename = "type")]
    pub device_type: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// SIP digest password (username = the device id). Stored as HA1 only.
    #[serde(default)]
    pub password: Option<String>,
    /// Or the HA1 values themselves (for a migration from another system).
    #[serde(default)]
    pub sip: Option<SipCredential>,
    /// With `password`: the device cannot do digest qop=auth.
    #[serde(default)]
    pub single_use_nonce: bool,
    #[serde(default)]
    pub heartbeat_secs: Option<u32>,
    /// EN 50136-1 supervision category ("SP1".."SP6", "DP1".."DP4"): silent after its reporting
    /// time; wins over `heartbeat_secs`.
    #[serde(default)]
    pub supervision: Option<String>,
    /// SIA DC-09 account number (3-16 hex digits, unique over the engine). With neither this
    /// nor `dc09_key`, the stored DC-09 account stays.
    #[serde(default)]
    pub dc09_account: Option<String>,
    /// Its AES key (32/48/64 hex digits or 16/24/32 ASCII characters); absent: plain messages
    /// only. Never shown again.
    #[serde(default)]
    pub dc09_key: Option<String>,
    #[serde(default)]
    pub centres: Vec<String>,
    #[serde(default)]
    pub deadline_policy: Option<String>,
    #[serde(default)]
    pub receipt_deadline_secs: Option<u64>,
    #[serde(default)]
    pub accept_deadline_secs: Option<u64>,
    #[serde(default)]
    pub gateway_for: Vec<String>,
    #[serde(default)]
    pub gps_filter: Option<FilterOverride>,
    #[serde(default)]
    pub fences: Vec<FenceRecord>,
    /// Activity rules (night checks, missed doses, thresholds); empty: its type's.
    #[serde(default)]
    pub rules: Vec<vaka_core::rules::RuleRecord>,
    /// Own chains per kind of alarm (alarm, technical, silent, geofence, or a rule kind).
    #[serde(default)]
    pub chains_by_kind: std::collections::BTreeMap<String, Vec<String>>,
    /// On test until (unix ms; installation, maintenance): its alarms reach the centre marked
    /// as tests, ride below real alarms and are never escalated; the mode ends by itself.
    #[serde(default)]
    pub test_until_ms: Option<i64>,
}

fn yes() -> bool {
    true
}

impl DeviceInput {
    /// The record to store for device `tenant/id`, given the one stored now (if any).
    pub(crate) fn into_record(
        self,
        tenant: &str,
        id: &str,
        realm: &str,
        current: Option<&DeviceRecord>,
    ) -> Result<DeviceRecord, Problem> {
        let sip = match (self.password, self.sip) {
            (Some(_), Some(_)) => {
                return Err(Problem::invalid(vec![super::problem::FieldError {
                    field: "password".into(),
                    reason: "give either password or sip, not both".into(),
                }]))
            }
            (Some(p), None) if p.is_empty() => {
                return Err(Problem::invalid(vec![super::problem::FieldError {
                    field: "password".into(),
                    reason: "must not be empty".into(),
                }]))
            }
            (Some(p), None) => Some(vaka_ingest::sip::sip_credential(
                id,
                realm,
                &p,
                self.single_use_nonce,
            )),
            (None, Some(s)) => Some(s),
            (None, None) => current.and_then(|c| c.sip.clone()),
        };
        let dc09 = match (self.dc09_account, self.dc09_key) {
            (Some(account), key) => Some(Dc09Credential { account, key }),
            (None, Some(_)) => {
                return Err(Problem::invalid(vec![super::problem::FieldError {
                    field: "dc09_key".into(),
                    reason: "only with dc09_account".into(),
                }]))
            }
            (None, None) => current.and_then(|c| c.dc09.clone()),
        };
        Ok(DeviceRecord {
            tenant: tenant.to_owned(),
            id: id.to_owned(),
            device_type: self.device_type,
            enabled: self.enabled,
            sip,
            dc09,
            heartbeat_secs: self.heartbeat_secs,
            supervision: self.supervision,
            centres: self.centres,
            deadline_policy: self.deadline_policy,
            receipt_deadline_secs: self.receipt_deadline_secs,
            accept_deadline_secs: self.accept_deadline_secs,
            gateway_for: self.gateway_for,
            gps_filter: self.gps_filter,
            fences: self.fences,
            rules: self.rules,
            chains_by_kind: self.chains_by_kind,
            test_until_ms: self.test_until_ms,
            revision: 0,
        })
    }
}

/// A device record as shown: HA1 values are never shown, only that they are set.
pub(crate) fn shown(d: &DeviceRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(d).unwrap_or_default();
    if let Some(sip) = v.get_mut("sip").and_then(serde_json::Value::as_object_mut) {
        sip.remove("ha1_md5");
        sip.remove("ha1_sha256");
    }
    if let Some(dc09) = v.get_mut("dc09").and_then(serde_json::Value::as_object_mut) {
        let key = dc09.remove("key");
        let encrypted = key.is_some_and(|k| !k.is_null());
        dc09.insert("encrypted".into(), encrypted.into());
    }
    v
}

#[derive(Clone, Debug, Deserialize, IntoParams)]
pub struct Page {
    /// Start after this id (the last id of the previous page).
    pub after: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// One page of devices and where the next starts.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DevicePage {
    #[schema(value_type = Vec<Object>)]
    pub devices: Vec<serde_json::Value>,
    pub next_after: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/devices", tag = "devices",
    params(("tenant" = String, Path), Page),
    responses((status = 200, body = DevicePage), (status = 404, body = Problem)))]
pub async fn list_devices(
    State(api): State<Api>,
    caller: Caller,
    Path(tenant): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<DevicePage>, Problem> {
    let dir = api.control.live().load();
    caller.may(
        Action::Read,
        Resource::Tenant(&tenant),
        &dir,
        &format!("tenant \"{tenant}\""),
    )?;
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let from = (
        tenant.clone(),
        page.after.clone().map(|a| a + "\0").unwrap_or_default(),
    );
    let mut devices: Vec<&DeviceRecord> = dir
        .records
        .devices
        .range(from..)
        .take_while(|((t, _), _)| *t == tenant)
        .map(|(_, d)| d)
        .take(limit + 1)
        .collect();
    let more = devices.len() > limit;
    devices.truncate(limit);
    Ok(Json(DevicePage {
        next_after: more.then(|| devices.last().map(|d| d.id.clone())).flatten(),
        devices: devices.into_iter().map(shown).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/devices/{device}", tag = "devices",
    params(("tenant" = String, Path), ("device" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem)))]
pub async fn get_device(
    State(api): State<Api>,
    caller: Caller,
    Path((tenant, device)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let dir = api.control.live().load();
    let what = format!("device \"{tenant}/{device}\"");
    caller.may(Action::Read, Resource::Tenant(&tenant), &dir, &what)?;
    let d = dir
        .records
        .devices
        .get(&(tenant, device))
        .ok_or_else(|| Problem::not_found(&what))?;
    Ok(with_etag(d.revision, shown(d)))
}

#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/devices/{device}", tag = "devices",
    params(("tenant" = String, Path), ("device" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = DeviceInput,
    responses((status = 200, body = Object), (status = 201, body = Object),
        (status = 412, body = Problem), (status = 422, body = Problem)))]
pub async fn put_device(
    State(api): State<Api>,
    caller: Caller,
    Path((tenant, device)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let what = format!("device \"{tenant}/{device}\"");
    let current = {
        let dir = api.control.live().load();
        caller.may(Action::Write, Resource::Tenant(&tenant), &dir, &what)?;
        dir.records
            .devices
            .get(&(tenant.clone(), device.clone()))
            .cloned()
    };
    let input: DeviceInput = parse(&body)?;
    let rec = input.into_record(&tenant, &device, &api.realm, current.as_ref())?;
    let applied = change(&api, &caller, Change::PutDevice(Box::new(rec)), &headers).await?;
    let dir = api.control.live().load();
    let d = dir.records.devices.get(&(tenant, device));
    Ok(written(applied, d.map(|d| d.revision), d.map(shown)))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/devices/{device}", tag = "devices",
    params(("tenant" = String, Path), ("device" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_device(
    State(api): State<Api>,
    caller: Caller,
    Path((tenant, device)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let what = format!("device \"{tenant}/{device}\"");
    caller.may_on_tenant(&api, Action::Write, &tenant, &what)?;
    let gone = Change::DeleteDevice { tenant, id: device };
    let applied = change(&api, &caller, gone, &headers).await?;
    Ok(written::<()>(applied, None, None))
}

/// Read-modify-write of one device's record, for its sub-resources (chain, fences).
async fn update_device(
    api: &Api,
    caller: &Caller,
    tenant: &str,
    device: &str,
    headers: &HeaderMap,
    f: impl FnOnce(&mut DeviceRecord),
) -> Result<(Applied, DeviceRecord), Problem> {
    let what = format!("device \"{tenant}/{device}\"");
    let mut rec = {
        let dir = api.control.live().load();
        caller.may(Action::Write, Resource::Tenant(tenant), &dir, &what)?;
        dir.records
            .devices
            .get(&(tenant.to_owned(), device.to_owned()))
            .cloned()
            .ok_or_else(|| Problem::not_found(&what))?
    };
    f(&mut rec);
    let applied = change(api, caller, Change::PutDevice(Box::new(rec)), headers).await?;
    let dir = api.control.live().load();
    Ok((
        applied,
        dir.records.devices[&(tenant.to_owned(), device.to_owned())].clone(),
    ))
}

fn read_device(
    api: &Api,
    caller: &Caller,
    tenant: &str,
    device: &str,
) -> Result<DeviceRecord, Problem> {
    let dir = api.control.live().load();
    let what = format!("device \"{tenant}/{device}\"");
    caller.may(Action::Read, Resource::Tenant(tenant), &dir, &what)?;
    dir.records
        .devices
        .get(&(tenant.to_owned(), device.to_owned()))
        .cloned()
        .ok_or_else(|| Problem::not_found(&what))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/devices/{device}/chain", tag = "chains",
    params(("tenant" = String, Path), ("device" = String, Path)),
    responses((status = 200, body = Chain), (status = 404, body = Problem)))]
pub async fn get_device_chain(
    State(api): State<Api>,
    caller: Caller,
    Path((tenant, device)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let d = read_device(&api, &caller, &tenant, &device)?;
    Ok(with_etag(d.revision, Chain { centres: d.centres }))
}

#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/devices/{device}/chain", tag = "chains",
    params(("tenant" = String, Path), ("device" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = Chain,
    responses((status = 200, body = Chain), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_device_chain(
    State(api): State<Api>,
    caller: Caller,
    Path((tenant, device)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    put_device_part(
        (&api, &caller, &headers, &body),
        (&tenant, &device),
        |d, c: Chain| d.centres = c.centres,
        |d| Chain { centres: d.centres },
    )
    .await
}

/// A device's geofences.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Fences {
    pub fences: Vec<FenceRecord>,
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/devices/{device}/fences", tag = "geofences",
    params(("tenant" = String, Path), ("device" = String, Path)),
    responses((status = 200, body = Fences), (status = 404, body = Problem)))]
pub async fn get_fences(
    State(api): State<Api>,
    caller: Caller,
    Path((tenant, device)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let d = read_device(&api, &caller, &tenant, &device)?;
    Ok(with_etag(d.revision, Fences { fences: d.fences }))
}

#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/devices/{device}/fences", tag = "geofences",
    params(("tenant" = String, Path), ("device" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = Fences,
    responses((status = 200, body = Fences), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_fences(
    State(api): State<Api>,
    caller: Caller,
    Path((tenant, device)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    put_device_part(
        (&api, &caller, &headers, &body),
        (&tenant, &device),
        |d, f: Fences| d.fences = f.fences,
        |d| Fences { fences: d.fences },
    )
    .await
}

/// PUT of a part of a device's record (its chain, its fences): checked like the device, read,
/// changed, written; answered with the part as stored.
async fn put_device_part<T: for<'de> Deserialize<'de> + Serialize>(
    (api, caller, headers, body): (&Api, &Caller, &HeaderMap, &Bytes),
    (tenant, device): (&str, &str),
    set: impl FnOnce(&mut DeviceRecord, T),
    get: impl FnOnce(DeviceRecord) -> T,
) -> Result<Response, Problem> {
    read_device(api, caller, tenant, device)?;
    caller.may_on_tenant(api, Action::Write, tenant, tenant)?;
    let part: T = parse(body)?;
    let (applied, d) =
        update_device(api, caller, tenant, device, headers, |d| set(d, part)).await?;
    Ok(written(applied, Some(d.revision), Some(get(d))))
}

// ---- deadline policies ----

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/deadline-policies", tag = "deadline policies",
    params(("tenant" = String, Path)),
    responses((status = 200, body = [DeadlinePolicyRecord]), (status = 404, body = Problem)))]
pub async fn list_policies(
    State(api): State<Api>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Json<Vec<DeadlinePolicyRecord>>, Problem> {
    let dir = api.control.live().load();
    caller.may(
        Action::Read,
        Resource::Tenant(&tenant),
        &dir,
        &format!("tenant \"{tenant}\""),
    )?;
    Ok(Json(
        dir.records
            .policies
            .values()
            .filter(|p| p.tenant == tenant)
            .cloned()
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/deadline-policies/{policy}", tag = "deadline policies",
    params(("tenant" = String, Path), ("policy" = String, Path)),
    responses((status = 200, body = DeadlinePolicyRecord), (status = 404, body = Problem)))]
pub async fn get_policy(
    State(api): State<Api>,
    caller: Caller,
    Path((tenant, policy)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let dir = api.control.live().load();
    let what = format!("deadline policy \"{tenant}/{policy}\"");
    caller.may(Action::Read, Resource::Tenant(&tenant), &dir, &what)?;
    let p = dir
        .records
        .policies
        .get(&(tenant, policy))
        .ok_or_else(|| Problem::not_found(&what))?;
    Ok(with_etag(p.revision, p))
}

/// Deadlines of a policy.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    pub receipt_deadline_secs: u64,
    pub accept_deadline_secs: u64,
}

#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/deadline-policies/{policy}", tag = "deadline policies",
    params(("tenant" = String, Path), ("policy" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = PolicyInput,
    responses((status = 200, body = DeadlinePolicyRecord), (status = 201, body = DeadlinePolicyRecord),
        (status = 422, body = Problem)))]
pub async fn put_policy(
    State(api): State<Api>,
    caller: Caller,
    Path((tenant, policy)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let what = format!("deadline policy \"{tenant}/{policy}\"");
    caller.may_on_tenant(&api, Action::Write, &tenant, &what)?;
    let input: PolicyInput = parse(&body)?;
    let rec = DeadlinePolicyRecord {
        tenant: tenant.clone(),
        id: policy.clone(),
        receipt_deadline_secs: input.receipt_deadline_secs,
        accept_deadline_secs: input.accept_deadline_secs,
        revision: 0,
    };
    let applied = change(&api, &caller, Change::PutPolicy(rec), &headers).await?;
    let dir = api.control.live().load();
    let p = dir.records.policies.get(&(tenant, policy)).cloned();
    Ok(written(applied, p.as_ref().map(|p| p.revision), p))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/deadline-policies/{policy}", tag = "deadline policies",
    params(("tenant" = String, Path), ("policy" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_policy(
    State(api): State<Api>,
    caller: Caller,
    Path((tenant, policy)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let what = format!("deadline policy \"{tenant}/{policy}\"");
    caller.may_on_tenant(&api, Action::Write, &tenant, &what)?;
    let gone = Change::DeletePolicy { tenant, id: policy };
    let applied = change(&api, &caller, gone, &headers).await?;
    Ok(written::<()>(applied, None, None))
}
